#!/usr/bin/env bash
# What recording costs.
#
# 1. An output flood in a pty session, `ssh -tt root@tgt@latch 'seq 1 N' > /dev/null`,
#    through two brokers on the same target, one recording (the default) and one with
#    `[recordings] enabled = false`, alternating run by run; throughput on/off, with each
#    broker's CPU per run and the size of the flood's .cast.
# 2. The recording of a typical interactive session: a shell through `ssh -tt` fed by a
#    script that types short commands a character at a time (~80 ms a key) with pauses in
#    between, for about a minute; the .cast's bytes per minute, against the bytes the
#    target sent.
#
# Usage: [SEQ_N=3000000] [RUNS=7] bench/recording.sh
# Needs: cargo, ssh, ssh-keygen, /usr/sbin/sshd; run as root (the target login is root).
# Everything lives in a temporary directory removed on exit, with every server it started.
set -euo pipefail

SEQ_N=${SEQ_N:-3000000}
RUNS=${RUNS:-7}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLK_TCK=$(getconf CLK_TCK)
source "$ROOT/bench/lib.sh"
bench_preflight

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-recording.XXXXXX")
TARGET_PORT=
declare -A LATCH_PID=() LATCH_PORT=()
cleanup() {
    set +e
    local b
    for b in "${!LATCH_PID[@]}"; do
        kill "${LATCH_PID[$b]}" 2>/dev/null && wait "${LATCH_PID[$b]}" 2>/dev/null
    done
    bench_stop_target $TARGET_PORT
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_build_latch
bench_keys

# --- target sshd: trusts both brokers' CAs ----------------------------------------------------
mkdir -p "$WORK/on" "$WORK/off"
bench_start_sshd target "$WORK/trusted_cas"
TARGET_PORT=$SSHD_PORT

# --- two brokers: recording on, recording off ----------------------------------------------------
start_broker() {
    local name=$1 enabled=$2 dir="$WORK/$1"
    cat >"$dir/bastion.toml" <<EOF
[server]
state_dir = "./latch-data"

[[users]]
name = "bench"
keys = ["$CLIENT_KEY"]
roles = ["bench"]

[[roles]]
name = "bench"
logins = ["root"]
hosts = ["tgt"]

[[hosts]]
name = "tgt"
address = "127.0.0.1:$TARGET_PORT"
host_keys = ["$HOST_KEY"]

[recordings]
enabled = $enabled
EOF
    bench_start_latch "$dir"
    LATCH_PID[$name]=$BROKER_PID
    LATCH_PORT[$name]=$BROKER_PORT
    cat "$dir/latch-data/user_ca_key.pub" >>"$WORK/trusted_cas"
}
start_broker on true
start_broker off false

SSH=("${bench_ssh[@]}" -i "$WORK/client")
via() { local b=$1; shift; "${SSH[@]}" -p "${LATCH_PORT[$b]}" root@tgt@127.0.0.1 "$@"; }
ended() { grep -c '"type":"session_ended"' "$WORK/$1/latch-data/events.jsonl" || true; }
broker_ticks() { awk '{print $14 + $15}' "/proc/${LATCH_PID[$1]}/stat"; }
echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"
via on true && via off true

# --- 1. output flood -----------------------------------------------------------------------------
FLOOD_BYTES=$(seq 1 "$SEQ_N" | wc -c)
declare -A WALL=() CPU=()
flood() {
    local b=$1 start end t0 t1 e0
    e0=$(ended "$b") t0=$(broker_ticks "$b")
    start=${EPOCHREALTIME/[.,]/}
    via "$b" -tt "seq 1 $SEQ_N" </dev/null >"$WORK/flood.out" 2>&1 || {
        echo "flood via $b failed:" >&2; tail -c 300 "$WORK/flood.out" >&2; exit 1; }
    end=${EPOCHREALTIME/[.,]/}
    # The broker's work for the session ends with session_ended (after the recording is sealed).
    for _ in $(seq 250); do (($(ended "$b") > e0)) && break; sleep 0.02; done
    t1=$(broker_ticks "$b")
    local got
    got=$(tr -d '\r' <"$WORK/flood.out" | wc -c)
    ((got >= FLOOD_BYTES)) || { echo "flood via $b: $got of $FLOOD_BYTES bytes arrived" >&2; exit 1; }
    WALL[$b]+="$((end - start)) "
    CPU[$b]+="$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }') "
}
echo "== flood: seq 1 $SEQ_N ($FLOOD_BYTES bytes, more on the wire with the pty's CRLF), $RUNS runs per broker, alternating"
flood on && flood off   # warm-up
WALL=() CPU=()
bench_wait_quiet
for i in $(seq "$RUNS"); do
    if ((i % 2)); then flood on; flood off; else flood off; flood on; fi
done
FLOOD_CAST=$(ls -S "$WORK/on/latch-data/recordings/"*.cast | head -1)
FLOOD_CAST_BYTES=$(stat -c %s "$FLOOD_CAST")

# --- 2. a typical interactive session -------------------------------------------------------------
COMMANDS=(
    'ls -la /usr/bin | head'
    'top -b -n 1 | head -20'
    'df -h'
    'cat /etc/os-release'
    'ps aux | head -15'
    'uptime'
    'free -m'
    'ls /etc | head -30'
    'grep -c processor /proc/cpuinfo'
    'echo $PATH'
    'uname -a'
    'date'
    'du -sh /usr/share/doc 2>/dev/null'
    'ls -la /var/log | head'
    'history | tail -5'
)
PAUSES=(3 4 2 3 4 2 3 3 2 2 3 2 4 3 2)
# Types each command a key at a time (60-100 ms apart), then pauses to read the output.
typist() {
    local i j cmd
    sleep 2
    for i in "${!COMMANDS[@]}"; do
        cmd=${COMMANDS[$i]}
        for ((j = 0; j < ${#cmd}; j++)); do
            printf '%s' "${cmd:j:1}"
            sleep "0.0$((6 + RANDOM % 5))"
        done
        printf '\r'
        sleep "${PAUSES[$i]}"
    done
    printf 'exit\r'
    sleep 1
}
bench_wait_quiet
echo "== interactive session: ${#COMMANDS[@]} commands typed at about 12 keys a second with pauses"
e0=$(ended on)
start=${EPOCHREALTIME/[.,]/}
typist | via on -tt >"$WORK/interactive.out" 2>&1 || true
end=${EPOCHREALTIME/[.,]/}
for _ in $(seq 250); do (($(ended on) > e0)) && break; sleep 0.02; done
INTERACTIVE_EVENT=$(grep '"type":"session_ended"' "$WORK/on/latch-data/events.jsonl" | tail -1)
INTERACTIVE_SID=$(sed 's/.*"data":{"id":"\(s[0-9]*\)".*/\1/' <<<"$INTERACTIVE_EVENT")
INTERACTIVE_OUT=$(sed 's/.*"bytes_out":\([0-9]*\).*/\1/' <<<"$INTERACTIVE_EVENT")
INTERACTIVE_CAST="$WORK/on/latch-data/recordings/$INTERACTIVE_SID-c0.cast"
INTERACTIVE_MANIFEST="$WORK/on/latch-data/recordings/$INTERACTIVE_SID-c0.manifest.json"
for _ in $(seq 100); do [[ -e $INTERACTIVE_MANIFEST.sig ]] && break; sleep 0.05; done
grep -q 'PRETTY_NAME' "$WORK/interactive.out" || { echo "the interactive session did not run:" >&2; tail -c 500 "$WORK/interactive.out" >&2; exit 1; }

VERIFY=$("$LATCH" recordings verify --config "$WORK/on/bastion.toml" 2>&1 | tail -1 || true)

# --- report ------------------------------------------------------------------------------------
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m }'; }
echo
echo "Output flood in a pty: seq 1 $SEQ_N ($FLOOD_BYTES bytes), median of $RUNS runs each"
printf '%-14s %10s %10s %14s %14s\n' recording wall_s MB/s 'broker_cpu_s' 'runs (s)'
declare -A MED=()
for b in on off; do
    MED[$b]=$(median <<<"${WALL[$b]}")
    printf '%-14s %10.2f %10.1f %14s %14s\n' "$b" "$(awk -v w="${MED[$b]}" 'BEGIN { print w / 1e6 }')" \
        "$(awk -v w="${MED[$b]}" -v n="$FLOOD_BYTES" 'BEGIN { print n / w }')" \
        "$(median <<<"${CPU[$b]}")" \
        "$(tr ' ' '\n' <<<"${WALL[$b]}" | grep -v '^$' | awk '{ printf "%.2f ", $1 / 1e6 }')"
done
R=$(awk -v on="${MED[on]}" -v off="${MED[off]}" 'BEGIN { printf "%.2f", off / on }')
echo "throughput on/off = $R (target >= 0.9: $(awk -v r="$R" 'BEGIN { print ((r >= 0.9) ? "met" : "MISSED") }'))"
echo "one flood's cast: $FLOOD_CAST_BYTES bytes ($(awk -v c="$FLOOD_CAST_BYTES" -v n="$FLOOD_BYTES" 'BEGIN { printf "%.2f", c / n }') x the command's output)"
echo
DUR=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", (e - s) / 1e6 }')
CAST_BYTES=$(stat -c %s "$INTERACTIVE_CAST")
MANIFEST_BYTES=$(stat -c %s "$INTERACTIVE_MANIFEST")
echo "Interactive session ($INTERACTIVE_SID): $DUR s, ${#COMMANDS[@]} commands"
echo "  target output relayed (bytes_out): $INTERACTIVE_OUT bytes"
echo "  .cast: $CAST_BYTES bytes, $(grep -c '^\[' "$INTERACTIVE_CAST") events;" \
     "manifest $MANIFEST_BYTES bytes, signature $(stat -c %s "$INTERACTIVE_MANIFEST.sig") bytes"
awk -v c="$CAST_BYTES" -v m="$MANIFEST_BYTES" -v d="$DUR" -v o="$INTERACTIVE_OUT" 'BEGIN {
    printf "  recording per minute: %.1f KiB of cast (%.1f KiB with manifest and signature); cast/output = %.2f\n",
        c / 1024 * 60 / d, (c + m + 400) / 1024 * 60 / d, c / o
    printf "  gzip -9 of the cast would be "
}'
printf '%s bytes\n' "$(gzip -9c "$INTERACTIVE_CAST" | wc -c)"
echo "latch recordings verify: $VERIFY"
for b in on off; do
    echo "broker ($b) stderr WARN/ERROR lines:"
    grep -E ' (ERROR|WARN) ' "$WORK/$b/latch.err" | sed 's/^[^ ]* *//' | sort | uniq -c | head -10 || true
done
