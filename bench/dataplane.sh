#!/usr/bin/env bash
# The data plane against plain OpenSSH, measured in the same run, interleaved:
#
# 1. Bulk throughput, download and upload, per client-leg cipher:
#      download  ssh HOST 'head -c SIZE /dev/zero' > /dev/null
#      upload    ssh HOST 'cat > /dev/null' < SIZE-byte file
#    proxied through `latch serve` (root@tgt@127.0.0.1, recording off: `[recordings]
#    enabled = false`, the switch that exists for this measurement) and direct to the same
#    target sshd, authenticated with a certificate minted by latch's own user CA (so the
#    target's auth configuration is the same both ways). CPU per GiB: the broker's
#    utime+stime (/proc/PID/stat) against the direct sshd (the listener's reaped children,
#    minus the remote shell's own CPU, which `times` reports) plus the ssh client.
# 2. `ssh HOST true`, connect-and-run, proxied vs direct, N of each, interleaved. Also the
#    same with the direct client limited to the key exchange latch's legs negotiate
#    (curve25519-sha256; OpenSSH 9.2 prefers sntrup761x25519, which costs more), and a
#    shell-free round trip (`ssh -n -s HOST sftp` to internal-sftp), because sshd runs
#    `true` through the login shell, which reads ~/.bashrc and may dominate.
#
# Usage: [SIZE_MIB=1024] [RUNS=5] [N_CONNECT=30] bench/dataplane.sh
# Needs: cargo, ssh, ssh-keygen, /usr/sbin/sshd; run as root (the target
# login is root). Everything lives in a temporary directory removed on exit, with the two
# servers it started.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-5}
N_CONNECT=${N_CONNECT:-30}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BYTES=$((SIZE_MIB * 1024 * 1024))
CLK_TCK=$(getconf CLK_TCK)
TIMEFORMAT='%U %S'

source "$ROOT/bench/lib.sh"
bench_preflight

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-dataplane.XXXXXX")
LATCH_PID=
cleanup() {
    set +e
    [[ -n $LATCH_PID ]] && kill "$LATCH_PID" 2>/dev/null && wait "$LATCH_PID" 2>/dev/null
    bench_stop_target
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_build_latch

own_ticks() { awk '{print $14+$15+$16+$17}' "/proc/$$/stat"; }
read -r BUSY0 TOTAL0 < <(bench_cpu_ticks)
OWN0=$(own_ticks)

# --- keys -----------------------------------------------------------------------------------
bench_keys
# The direct client: the same kind of key, with a certificate from latch's CA (minted once
# the broker has created the CA).
ssh-keygen -q -t ed25519 -N '' -C bench@direct -f "$WORK/direct"
STATE="$WORK/latch-data"

# --- target sshd ------------------------------------------------------------------------------
# The target, and a probe: a one-connection sshd in debug mode, used once to read what the
# broker's client leg negotiates.
bench_start_sshd target "$STATE/user_ca_key.pub" -D VERBOSE
TARGET_PORT=$SSHD_PORT TARGET_PID=$SSHD_PID
bench_start_sshd probe "$STATE/user_ca_key.pub" -d DEBUG1
PROBE_PORT=$SSHD_PORT

# --- latch serve -------------------------------------------------------------------------------
cat >"$WORK/bastion.toml" <<EOF
[server]
state_dir = "./latch-data"

[[users]]
name = "bench"
keys = ["$CLIENT_KEY"]
roles = ["bench"]

[[roles]]
name = "bench"
logins = ["root"]
hosts = ["tgt", "tgt-probe"]
sftp = true

[[hosts]]
name = "tgt"
address = "127.0.0.1:$TARGET_PORT"
host_keys = ["$HOST_KEY"]

[[hosts]]
name = "tgt-probe"
address = "127.0.0.1:$PROBE_PORT"
host_keys = ["$HOST_KEY"]

[recordings]
enabled = false
EOF
bench_start_latch "$WORK"
LATCH_PID=$BROKER_PID LATCH_PORT=$BROKER_PORT
ssh-keygen -q -s "$STATE/user_ca_key" -I bench -n root -V +2h "$WORK/direct.pub"

# --- clients -------------------------------------------------------------------------------------
BASE=("${bench_ssh[@]}")
# proxied OPTIONS... -- COMMAND / direct OPTIONS... -- COMMAND
proxied() {
    local -a opts=()
    while [[ $1 != -- ]]; do opts+=("$1"); shift; done
    shift
    "${BASE[@]}" -i "$WORK/client" "${opts[@]}" -p "$LATCH_PORT" root@tgt@127.0.0.1 "$@"
}
# Offers only the certificate, as a latch-minted login does.
direct() {
    local -a opts=()
    while [[ $1 != -- ]]; do opts+=("$1"); shift; done
    shift
    "${BASE[@]}" -i "$WORK/direct" -o PubkeyAcceptedAlgorithms=ssh-ed25519-cert-v01@openssh.com \
        "${opts[@]}" -p "$TARGET_PORT" root@127.0.0.1 "$@"
}
X25519=(-o KexAlgorithms=curve25519-sha256)

direct -- true || { echo "direct login failed" >&2; exit 1; }
proxied -- true || { echo "proxied login failed:" >&2; tail "$WORK/latch.err" >&2; exit 1; }

echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg); $(ssh -V 2>&1)"
kex_of() { "$1" -v -- true 2>&1 | grep -m1 'kex: algorithm' | sed 's/.*kex: algorithm: //'; }
echo "== key exchange, client leg: direct $(kex_of direct), latch $(kex_of proxied)"
# The broker's own client leg, as the (one-shot, debug) probe sshd saw it.
"${BASE[@]}" -i "$WORK/client" -p "$LATCH_PORT" root@tgt-probe@127.0.0.1 true >/dev/null 2>&1 || true
UPSTREAM_CIPHER=$(grep -m1 'kex: client->server cipher' "$WORK/probe.log" | sed 's/.*cipher: //; s/ MAC.*//')
UPSTREAM_KEX=$(grep -m1 'kex: algorithm' "$WORK/probe.log" | sed 's/.*algorithm: //; s/ \[preauth\]//')
echo "== broker -> target leg (russh client, latch's preferences): kex $UPSTREAM_KEX, cipher $UPSTREAM_CIPHER"

# --- 1. bulk throughput ------------------------------------------------------------------------
head -c "$BYTES" /dev/zero >"$WORK/upload.bin"
cat "$WORK/upload.bin" >/dev/null   # in the page cache before the first run

broker_ticks() { awk '{print $14 + $15}' "/proc/$LATCH_PID/stat"; }
# The target listener's own and reaped children's CPU: every connection process it forked,
# once they have exited.
sshd_ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$TARGET_PID/stat"; }
sshd_settled() {
    local i
    for i in $(seq 200); do
        [[ -z $(ps -o pid= --ppid "$TARGET_PID" 2>/dev/null) ]] && return 0
        sleep 0.02
    done
    echo "target sshd still has connection processes 4 s after the client exited" >&2
}
# `times` output of the remote shell (2 lines: the shell, its children) in seconds.
remote_cpu() {
    { grep -E '^[0-9]+m[0-9.]+s [0-9]+m[0-9.]+s$' "$1" || true; } | tail -2 |
        awk '{ for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] } } END { printf "%.3f", s }'
}

# One transfer. Appends "wall client_cpu broker_cpu sshd_own_cpu remote_cpu" (seconds) to
# BULK[path:dir:cipher].
declare -A BULK=()
bulk() {
    local path=$1 dir=$2 cipher=$3 key="$1:$2:$3" cmd start end b0 b1 s0 s1 e0 rc=0 cu cs
    if [[ $dir == down ]]; then cmd="head -c $BYTES /dev/zero; times >&2"
    else cmd="cat > /dev/null; times >&2"; fi
    sshd_settled
    b0=$(broker_ticks) s0=$(sshd_ticks) e0=$(ended_count)
    start=${EPOCHREALTIME/[.,]/}
    local input=/dev/null
    [[ $dir == up ]] && input=$WORK/upload.bin
    # bash's `time`: the client's user and system CPU (the function runs ssh as a child).
    { time "$path" -c "$cipher" -- "$cmd" <"$input" >/dev/null 2>"$WORK/stderr" || rc=$?; } \
        2>"$WORK/time"
    end=${EPOCHREALTIME/[.,]/}
    if ((rc != 0)); then
        echo "$key failed (exit $rc):" >&2
        cat "$WORK/stderr" >&2
        tail -n 5 "$WORK/latch.err" >&2
        exit 1
    fi
    sshd_settled
    # The broker's work for a session ends with its session_ended record.
    if [[ $path == proxied ]]; then
        for _ in $(seq 250); do (($(ended_count) > e0)) && break; sleep 0.02; done
    fi
    b1=$(broker_ticks) s1=$(sshd_ticks)
    local remote
    remote=$(remote_cpu "$WORK/stderr")
    read -r cu cs <"$WORK/time"
    BULK[$key]+=$(awk -v w=$((end - start)) -v cu="$cu" -v cs="$cs" -v b=$((b1 - b0)) \
        -v s=$((s1 - s0)) -v r="$remote" -v hz="$CLK_TCK" -v p="$path" 'BEGIN {
            printf "%.3f,%.2f,%.2f,%.2f,%.3f ", w / 1e6, cu + cs, (p == "proxied") ? b / hz : 0,
                s / hz - r, r }')
}

ended_count() { grep -c '"type":"session_ended"' "$STATE/events.jsonl" || true; }
# The broker counted every byte it relayed: a transfer it cut short would show here.
check_relayed() {
    local want=$1 field=$2 got
    got=$(grep '"type":"session_ended"' "$STATE/events.jsonl" | tail -1 |
        sed 's/.*"'"$field"'":\([0-9]*\).*/\1/')
    if ((got < want)); then
        echo "the broker relayed $got bytes ($field), expected at least $want" >&2
        exit 1
    fi
}

CIPHERS=(chacha20-poly1305@openssh.com aes256-gcm@openssh.com aes128-gcm@openssh.com)
BULK_CASES=()
for c in "${CIPHERS[@]}"; do
    BULK_CASES+=("direct:$c" "proxied:$c")
done
echo "== bulk: $SIZE_MIB MiB each way, $RUNS runs of each case, order rotating per run"
for run in $(seq "$RUNS"); do
    bench_wait_quiet
    for dir in down up; do
        n=${#BULK_CASES[@]}
        for j in $(seq 0 $((n - 1))); do
            c=${BULK_CASES[$(((run + j) % n))]}
            bulk "${c%%:*}" "$dir" "${c#*:}"
            if [[ ${c%%:*} == proxied ]]; then
                if [[ $dir == down ]]; then check_relayed "$BYTES" bytes_out
                else check_relayed "$BYTES" bytes_in; fi
            fi
        done
    done
    echo "   run $run/$RUNS done"
done

# --- 2. connect and run ---------------------------------------------------------------------------
run_direct() { direct -- true; }
run_direct25519() { direct "${X25519[@]}" -- true; }
run_proxied() { proxied -- true; }
run_sftp_direct() { direct "${X25519[@]}" -n -s -- sftp; }
run_sftp_proxied() { proxied -n -s -- sftp; }
CONNECT_CASES=(direct direct25519 proxied sftp_direct sftp_proxied)
declare -A TIMES=()
timed() {
    local name=$1 start end
    start=${EPOCHREALTIME/[.,]/}
    if ! "run_$name" >"$WORK/out" 2>&1 </dev/null; then
        echo "$name failed:" >&2
        cat "$WORK/out" >&2
        exit 1
    fi
    end=${EPOCHREALTIME/[.,]/}
    TIMES[$name]+="$((end - start)) "
}
echo "== connect and run: $N_CONNECT of each case after 3 warm-up rounds, interleaved"
bench_wait_quiet
for _ in 1 2 3; do for c in "${CONNECT_CASES[@]}"; do "run_$c" >/dev/null 2>&1 </dev/null; done; done
for i in $(seq "$N_CONNECT"); do
    n=${#CONNECT_CASES[@]}
    for j in $(seq 0 $((n - 1))); do timed "${CONNECT_CASES[$(((i + j) % n))]}"; done
done

# --- report ----------------------------------------------------------------------------------------
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "nan"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m }'; }
# Field F (1-based) of every run of a case, median.
field_median() { tr ' ' '\n' | grep -v '^$' | cut -d, -f"$1" | tr '\n' ' ' | median; }

echo
echo "Bulk transfer, $SIZE_MIB MiB, median of $RUNS runs (CPU in seconds per GiB; sshd = the"
echo "target's connection processes without the remote shell and command)."
printf '%-4s %-30s %-8s %9s %9s %9s %9s %9s\n' dir cipher path MiB/s wall_s client broker sshd
declare -A MIBS=() CPU_CLIENT=() CPU_BROKER=() CPU_SSHD=()
per_gib() { awk -v s="$1" -v m="$SIZE_MIB" 'BEGIN { printf "%.2f", s * 1024 / m }'; }
for dir in down up; do
    for c in "${CIPHERS[@]}"; do
        for path in direct proxied; do
            k="$path:$dir:$c"
            [[ -n ${BULK[$k]:-} ]] || continue
            wall=$(field_median 1 <<<"${BULK[$k]}")
            MIBS[$k]=$(awk -v w="$wall" -v m="$SIZE_MIB" 'BEGIN { printf "%.1f", m / w }')
            CPU_CLIENT[$k]=$(per_gib "$(field_median 2 <<<"${BULK[$k]}")")
            CPU_BROKER[$k]=$(per_gib "$(field_median 3 <<<"${BULK[$k]}")")
            CPU_SSHD[$k]=$(per_gib "$(field_median 4 <<<"${BULK[$k]}")")
            printf '%-4s %-30s %-8s %9s %9.2f %9s %9s %9s\n' "$dir" "$c" "$path" "${MIBS[$k]}" \
                "$wall" "${CPU_CLIENT[$k]}" \
                "$([[ $path == proxied ]] && echo "${CPU_BROKER[$k]}" || echo -)" "${CPU_SSHD[$k]}"
        done
    done
done
echo
echo "Targets: proxied/direct throughput >= 0.45; broker CPU/GiB <= 1.2 x (direct sshd + ssh)"
printf '%-4s %-46s %8s %6s %14s %6s\n' dir 'proxied cipher vs direct cipher' thruput met 'broker/(sshd+ssh)' met
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == ">=") ? v >= t : v <= t; print ok ? "met" : "MISSED" }'; }
for dir in down up; do
    for pair in chacha20-poly1305@openssh.com:chacha20-poly1305@openssh.com \
                aes256-gcm@openssh.com:aes256-gcm@openssh.com \
                aes128-gcm@openssh.com:aes128-gcm@openssh.com; do
        pc=${pair%%:*} dc=${pair#*:}
        p="proxied:$dir:$pc" d="direct:$dir:$dc"
        [[ -n ${MIBS[$p]:-} && -n ${MIBS[$d]:-} ]] || continue
        tr=$(awk -v a="${MIBS[$p]}" -v b="${MIBS[$d]}" 'BEGIN { printf "%.2f", a / b }')
        cr=$(awk -v b="${CPU_BROKER[$p]}" -v s="${CPU_SSHD[$d]}" -v c="${CPU_CLIENT[$d]}" \
            'BEGIN { printf "%.2f", b / (s + c) }')
        printf '%-4s %-46s %8s %6s %14s %6s\n' "$dir" "${pc%%@*} vs ${dc%%@*}" "$tr" \
            "$(verdict "$tr" 0.45 '>=')" "$cr" "$(verdict "$cr" 1.2 '<=')"
    done
done

echo
echo "Connect and run ($N_CONNECT each, wall time of the whole ssh command)"
stats() {
    tr ' ' '\n' | grep -v '^$' | sort -n | awk '
        { v[NR] = $1 }
        END { print v[int((NR * 50 + 99) / 100)], v[int((NR * 90 + 99) / 100)], v[1], v[NR] }'
}
ms() { awk -v us="$1" 'BEGIN { printf "%.1f", us / 1000 }'; }
printf '%-13s %5s %9s %9s %9s %9s\n' case n p50_ms p90_ms min_ms max_ms
declare -A P50=()
for c in "${CONNECT_CASES[@]}"; do
    read -r p50 p90 min max < <(stats <<<"${TIMES[$c]}")
    P50[$c]=$p50
    printf '%-13s %5s %9s %9s %9s %9s\n' "$c" "$N_CONNECT" "$(ms "$p50")" "$(ms "$p90")" \
        "$(ms "$min")" "$(ms "$max")"
done
r=$(awk -v a="${P50[proxied]}" -v b="${P50[direct]}" 'BEGIN { printf "%.2f", a / b }')
echo "p50 proxied/direct       = $r (target <= 1.3: $(verdict "$r" 1.3 '<='))"
awk -v a="${P50[proxied]}" -v b="${P50[direct25519]}" -v c="${P50[sftp_proxied]}" \
    -v d="${P50[sftp_direct]}" 'BEGIN {
    printf "p50 proxied/direct25519  = %.2f (same key exchange on the client leg)\n", a / b
    printf "p50 sftp_proxied/sftp_direct = %.2f (no login shell; latch adds %.1f ms)\n", c / d, (c - d) / 1000
}'

ERRORS=$(grep -E ' (ERROR|WARN) ' "$WORK/latch.err" | grep -vc 'RECORDING IS OFF' || true)
echo
echo "broker stderr: $ERRORS WARN/ERROR lines (besides the recording-off warning)"
grep -E ' (ERROR|WARN) ' "$WORK/latch.err" | grep -v 'RECORDING IS OFF' | sort | uniq -c | head -10 || true

# Stop the servers now so their CPU time counts as ours in the contention figure.
kill "$LATCH_PID" 2>/dev/null || true
wait "$LATCH_PID" 2>/dev/null || true
LATCH_PID=
bench_stop_target
SSHD_PIDS=()
read -r BUSY1 TOTAL1 < <(bench_cpu_ticks)
OWN1=$(own_ticks)
awk -v b=$((BUSY1 - BUSY0)) -v t=$((TOTAL1 - TOTAL0)) -v o=$((OWN1 - OWN0)) -v c="$(nproc)" 'BEGIN {
    others = (t > 0) ? (b - o) * c / t : 0
    if (others < 0) others = 0
    printf "other processes kept about %.2f of %d CPUs busy during the run%s\n", others, c,
        (others > 0.2) ? " (contended: expect slower, noisier figures than on an idle machine)" : ""
}'
