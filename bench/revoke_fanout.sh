#!/usr/bin/env bash
# Revoking one grant that covers N live proxied sessions: how long until every session is cut.
#
# N clients run `ssh root@tgt@latch 'sleep 600'` under one auto-approved grant (no pty, no
# output). Once `sessions --json` lists all N, `ssh latch revoke GRANT` runs, and for each
# session we take the time from the start of that revoke command to its ssh client exiting
# (a wrapper per client writes the exit time), and the broker's own `cut_ms` from the
# session_ended events in STATE_DIR/events.jsonl (decision to both sockets closed).
# Recording is on (the default), as in production: each cut also seals a recording.
#
# With PIN_BROKER=1 the broker runs alone on the last CPU and everything else (clients,
# target sshd, this script) on the others, so the broker's own cut latency can be told apart
# from the CPU the clients and sshd processes need to tear 200 sessions down (on 2 CPUs the
# broker then has one core and one tokio worker).
#
# Usage: [N_SESSIONS=200] [RECORDING=on|off] [PIN_BROKER=1] bench/revoke_fanout.sh
# Needs: cargo, ssh, ssh-keygen, /usr/sbin/sshd; run as root (the target login is root).
# Everything lives in a temporary directory removed on exit, with every process it started
# (the clients, the broker, the target sshd, and the `sleep 600` commands the cut sessions
# leave behind on the target, found by the target's port in their SSH_CONNECTION).
set -euo pipefail

N_SESSIONS=${N_SESSIONS:-200}
RECORDING=${RECORDING:-on}
BATCH=25
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
bench_preflight
case $RECORDING in on) REC_ENABLED=true ;; off) REC_ENABLED=false ;;
    *) echo "RECORDING must be on or off" >&2; exit 2 ;; esac
CPUS=$(nproc)
BROKER_CPU=()
if [[ ${PIN_BROKER:-} == 1 ]]; then
    ((CPUS >= 2)) || { echo "PIN_BROKER=1 needs at least 2 CPUs" >&2; exit 2; }
    command -v taskset >/dev/null || { echo "missing: taskset" >&2; exit 1; }
    taskset -p -c "0-$((CPUS - 2))" $$ >/dev/null   # inherited by everything started below
    BROKER_CPU=(taskset -c "$((CPUS - 1))")
fi
# Each client, its wrapper, and the broker's two sockets per session.
ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-revoke.XXXXXX")
mkdir -p "$WORK/clients"
LATCH_PID=
TARGET_PORT=
WRAPPERS=()
cleanup() {
    set +e
    local f
    for f in "$WORK"/clients/*.pid; do [[ -e $f ]] && kill "$(cat "$f")" 2>/dev/null; done
    for f in "${WRAPPERS[@]}"; do wait "$f" 2>/dev/null; done
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

[jit]
max_duration = "8h"

[[users]]
name = "bench"
keys = ["$CLIENT_KEY"]
can_request = ["fanout"]

[[roles]]
name = "fanout"
logins = ["root"]
hosts = ["tgt"]
auto_approve = true

[[hosts]]
name = "tgt"
address = "127.0.0.1:$TARGET_PORT"
host_keys = ["$HOST_KEY"]

[recordings]
enabled = $REC_ENABLED
EOF
bench_start_latch "$WORK" "${BROKER_CPU[@]}"
LATCH_PID=$BROKER_PID LATCH_PORT=$BROKER_PORT

SSH=("${bench_ssh[@]}" -i "$WORK/client" -p "$LATCH_PORT")
bastion() { "${SSH[@]}" bench@127.0.0.1 "$@"; }

GRANT=$(bastion request --role fanout --hosts tgt --duration 4h --reason bench --json |
    grep -o '"id": *"g[0-9]*"' | head -1 | grep -o 'g[0-9]*')
[[ -n $GRANT ]] || { echo "could not get a grant" >&2; exit 1; }

echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== grant $GRANT; starting $N_SESSIONS sessions in batches of $BATCH (recording $RECORDING)$(
    [[ ${PIN_BROKER:-} == 1 ]] && echo "; broker alone on CPU $((CPUS - 1)), everything else on CPUs 0-$((CPUS - 2))")"

connected() { grep -c '"type":"session_connected"' "$STATE/events.jsonl" || true; }
live_sessions() { bastion sessions --json | grep -o '"id": *"s[0-9]*"' | wc -l; }

# One client: its exit time (µs since the epoch) and status go to exits when it ends.
start_client() {
    local i=$1
    (
        "${SSH[@]}" root@tgt@127.0.0.1 'sleep 600' </dev/null >/dev/null 2>"$WORK/clients/$i.err" &
        echo $! >"$WORK/clients/$i.pid"
        rc=0
        wait $! || rc=$?
        echo "$i ${EPOCHREALTIME/[.,]/} $rc" >>"$WORK/exits"
    ) &
    WRAPPERS+=($!)
}
started=0
while ((started < N_SESSIONS)); do
    n=$((N_SESSIONS - started < BATCH ? N_SESSIONS - started : BATCH))
    for _ in $(seq "$n"); do started=$((started + 1)); start_client "$started"; done
    for _ in $(seq 600); do
        (($(connected) >= started)) && break
        sleep 0.1
    done
    if (($(connected) < started)); then
        echo "only $(connected) of $started sessions connected after 60 s" >&2
        tail -n 5 "$WORK/latch.err" >&2
        exit 1
    fi
    if [[ -s $WORK/exits ]]; then
        echo "a client ended before the revoke:" >&2
        cat "$WORK/exits" >&2
        cat "$WORK"/clients/*.err | sort | uniq -c >&2
        exit 1
    fi
done
LIVE=$(live_sessions)
echo "== sessions --json lists $LIVE live sessions"
((LIVE == N_SESSIONS)) || { echo "expected $N_SESSIONS" >&2; exit 1; }
bench_wait_commands_settled "$N_SESSIONS" "$TARGET_PORT"
bench_wait_quiet

# How long a small synchronous write takes on the state directory's disk right now: the
# broker's log appends and recording seals each wait for one or more.
FSYNC_MS=$(dd if=/dev/zero of="$WORK/fsync-probe" bs=512 count=50 oflag=dsync 2>&1 |
    awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") printf "%.2f", $(i - 1) * 1000 / 50 }')
rm -f "$WORK/fsync-probe"

# --- the revoke --------------------------------------------------------------------------------
broker_ticks() { awk '{ print $14 + $15 }' "/proc/$LATCH_PID/stat"; }
read -r BUSY0 ALL0 < <(bench_cpu_ticks)
B0=$(broker_ticks)
T0=${EPOCHREALTIME/[.,]/}
bastion revoke "$GRANT" --reason bench >"$WORK/revoke.out" 2>&1
T1=${EPOCHREALTIME/[.,]/}
for _ in $(seq 600); do
    [[ -s $WORK/exits ]] && (($(wc -l <"$WORK/exits") >= N_SESSIONS)) && break
    sleep 0.05
done
T2=${EPOCHREALTIME/[.,]/}
read -r BUSY1 ALL1 < <(bench_cpu_ticks)
B1=$(broker_ticks)
EXITED=$(wc -l <"$WORK/exits")
ENDED=$(grep -c '"cause":"revoked"' "$STATE/events.jsonl" || true)
for _ in $(seq 200); do
    ((ENDED >= N_SESSIONS)) && break
    sleep 0.05
    ENDED=$(grep -c '"cause":"revoked"' "$STATE/events.jsonl" || true)
done

# --- report ------------------------------------------------------------------------------------
# Nearest-rank percentiles of a list of numbers: "n p50 p99 max".
pct() { sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print 0, "-", "-", "-"; exit }
    printf "%d %.1f %.1f %.1f\n", NR, v[int((NR * 50 + 99) / 100)], v[int((NR * 99 + 99) / 100)], v[NR] }'; }
epoch_ms() { date -d "$1" +%s%3N; }
REVOKED_AT=$(grep -m1 '"type":"revoked"' "$STATE/events.jsonl" | sed 's/.*"time":"\([^"]*\)".*/\1/')
REVOKED_MS=$(($(epoch_ms "$REVOKED_AT") - T0 / 1000))

echo
echo "Revoke of one grant covering $N_SESSIONS live sessions (recording $RECORDING$([[ ${PIN_BROKER:-} == 1 ]] && echo ", broker pinned"))"
echo "revoke command: $(awk -v d=$((T1 - T0)) 'BEGIN { printf "%.1f", d / 1000 }') ms" \
     "(its output: $(head -1 "$WORK/revoke.out"));" \
     "revoked event logged (durable) $REVOKED_MS ms after the command started (log times are ms)"
printf '%-52s %5s %9s %9s %9s\n' metric n p50_ms p99_ms max_ms
read -r n p50 p99 max < <(awk -v t0="$T0" '{ printf "%.3f\n", ($2 - t0) / 1000 }' "$WORK/exits" | pct)
CLIENT_P99=$p99
printf '%-52s %5s %9s %9s %9s\n' "client exit - revoke command start" "$n" "$p50" "$p99" "$max"
read -r n p50 p99 max < <(awk -v t0="$T0" -v r="$REVOKED_MS" '{ printf "%.3f\n", ($2 - t0) / 1000 - r }' "$WORK/exits" | pct)
printf '%-52s %5s %9s %9s %9s\n' "client exit - revoked event time (ms resolution)" "$n" "$p50" "$p99" "$max"
read -r n p50 p99 max < <(grep '"cause":"revoked"' "$STATE/events.jsonl" |
    sed 's/.*"cut_ms":\([0-9]*\).*/\1/' | pct)
CUT_P99=$p99
printf '%-52s %5s %9s %9s %9s\n' "cut_ms (session_ended events)" "$n" "$p50" "$p99" "$max"
verdict() { awk -v v="$1" 'BEGIN { print (v != "-" && v < 100) ? "met" : "MISSED" }'; }
echo "target p99 < 100 ms: client exits $(verdict "$CLIENT_P99"), cut_ms $(verdict "$CUT_P99")"
awk -v w=$((T2 - T0)) -v b=$((B1 - B0)) -v busy=$((BUSY1 - BUSY0)) -v all=$((ALL1 - ALL0)) \
    -v hz="$(getconf CLK_TCK)" -v c="$CPUS" -v f="$FSYNC_MS" 'BEGIN {
    printf "from the revoke to the last client exit (%.2f s): the broker used %.2f s of CPU, the machine %.0f%% of its %d CPUs (clients, target sshd, broker); a 512-byte O_DSYNC write took %s ms before the revoke\n",
        w / 1e6, b / hz, (all > 0) ? 100 * busy / all : 0, c, f }'
echo "clients exited: $EXITED of $N_SESSIONS; exit statuses: $(cut -d' ' -f3 "$WORK/exits" | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
echo "session_ended with cause revoked: $ENDED of $N_SESSIONS"
SAW=$(grep -l "grant $GRANT was revoked" "$WORK"/clients/*.err 2>/dev/null | wc -l)
echo "clients that printed latch's line saying why: $SAW of $N_SESSIONS"
if [[ $RECORDING == on ]]; then
    sleep 1
    echo "recordings sealed: $(grep -c '"type":"recording_sealed"' "$STATE/events.jsonl" || true)"
fi
echo "broker stderr WARN/ERROR lines:"
grep -E ' (ERROR|WARN) ' "$WORK/latch.err" | sed 's/^[^ ]* *//' | sort | uniq -c | head -10 || true
