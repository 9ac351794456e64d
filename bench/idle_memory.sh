#!/usr/bin/env bash
# The broker's memory per idle proxied session: VmRSS of `latch serve` with no session
# against N idle sessions (`ssh root@tgt@latch 'sleep 600'`, no pty, no output), delta / N.
# For context, the memory of the N ssh clients and of the target's sshd processes serving
# them (VmRSS summed, which counts shared pages once per process, and Pss, which splits them).
# Recording is on (the default), so each session also holds an open recording.
#
# Usage: [N_SESSIONS=500] [RECORDING=on|off] bench/idle_memory.sh
# Needs: cargo, ssh, ssh-keygen, /usr/sbin/sshd; run as root (the target login is root),
# and about 6 GiB of free memory for 500 sessions. Everything lives in a temporary
# directory removed on exit, with every process it started (the clients, the broker, the
# target sshd, and the `sleep 600` commands the closed sessions leave behind on the target,
# found by the target's port in their SSH_CONNECTION).
set -euo pipefail

N_SESSIONS=${N_SESSIONS:-500}
RECORDING=${RECORDING:-on}
BATCH=25
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
bench_preflight
case $RECORDING in on) REC_ENABLED=true ;; off) REC_ENABLED=false ;;
    *) echo "RECORDING must be on or off" >&2; exit 2 ;; esac
mem_available_mib() { awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo; }
NEED_MIB=$((N_SESSIONS * 12 + 1024))
if (($(mem_available_mib) < NEED_MIB)); then
    echo "only $(mem_available_mib) MiB available; $N_SESSIONS sessions need about $NEED_MIB MiB" >&2
    exit 1
fi
ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-memory.XXXXXX")
mkdir -p "$WORK/clients"
LATCH_PID=
TARGET_PORT=
CLIENTS=()
target_leftovers() { bench_target_leftovers $TARGET_PORT; }
stop_clients() {
    local pid
    for pid in "${CLIENTS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${CLIENTS[@]}"; do wait "$pid" 2>/dev/null || true; done
    CLIENTS=()
}
cleanup() {
    set +e
    stop_clients
    [[ -n $LATCH_PID ]] && kill "$LATCH_PID" 2>/dev/null && wait "$LATCH_PID" 2>/dev/null
    bench_stop_target $TARGET_PORT
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_build_latch
bench_keys
STATE="$WORK/latch-data"
bench_start_sshd target "$STATE/user_ca_key.pub"
TARGET_PORT=$SSHD_PORT

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
hosts = ["tgt"]

[[hosts]]
name = "tgt"
address = "127.0.0.1:$TARGET_PORT"
host_keys = ["$HOST_KEY"]

[recordings]
enabled = $REC_ENABLED
EOF
bench_start_latch "$WORK"
LATCH_PID=$BROKER_PID LATCH_PORT=$BROKER_PORT

SSH=("${bench_ssh[@]}" -i "$WORK/client" -p "$LATCH_PORT")
bastion() { "${SSH[@]}" bench@127.0.0.1 "$@"; }
connected() { grep -c '"type":"session_connected"' "$STATE/events.jsonl" || true; }
ended() { grep -c '"type":"session_ended"' "$STATE/events.jsonl" || true; }
sealed() { grep -c '"type":"recording_sealed"' "$STATE/events.jsonl" || true; }
live_sessions() { bastion sessions --json | grep -o '"id": *"s[0-9]*"' | wc -l; }

# kB of field F (VmRSS, RssAnon, RssFile, Threads) of a process.
status_of() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
pss_of() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
# "rss_kB pss_kB count" summed over a list of pids.
sum_mem() {
    local pid rss=0 pss=0 n=0 r
    for pid in "$@"; do
        r=$(status_of "$pid" VmRSS 2>/dev/null) || continue
        [[ -n $r ]] || continue
        rss=$((rss + r)) pss=$((pss + $(pss_of "$pid"))) n=$((n + 1))
    done
    echo "$rss $pss $n"
}
broker_line() {
    printf '%-34s %10s %10s %10s %10s %8s %7s\n' "$1" "$(status_of "$LATCH_PID" VmRSS)" \
        "$(status_of "$LATCH_PID" RssAnon)" "$(status_of "$LATCH_PID" RssFile)" \
        "$(pss_of "$LATCH_PID")" "$(status_of "$LATCH_PID" Threads)" "$(ls "/proc/$LATCH_PID/fd" | wc -l)"
}

echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
     "$(mem_available_mib) MiB available, load average $(cut -d' ' -f1-3 /proc/loadavg)"

REPORT=()
sleep 1
FRESH_RSS=$(status_of "$LATCH_PID" VmRSS)
REPORT+=("$(broker_line "fresh, no session yet")")
# One session opened and closed, so what every session shares (code paths faulted in, the
# runtime's worker threads, the first recording) is in the baseline.
"${SSH[@]}" root@tgt@127.0.0.1 true
for _ in $(seq 100); do (($(ended) >= 1)) && break; sleep 0.05; done
sleep 1
BASE_RSS=$(status_of "$LATCH_PID" VmRSS)
BASE_ANON=$(status_of "$LATCH_PID" RssAnon)
REPORT+=("$(broker_line "0 sessions (after one closed)")")

echo "== opening $N_SESSIONS idle sessions in batches of $BATCH (recording $RECORDING)"
started=0
base_connected=$(connected)
while ((started < N_SESSIONS)); do
    n=$((N_SESSIONS - started < BATCH ? N_SESSIONS - started : BATCH))
    for _ in $(seq "$n"); do
        started=$((started + 1))
        "${SSH[@]}" root@tgt@127.0.0.1 'sleep 600' </dev/null >/dev/null 2>"$WORK/clients/$started.err" &
        CLIENTS+=($!)
    done
    for _ in $(seq 600); do
        (($(connected) - base_connected >= started)) && break
        sleep 0.1
    done
    if (($(connected) - base_connected < started)); then
        echo "only $(($(connected) - base_connected)) of $started sessions connected after 60 s" >&2
        tail -n 5 "$WORK/latch.err" >&2
        exit 1
    fi
    if (($(mem_available_mib) < 1024)); then
        echo "less than 1 GiB of memory left after $started sessions; stopping" >&2
        exit 1
    fi
done
LIVE=$(live_sessions)
echo "== sessions --json lists $LIVE live sessions"
((LIVE == N_SESSIONS)) || { echo "expected $N_SESSIONS" >&2; exit 1; }
bench_wait_commands_settled "$N_SESSIONS" "$TARGET_PORT"
sleep 3
LOADED_RSS=$(status_of "$LATCH_PID" VmRSS)
LOADED_ANON=$(status_of "$LATCH_PID" RssAnon)
REPORT+=("$(broker_line "$N_SESSIONS idle sessions")")
read -r C_RSS C_PSS C_N < <(sum_mem "${CLIENTS[@]}")
# The listener's descendants named sshd (each connection gets its own session, so not --sid).
mapfile -t SSHD_PROCS < <(ps -e -o pid=,ppid=,comm= | awk -v root="$SSHD_PID" '
    { parent[$1] = $2; comm[$1] = $3 }
    END { for (p in parent) { q = p; while (q in parent && q != root) q = parent[q]
          if (q == root && p != root && comm[p] == "sshd") print p } }')
read -r S_RSS S_PSS S_N < <(sum_mem "${SSHD_PROCS[@]}")
mapfile -t COMMANDS < <(target_leftovers)
read -r T_RSS T_PSS T_N < <(sum_mem "${COMMANDS[@]}")
REC_FILES=$(find "$STATE/recordings" -type f | wc -l)

CLOSE_START=$SECONDS
stop_clients
for _ in $(seq 600); do (($(ended) >= N_SESSIONS + 1)) && break; sleep 0.1; done
REPORT+=("$(broker_line "all $N_SESSIONS ended (session_ended)")")
if [[ $RECORDING == on ]]; then
    for _ in $(seq 300); do (($(sealed) >= N_SESSIONS + 1)) && break; sleep 0.1; done
fi
SETTLED_IN=$((SECONDS - CLOSE_START))
REPORT+=("$(broker_line "... and up to 30 s for the seals")")
# tokio ends idle blocking-pool threads after 10 s. With no session left, the broker should
# be idle: its CPU over these seconds says whether it is.
IDLE_T0=$(awk '{ print $14 + $15 }' "/proc/$LATCH_PID/stat") IDLE_S0=$SECONDS
sleep 12
IDLE_CPU=$(awk -v t0="$IDLE_T0" -v s=$((SECONDS - IDLE_S0)) -v hz="$(getconf CLK_TCK)" \
    '{ printf "%.2f", ($14 + $15 - t0) / hz / s }' "/proc/$LATCH_PID/stat")
REPORT+=("$(broker_line "... and 12 s later")")
AFTER_RSS=$(status_of "$LATCH_PID" VmRSS)

# --- report ------------------------------------------------------------------------------------
echo
echo "Broker memory (kB; Pss from smaps_rollup; fds = open file descriptors)"
printf '%-34s %10s %10s %10s %10s %8s %7s\n' state VmRSS RssAnon RssFile Pss threads fds
printf '%s\n' "${REPORT[@]}"
awk -v b="$BASE_RSS" -v l="$LOADED_RSS" -v ba="$BASE_ANON" -v la="$LOADED_ANON" -v n="$N_SESSIONS" \
    -v f="$FRESH_RSS" -v a="$AFTER_RSS" 'BEGIN {
    per = (l - b) / n
    printf "per idle session: VmRSS %.1f KiB, RssAnon %.1f KiB (target <= 256 KiB: %s)\n",
        per, (la - ba) / n, per <= 256 ? "met" : "MISSED"
    printf "against the fresh broker: %.1f KiB per session; once all closed and settled, VmRSS is %+d kB from the 0-session baseline\n",
        (l - f) / n, a - b
}'
echo
echo "For context, with $N_SESSIONS idle sessions (kB):"
printf '%-40s %6s %12s %12s %12s\n' processes n 'VmRSS sum' 'Pss sum' 'Pss/session'
ctx() { awk -v name="$1" -v n="$2" -v r="$3" -v p="$4" -v s="$N_SESSIONS" \
    'BEGIN { printf "%-40s %6d %12d %12d %12.0f\n", name, n, r, p, p / s }'; }
ctx "ssh clients" "$C_N" "$C_RSS" "$C_PSS"
ctx "target sshd (connection processes)" "$S_N" "$S_RSS" "$S_PSS"
ctx "target commands (sleep)" "$T_N" "$T_RSS" "$T_PSS"
awk -v l="$LOADED_RSS" -v b="$BASE_RSS" 'BEGIN { printf "%-40s %6d %12d\n", "broker delta", 1, l - b }'
echo "recording files open or written: $REC_FILES; after the clients disconnected: every session_ended logged," \
     "$(sealed) of $((N_SESSIONS + 1)) recordings sealed after $SETTLED_IN s"
echo "broker CPU with no session left (the 12 s above): $IDLE_CPU CPUs (an idle broker uses ~0)"
echo "broker stderr WARN/ERROR lines:"
grep -E ' (ERROR|WARN) ' "$WORK/latch.err" | sed 's/^[^ ]* *//' | sort | uniq -c | head -10 || true
