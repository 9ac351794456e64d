#!/usr/bin/env bash
# End-to-end time of `ssh bastion request ...` against plain `ssh localhost true`, measured in
# the same run, interleaved, with the same client and the same options.
#
#   direct  ssh to a private OpenSSH sshd on 127.0.0.1 running `true`: the baseline, what any
#           SSH round trip costs on this machine (key exchange, auth, one exec channel). sshd
#           runs the command through the account's login shell, so this includes that shell's
#           start-up, and bash reads ~/.bashrc for commands that arrive over SSH.
#   noshell the same sshd, `ssh -n -s ... sftp` to its in-process `internal-sftp` subsystem,
#           which ends at once on the closed stdin: the same round trip without any shell,
#           the baseline to use when the account's ~/.bashrc is slow.
#   whoami  ssh to `latch serve` running `whoami`: latch's SSH server and command interface,
#           a read-only command (no log append).
#   request ssh to `latch serve` running `request --role bench --hosts 'web-*' ...` on an
#           auto-approved role: the command path with a durable (fsynced) append.
#
# Usage: bench/request_vs_ssh.sh [N]      (N iterations of each, default 50)
# Needs: cargo, ssh, ssh-keygen, /usr/sbin/sshd. Run as root, or as a user sshd can log in as
# (it logs in as the current user). Nothing is left behind: the temporary directory and both
# servers are removed on exit.
set -euo pipefail

N=${1:-50}
WARMUP=3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SSHD=/usr/sbin/sshd

for tool in cargo ssh ssh-keygen "$SSHD"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
if [[ -z ${EPOCHREALTIME:-} ]]; then
    echo "needs bash 5 (EPOCHREALTIME) for fork-free timing" >&2
    exit 1
fi

# No "latch" in the server's command line or name: on a shared development machine, other
# tooling's `pkill latch` (test clean-ups) would otherwise end the benchmark half-way.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-e2e.XXXXXX")
LATCH_PID=
SSHD_PID=
cleanup() {
    set +e
    # Only the two servers this script started, by their ids.
    [[ -n $LATCH_PID ]] && kill "$LATCH_PID" 2>/dev/null && wait "$LATCH_PID" 2>/dev/null
    [[ -n $SSHD_PID ]] && kill "$SSHD_PID" 2>/dev/null && wait "$SSHD_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building latch (release)"
(cd "$ROOT" && cargo build --release -p latch --quiet)
LATCH="$WORK/bastion"
cp "$ROOT/target/release/latch" "$LATCH"

# Clock ticks (all CPUs) busy and total, from /proc/stat, for the contention line.
cpu_ticks() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6}' /proc/stat; }
# This shell's own and its waited-for children's CPU ticks.
own_ticks() { awk '{print $14+$15+$16+$17}' "/proc/$$/stat"; }
read -r BUSY0 TOTAL0 < <(cpu_ticks)
OWN0=$(own_ticks)

# --- keys and configs --------------------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -C bench@client -f "$WORK/client"
ssh-keygen -q -t ed25519 -N '' -C bench@sshd -f "$WORK/sshd_host_key"
cp "$WORK/client.pub" "$WORK/authorized_keys"
CLIENT_KEY=$(cat "$WORK/client.pub")

cat >"$WORK/bastion.toml" <<EOF
[server]
state_dir = "./latch-data"

[jit]
default_duration = "1h"
max_duration = "8h"
require_reason = true

[[users]]
name = "bench"
keys = ["$CLIENT_KEY"]
can_request = ["bench"]

[[roles]]
name = "bench"
logins = ["root", "deploy"]
hosts = ["*"]
auto_approve = true
EOF
"$LATCH" config check --config "$WORK/bastion.toml" >/dev/null

# --- latch serve ---------------------------------------------------------------------------
"$LATCH" serve --config "$WORK/bastion.toml" --listen 127.0.0.1:0 \
    >"$WORK/latch.out" 2>"$WORK/latch.err" &
LATCH_PID=$!
LATCH_PORT=
for _ in $(seq 200); do
    if line=$(grep -m1 '^latch listening on ' "$WORK/latch.out" 2>/dev/null); then
        LATCH_PORT=${line##*:}
        break
    fi
    kill -0 "$LATCH_PID" 2>/dev/null || break
    sleep 0.05
done
if [[ -z $LATCH_PORT ]]; then
    echo "latch serve did not start:" >&2
    cat "$WORK/latch.out" "$WORK/latch.err" >&2
    exit 1
fi

# --- a private sshd --------------------------------------------------------------------------
mkdir -p /run/sshd 2>/dev/null || true
cat >"$WORK/sshd_config" <<EOF
ListenAddress 127.0.0.1
HostKey $WORK/sshd_host_key
AuthorizedKeysFile $WORK/authorized_keys
PidFile $WORK/sshd.pid
UsePAM no
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
LogLevel ERROR
Subsystem sftp internal-sftp
EOF
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
SSHD_PORT=
for _ in $(seq 20); do
    port=$((20000 + RANDOM % 40000))
    listening "$port" && continue
    "$SSHD" -D -e -f "$WORK/sshd_config" -p "$port" 2>"$WORK/sshd.err" &
    SSHD_PID=$!
    for _ in $(seq 100); do
        if listening "$port"; then SSHD_PORT=$port; break; fi
        kill -0 "$SSHD_PID" 2>/dev/null || break
        sleep 0.05
    done
    [[ -n $SSHD_PORT ]] && break
    kill "$SSHD_PID" 2>/dev/null && wait "$SSHD_PID" 2>/dev/null || true
    SSHD_PID=
done
if [[ -z $SSHD_PORT ]]; then
    echo "sshd did not start:" >&2
    cat "$WORK/sshd.err" >&2
    exit 1
fi

# --- the runs --------------------------------------------------------------------------------
SSH=(ssh -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes
     -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
     -F /dev/null -i "$WORK/client")
ME=$(id -un)

run_direct()  { "${SSH[@]}" -p "$SSHD_PORT" "$ME@127.0.0.1" true; }
run_noshell() { "${SSH[@]}" -n -s -p "$SSHD_PORT" "$ME@127.0.0.1" sftp; }
run_whoami()  { "${SSH[@]}" -p "$LATCH_PORT" "$ME@127.0.0.1" whoami; }
run_request() {
    "${SSH[@]}" -p "$LATCH_PORT" "$ME@127.0.0.1" \
        request --role bench --hosts "'web-*'" --duration 1m --reason bench
}

# Runs one case, appends its wall time in microseconds to the case's list; stops the
# benchmark with the output if the command fails.
declare -A TIMES=()
timed() {
    local name=$1 start end
    start=${EPOCHREALTIME/[.,]/}
    if ! "run_$name" >"$WORK/out" 2>&1; then
        echo "$name failed:" >&2
        cat "$WORK/out" >&2
        if ! kill -0 "$LATCH_PID" 2>/dev/null; then
            echo "latch serve has exited; the end of its log:" >&2
            tail -n 5 "$WORK/latch.err" >&2
            grep -q 'shutting down' "$WORK/latch.err" &&
                echo "(it was sent SIGTERM or SIGINT by something outside this script)" >&2
        fi
        exit 1
    fi
    end=${EPOCHREALTIME/[.,]/}
    TIMES[$name]+="$((end - start)) "
}

echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== latch on 127.0.0.1:$LATCH_PORT, sshd on 127.0.0.1:$SSHD_PORT; $N timed runs each after" \
     "$WARMUP warm-up runs, interleaved (order rotates each iteration)"
# What each server negotiated with the same client: OpenSSH prefers a post-quantum hybrid
# key exchange, which costs more CPU than curve25519.
kex() { "${SSH[@]}" -v "$@" 2>&1 | grep -m1 'kex: algorithm' | sed 's/.*kex: algorithm: //'; }
echo "== key exchange: sshd $(kex -n -s -p "$SSHD_PORT" "$ME@127.0.0.1" sftp)," \
     "latch $(kex -p "$LATCH_PORT" "$ME@127.0.0.1" whoami)"
for _ in $(seq "$WARMUP"); do
    run_direct >/dev/null; run_noshell >/dev/null; run_whoami >/dev/null; run_request >/dev/null
done
TIMES=()
CASES=(direct noshell whoami request)
for i in $(seq "$N"); do
    for j in 0 1 2 3; do
        timed "${CASES[$(((i + j) % 4))]}"
    done
done

# --- report ------------------------------------------------------------------------------------
# Nearest-rank percentiles of a list of microseconds; prints "p50 p90 min max".
stats() {
    tr ' ' '\n' | grep -v '^$' | sort -n | awk '
        { v[NR] = $1 }
        END {
            p50 = v[int((NR * 50 + 99) / 100)]; p90 = v[int((NR * 90 + 99) / 100)]
            print p50, p90, v[1], v[NR]
        }'
}
ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }

echo
printf '%-9s %5s %12s %12s %12s %12s\n' case n p50 p90 min max
declare -A P50=()
for name in "${CASES[@]}"; do
    read -r p50 p90 min max < <(stats <<<"${TIMES[$name]}")
    P50[$name]=$p50
    printf '%-9s %5s %12s %12s %12s %12s\n' "$name" "$N" "$(ms "$p50")" "$(ms "$p90")" \
        "$(ms "$min")" "$(ms "$max")"
done
echo
awk -v r="${P50[request]}" -v w="${P50[whoami]}" -v d="${P50[direct]}" -v n="${P50[noshell]}" 'BEGIN {
    printf "ratio of medians: request / direct  = %.2f, whoami / direct  = %.2f\n", r / d, w / d
    printf "                  request / noshell = %.2f, whoami / noshell = %.2f\n", r / n, w / n
    printf "request - whoami (the commit: policy, fsynced append, apply) = %.2f ms at the median\n", (r - w) / 1000
}'

# Stop the servers now so their CPU time counts as ours in the contention figure.
kill "$LATCH_PID" "$SSHD_PID" 2>/dev/null || true
wait "$LATCH_PID" "$SSHD_PID" 2>/dev/null || true
LATCH_PID= SSHD_PID=
read -r BUSY1 TOTAL1 < <(cpu_ticks)
OWN1=$(own_ticks)
awk -v b=$((BUSY1 - BUSY0)) -v t=$((TOTAL1 - TOTAL0)) -v o=$((OWN1 - OWN0)) -v c="$(nproc)" 'BEGIN {
    others = (t > 0) ? (b - o) * c / t : 0
    if (others < 0) others = 0
    printf "other processes kept %.2f of %d CPUs busy during the run%s\n", others, c,
        (others > 0.2) ? " (contended: expect slower, noisier figures than on an idle machine)" : ""
}'
