# Set-up shared by the data-plane and recorder benchmarks in bench/. Sourced, not run.
#
# The caller sets ROOT (the repository) and WORK (a fresh temporary directory it removes on
# exit), and calls bench_stop_target from its own cleanup. Everything here starts real
# processes: a release `latch serve` copied into WORK, and private OpenSSH sshd targets on
# free loopback ports.

SSHD=/usr/sbin/sshd
SSHD_PIDS=()

# Refuse to start without what the benchmarks need.
bench_preflight() {
    local tool
    for tool in cargo ssh ssh-keygen "$SSHD"; do
        command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
    done
    [[ $(id -u) == 0 ]] || { echo "run as root: the target login is root" >&2; exit 1; }
    [[ -n ${EPOCHREALTIME:-} ]] || { echo "needs bash 5 (EPOCHREALTIME)" >&2; exit 1; }
}

# Build latch in release and copy it to WORK/bench-broker, sets LATCH. No "latch" in the
# process name: other tooling's `pkill latch` must not end a benchmark half-way.
bench_build_latch() {
    echo "== building latch (release)"
    (cd "$ROOT" && cargo build --release -p latch --quiet)
    LATCH="$WORK/bench-broker"
    cp "$ROOT/target/release/latch" "$LATCH"
}

# The client's key and the target's host key; sets CLIENT_KEY and HOST_KEY (public, one line).
bench_keys() {
    ssh-keygen -q -t ed25519 -N '' -C bench@client -f "$WORK/client"
    ssh-keygen -q -t ed25519 -N '' -C bench@target -f "$WORK/target_host_key"
    CLIENT_KEY=$(cut -d' ' -f1-2 "$WORK/client.pub")
    HOST_KEY=$(cut -d' ' -f1-2 "$WORK/target_host_key.pub")
}

# bench_start_sshd NAME CA_FILE [MODE [LOGLEVEL]]: a private sshd on a free port that trusts
# the user CA(s) in CA_FILE (it may not exist yet: sshd reads it at each login), logs in
# root, and serves sftp in-process. Sets SSHD_PORT and SSHD_PID and adds the pid to
# SSHD_PIDS. MODE -D (the default) serves connections as usual; -d serves one connection in
# the foreground with debug output, and is detected from its log rather than by connecting,
# which would use up its one connection. Each sshd runs in its own process group (setsid),
# so bench_stop_target can end it with the connections it forked.
bench_start_sshd() {
    local name=$1 ca=$2 mode=${3:--D} level=${4:-ERROR} port attempt
    SSHD_PORT= SSHD_PID=
    mkdir -p /run/sshd
    for attempt in $(seq 20); do
        port=$((20000 + RANDOM % 40000))
        cat >"$WORK/$name.sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $WORK/target_host_key
TrustedUserCAKeys $ca
AuthorizedKeysFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $WORK/$name.pid
LogLevel $level
Subsystem sftp internal-sftp
PermitRootLogin yes
PrintMotd no
MaxStartups 1000
EOF
        : >"$WORK/$name.log"
        setsid "$SSHD" "$mode" -e -f "$WORK/$name.sshd_config" >"$WORK/$name.log" 2>&1 &
        SSHD_PID=$!
        for _ in $(seq 100); do
            if [[ $mode == -d ]]; then
                grep -q "Server listening on 127.0.0.1 port $port" "$WORK/$name.log" && SSHD_PORT=$port
            elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                SSHD_PORT=$port
            fi
            if [[ -n $SSHD_PORT ]]; then
                SSHD_PIDS+=("$SSHD_PID")
                return 0
            fi
            kill -0 "$SSHD_PID" 2>/dev/null || break
            sleep 0.05
        done
        kill "$SSHD_PID" 2>/dev/null && wait "$SSHD_PID" 2>/dev/null || true
    done
    echo "sshd $name did not start:" >&2
    cat "$WORK/$name.log" >&2
    exit 1
}

# bench_start_latch DIR [PREFIX...]: check DIR/bastion.toml, then run `latch serve` on it on
# a free port, under PREFIX if given (e.g. `taskset -c 1`). Output in DIR/latch.out and
# DIR/latch.err. Sets BROKER_PID and BROKER_PORT.
bench_start_latch() {
    local dir=$1 line
    shift
    BROKER_PID= BROKER_PORT=
    "$LATCH" config check --config "$dir/bastion.toml" >/dev/null
    "$@" "$LATCH" serve --config "$dir/bastion.toml" --listen 127.0.0.1:0 \
        >"$dir/latch.out" 2>"$dir/latch.err" &
    BROKER_PID=$!
    for _ in $(seq 200); do
        if line=$(grep -m1 '^latch listening on ' "$dir/latch.out" 2>/dev/null); then
            BROKER_PORT=${line##*:}
            return 0
        fi
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "latch serve did not start ($dir):" >&2
    cat "$dir/latch.out" "$dir/latch.err" >&2
    kill "$BROKER_PID" 2>/dev/null
    exit 1
}

# The OpenSSH client as every benchmark runs it: no config files, no agent, no prompts, and
# the client key.
bench_ssh=(ssh -F /dev/null -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes
           -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)

# Commands sessions left running on the target (sshd does not end a no-pty command when its
# connection closes): those whose SSH_CONNECTION names a target port given.
bench_target_leftovers() {
    local port
    for port in "$@"; do
        grep -lsxz "SSH_CONNECTION=127.0.0.1 [0-9]* 127.0.0.1 $port" /proc/[0-9]*/environ |
            cut -d/ -f3
    done
    return 0
}

# End the sshd targets, and the `sleep` commands their sessions left behind on TARGET
# PORTS. Only the `sleep` commands: a login shell still in ~/.bashrc may hold a lock there
# (pyenv rehash's, for one), and killing it would leave the lock behind for every later
# login.
bench_stop_target() {
    local pid comm
    for pid in "${SSHD_PIDS[@]}"; do
        kill -- "-$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    for pid in $(bench_target_leftovers "$@"); do
        read -r comm 2>/dev/null <"/proc/$pid/comm" && [[ $comm == sleep ]] && kill "$pid" 2>/dev/null
    done
    return 0
}

# Busy and total CPU ticks of the whole machine, from /proc/stat.
bench_cpu_ticks() {
    awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}

# Wait (at most QUIET_WAIT seconds, default 120) until the CPUs are nearly idle, three
# seconds in a row under 25% busy, so a measurement does not start in the middle of someone
# else's build on a shared machine. Says so when it gives up.
bench_wait_quiet() {
    local deadline=$((SECONDS + ${QUIET_WAIT:-120})) calm=0 b0 t0 b1 t1
    read -r b0 t0 < <(bench_cpu_ticks)
    while ((SECONDS < deadline)); do
        sleep 1
        read -r b1 t1 < <(bench_cpu_ticks)
        if (((b1 - b0) * 100 < 25 * (t1 - t0))); then calm=$((calm + 1)); else calm=0; fi
        b0=$b1 t0=$t1
        ((calm >= 3)) && return 0
    done
    echo "   (the CPUs did not quiet down within ${QUIET_WAIT:-120} s; expect noisier figures)"
}

# bench_wait_commands_settled N PORT: wait until the target on PORT runs N `sleep`
# commands for our sessions and nothing else of ours. sshd runs each command through root's
# login shell, which reads ~/.bashrc; where that does real work (on the machine these
# figures come from, `pyenv init` runs `pyenv rehash`, which is serialised on a lock file and
# retried every 0.1 s), N logins at once keep both CPUs busy long after the sessions are up.
bench_wait_commands_settled() {
    local n=$1 port=$2 start=$SECONDS pid comm sleeping others
    for _ in $(seq 600); do
        sleeping=0 others=0
        for pid in $(bench_target_leftovers "$port"); do
            read -r comm 2>/dev/null <"/proc/$pid/comm" || continue
            if [[ $comm == sleep ]]; then sleeping=$((sleeping + 1)); else others=$((others + 1)); fi
        done
        if ((sleeping >= n && others == 0)); then
            echo "== every session runs its sleep 600 and nothing else ($((SECONDS - start)) s after the sessions were up)"
            return 0
        fi
        sleep 0.5
    done
    echo "the target's commands did not settle within 300 s" >&2
    exit 1
}
