//! Shared support for the end-to-end tests: the real `latch` binary, real OpenSSH clients,
//! one temporary directory per test and port 0 everywhere, so tests run in parallel.
//!
//! # Layout
//! - [`latch_bin`]: the broker binary built next to this test binary.
//! - [`Site`]: a test's temporary directory; makes [`User`]s with real `ssh-keygen` keys.
//! - [`Config`]: a small builder for the TOML config the broker runs on.
//! - [`Latch`]: a running `latch serve`: start, stop (SIGTERM), kill, start again on the same
//!   state, and [`Latch::ssh`] to run a command over SSH as a user.
//! - [`Out`]: what a process printed and its exit status.
//! - [`eventually`]: await a condition with a deadline instead of sleeping.
//! - [`target`]: real `sshd` targets ([`Target`]) and their `[[hosts]]` entries.
//! - [`clients`]: `ssh LOGIN@HOST@bastion` through the broker, run to the end
//!   ([`Latch::to`]) or left running ([`Running`]), and the options `scp`/`sftp`/`rsync` share.
//! - [`recordings`]: recordings on disk (cast, manifest, signature) and the public tools that
//!   check them (`asciinema`, `ssh-keygen -Y verify`, `sha256sum`); a broker under `ulimit`.

#![allow(dead_code)] // Each test module uses a different part of the support code.

pub mod clients;
pub mod recordings;
pub mod target;

pub use clients::Running;
pub use target::Target;

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long the broker may take to print its `latch listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the broker may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// No single client command should take anywhere near this; past it the test fails instead
/// of hanging the suite.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The `latch` binary of the profile this test was built with.
///
/// `current_exe()` is `target/<profile>/deps/e2e-HASH`, and the workspace's binaries are in
/// `target/<profile>/`. Cargo builds another package's binary only when asked, so the test
/// command builds them first (`cargo build --workspace --bins`).
pub fn latch_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("latch");
    if !bin.is_file() {
        panic!(
            "{} is missing: build it first: cargo build --workspace --bins",
            bin.display()
        );
    }
    bin
}

/// What a process printed, and how it ended.
#[derive(Debug, Clone)]
pub struct Out {
    /// The exit status; -1 when the process was ended by a signal.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// stdout as JSON; panics with both streams when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{self}"))
    }

    /// Panics unless the process exited 0; returns self for chaining.
    #[track_caller]
    pub fn ok(self) -> Out {
        assert_eq!(self.status, 0, "expected success:\n{self}");
        self
    }

    /// Panics unless the process exited with `status`.
    #[track_caller]
    pub fn expect_status(&self, status: i32) -> &Out {
        assert_eq!(
            self.status, status,
            "expected exit status {status}:\n{self}"
        );
        self
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "  status: {}\n  stdout: {}\n  stderr: {}",
            self.status,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

fn code(status: ExitStatus) -> i32 {
    status.code().unwrap_or(-1)
}

/// Run `cmd` to completion with piped output, failing the test if it takes longer than
/// `timeout` (a hung client must not hang the suite).
pub fn run(mut cmd: Command, timeout: Duration) -> Out {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    // Read both pipes on their own threads so a chatty process never blocks on a full pipe.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let status = match wait_timeout(&mut child, timeout) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} did not finish within {timeout:?}");
        }
    };
    Out {
        status: code(status),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Wait for `child` to exit, at most `timeout`.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Poll `check` every 100 ms until it returns `Ok`, for at most `within`. On timeout, panic
/// with `what` and the last `Err` (what was observed instead).
#[track_caller]
pub fn eventually<T>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// An RFC 3339 time from a JSON value; panics saying which value was not one.
#[track_caller]
pub fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {v}"))
}

/// A human duration (`4h`, `1h30m`) from a JSON value.
#[track_caller]
pub fn duration(v: &Value) -> chrono::Duration {
    v.as_str()
        .and_then(|s| policy::duration::parse(s).ok())
        .unwrap_or_else(|| panic!("not a duration: {v}"))
}

/// Quote `arg` for a POSIX shell: OpenSSH sends the remote command as one string, which latch
/// splits like a shell does, so arguments with spaces must survive that split.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.,:/=@%+".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// A test user: a name and a real Ed25519 key pair made by `ssh-keygen`.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    /// The private key file.
    pub key: PathBuf,
    /// The public key line (`ssh-ed25519 AAAA... name`).
    pub public: String,
}

impl User {
    /// The key's SHA256 fingerprint as OpenSSH prints it (`SHA256:...`).
    pub fn fingerprint(&self) -> String {
        let mut cmd = Command::new("ssh-keygen");
        cmd.arg("-lf").arg(self.key.with_extension("pub"));
        let out = run(cmd, COMMAND_TIMEOUT).ok();
        out.stdout
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("unexpected ssh-keygen -lf output: {}", out.stdout))
            .to_string()
    }
}

/// One test's temporary directory: keys, config, state, logs. Removed when dropped, so
/// declare it before the [`Latch`] that uses it (locals drop in reverse order).
pub struct Site {
    dir: TempDir,
}

impl Default for Site {
    fn default() -> Self {
        Site::new()
    }
}

impl Site {
    pub fn new() -> Site {
        Site {
            dir: tempfile::Builder::new()
                .prefix("latch-e2e-")
                .tempdir()
                .expect("a temporary directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where the broker keeps its state (absolute, so the config's location does not matter).
    pub fn state_dir(&self) -> PathBuf {
        self.path().join("state")
    }

    /// The broker's event log.
    pub fn events_path(&self) -> PathBuf {
        self.state_dir().join("events.jsonl")
    }

    /// Where [`Site::start`] writes the config.
    pub fn config_path(&self) -> PathBuf {
        self.path().join("latch.toml")
    }

    /// Make a user with a fresh key pair, as a person would: `ssh-keygen -t ed25519`.
    pub fn user(&self, name: &str) -> User {
        let keys = self.path().join("keys");
        fs::create_dir_all(&keys).expect("keys directory");
        let key = keys.join(name);
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&key);
        run(cmd, COMMAND_TIMEOUT).ok();
        let public = fs::read_to_string(key.with_extension("pub"))
            .expect("ssh-keygen wrote the public key")
            .trim()
            .to_string();
        User {
            name: name.to_string(),
            key,
            public,
        }
    }

    /// Write `config` and start a broker on it.
    #[track_caller]
    pub fn start(&self, config: &Config) -> Latch {
        let text = config.render(&self.state_dir());
        fs::write(self.config_path(), text).expect("write the config");
        let mut latch = Latch {
            bin: latch_bin(),
            config: self.config_path(),
            state_dir: self.state_dir(),
            log: self.path().join("broker.log"),
            known_hosts: self.path().join("known_hosts"),
            child: None,
            port: 0,
        };
        latch.start_again();
        latch
    }

    /// Run the local `latch` CLI (`init`, `config check`, `audit verify`...).
    pub fn latch(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(latch_bin());
        cmd.args(args).current_dir(self.path());
        run(cmd, COMMAND_TIMEOUT)
    }
}

/// The config a test runs the broker on, rendered to TOML. Defaults keep requests terse
/// (`require_reason = false`) and timeouts long, so only what a test sets matters.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[jit]` keys and their TOML values, in order; a later value for a key wins.
    jit: Vec<(String, String)>,
    users: Vec<String>,
    roles: Vec<String>,
    hosts: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

impl Config {
    pub fn new() -> Config {
        Config {
            jit: vec![],
            users: vec![],
            roles: vec![],
            hosts: vec![],
        }
        .jit("default_duration", "1h")
        .jit("max_duration", "8h")
        .jit("approval_timeout", "1h")
        .jit("require_reason", "false")
    }

    /// Set a `[jit]` key. `true`/`false` are written as booleans, anything else as a string.
    pub fn jit(mut self, key: &str, value: &str) -> Config {
        let value = match value {
            "true" | "false" => value.to_string(),
            _ => toml_string(value),
        };
        self.jit.retain(|(k, _)| k != key);
        self.jit.push((key.to_string(), value));
        self
    }

    /// A user with their key, standing roles and requestable roles.
    pub fn user(self, user: &User, roles: &[&str], can_request: &[&str]) -> Config {
        self.user_with(user, roles, can_request, "")
    }

    /// As [`Config::user`], with extra TOML lines for the entry (e.g. `totp_secret = "..."`).
    pub fn user_with(
        mut self,
        user: &User,
        roles: &[&str],
        can_request: &[&str],
        extra: &str,
    ) -> Config {
        let mut s = String::new();
        let _ = writeln!(s, "[[users]]\nname = {}", toml_string(&user.name));
        let _ = writeln!(s, "keys = [{}]", toml_string(&user.public));
        let _ = writeln!(s, "roles = {}", toml_list(roles));
        let _ = writeln!(s, "can_request = {}", toml_list(can_request));
        s.push_str(extra);
        self.users.push(s);
        self
    }

    /// A role: `name`, then `body` as raw TOML lines (`hosts = [...]`, `auto_approve = true`).
    pub fn role(mut self, name: &str, body: &str) -> Config {
        self.roles.push(format!(
            "[[roles]]\nname = {}\n{}\n",
            toml_string(name),
            body.trim()
        ));
        self
    }

    /// A host by name. The address is never dialled by the control plane; no host keys.
    pub fn host(mut self, name: &str) -> Config {
        self.hosts.push(format!(
            "[[hosts]]\nname = {}\naddress = \"127.0.0.1:1\"\nhost_keys = []\n",
            toml_string(name)
        ));
        self
    }

    pub fn render(&self, state_dir: &Path) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "[server]\nssh_listen = \"127.0.0.1:0\"\nstate_dir = {}\n",
            toml_string(&state_dir.display().to_string())
        );
        s.push_str("[jit]\n");
        for (k, v) in &self.jit {
            let _ = writeln!(s, "{k} = {v}");
        }
        s.push('\n');
        for block in self.users.iter().chain(&self.roles).chain(&self.hosts) {
            s.push_str(block);
            s.push('\n');
        }
        s
    }
}

/// A TOML basic string: JSON string escaping is a valid subset of TOML's.
pub fn toml_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn toml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// A running (or stopped) `latch serve`. Kills the broker when dropped, and prints the
/// broker's log when the test is failing, since that is where the reason usually is.
pub struct Latch {
    bin: PathBuf,
    pub config: PathBuf,
    pub state_dir: PathBuf,
    /// The broker's stderr, appended across restarts.
    pub log: PathBuf,
    /// `[127.0.0.1]:PORT <broker host key>`, so ssh verifies the broker as users should.
    known_hosts: PathBuf,
    child: Option<Child>,
    pub port: u16,
}

impl Latch {
    /// Start the broker on this handle's config and state, and wait until it listens.
    #[track_caller]
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the broker is already running");
        let (child, port) = self
            .spawn()
            .unwrap_or_else(|e| panic!("latch serve did not start: {e}"));
        self.child = Some(child);
        self.port = port;
        let host_key = fs::read_to_string(self.state_dir.join("ssh_host_ed25519_key.pub"))
            .expect("the broker wrote its public host key to the state directory");
        fs::write(
            &self.known_hosts,
            format!("[127.0.0.1]:{port} {}\n", host_key.trim()),
        )
        .expect("write known_hosts");
    }

    /// Spawn `latch serve` and wait for its ready line; on failure, the error carries the
    /// broker's log.
    pub fn spawn(&self) -> Result<(Child, u16), String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let mut child = Command::new(&self.bin)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env("LATCH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Keep reading stdout for the broker's whole life so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("latch listening on ") {
                        let port = addr
                            .rsplit_once(':')
                            .and_then(|(_, p)| p.trim().parse::<u16>().ok())
                            .ok_or_else(|| format!("unparsable ready line {line:?}"))?;
                        return Ok((child, port));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the broker is exiting; report how, with its log.
                    let status = wait_timeout(&mut child, Duration::from_secs(5));
                    return Err(format!(
                        "it exited ({status:?}) before listening; its log:\n{}",
                        self.log_text()
                    ));
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "it exited ({status}) before listening; its log:\n{}",
                    self.log_text()
                ));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no 'latch listening on' line within {START_TIMEOUT:?}; its log:\n{}",
                    self.log_text()
                ));
            }
        }
    }

    /// Stop the broker as an operator would (SIGTERM) and check it exits cleanly.
    #[track_caller]
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("the broker is running");
        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(term.success(), "kill -TERM failed");
        match wait_timeout(&mut child, STOP_TIMEOUT) {
            Some(status) => assert!(
                status.success(),
                "the broker exited with {status} on SIGTERM; its log:\n{}",
                self.log_text()
            ),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the broker did not exit within {STOP_TIMEOUT:?} of SIGTERM; its log:\n{}",
                    self.log_text()
                );
            }
        }
    }

    /// Kill the broker at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Run `ssh bastion ARGS...` as `user` with the real OpenSSH client, verifying the
    /// broker's host key and offering only the user's key.
    pub fn ssh(&self, user: &User, args: &[&str]) -> Out {
        self.ssh_with_key(&user.name, &user.key, args)
    }

    /// As [`Latch::ssh`], with any login name and key (e.g. a key no user owns).
    pub fn ssh_with_key(&self, login: &str, key: &Path, args: &[&str]) -> Out {
        let mut cmd = Command::new("/usr/bin/ssh");
        cmd.arg("-p")
            .arg(self.port.to_string())
            .arg("-i")
            .arg(key)
            .arg("-l")
            .arg(login)
            .args(["-o", "IdentitiesOnly=yes"])
            .args(["-o", "IdentityAgent=none"])
            .args(["-o", "BatchMode=yes"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args(["-o", "GlobalKnownHostsFile=/dev/null"])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .args(["-o", "LogLevel=ERROR"])
            .args(["-o", "ConnectTimeout=10"])
            .args(["-F", "/dev/null"])
            // `--` ends ssh's options, so nothing in the command is taken for one.
            .args(["--", "127.0.0.1"]);
        if !args.is_empty() {
            let line: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
            cmd.arg(line.join(" "));
        }
        let out = run(cmd, COMMAND_TIMEOUT);
        // Captured by the test harness and shown only when the test fails.
        eprintln!("$ ssh {login}@bastion {}\n{out}", args.join(" "));
        out
    }

    /// Every record of the event log, parsed.
    pub fn events(&self) -> Vec<Value> {
        read_events(&self.state_dir.join("events.jsonl"))
    }
}

/// The records of an event log file, one JSON value per complete line.
pub fn read_events(path: &Path) -> Vec<Value> {
    let mut text = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: line is not JSON ({e}): {l}", path.display()))
        })
        .collect()
}

impl Drop for Latch {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- broker log ({}) ----\n{}---- end of broker log ----",
                self.log.display(),
                self.log_text()
            );
        }
    }
}
