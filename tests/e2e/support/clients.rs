//! Clients that reach targets through the broker: `ssh LOGIN@HOST@bastion` run to the end
//! ([`Latch::to`]) or left running in the background ([`Running`]) while a test revokes,
//! kills or expires what it runs under; and the shared OpenSSH options for `scp`, `sftp` and
//! `rsync -e`.

use super::{run, wait_timeout, Latch, Out, User, COMMAND_TIMEOUT};
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

impl Latch {
    /// The broker's process id while it runs (for reading `/proc/PID/status`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The OpenSSH client options every tool shares (`ssh`, `scp`, `sftp`, `rsync -e`):
    /// only `user`'s key, the broker's host key verified, no config files, no agent, no
    /// prompts. Without the port, since `ssh` says `-p` and `scp`/`sftp` say `-P`.
    pub fn client_options(&self, user: &User) -> Vec<String> {
        let mut o: Vec<String> = vec!["-i".into(), user.key.display().to_string()];
        for opt in [
            "IdentitiesOnly=yes".to_string(),
            "IdentityAgent=none".to_string(),
            "BatchMode=yes".to_string(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".to_string(),
            "StrictHostKeyChecking=yes".to_string(),
            "LogLevel=ERROR".to_string(),
            "ConnectTimeout=10".to_string(),
        ] {
            o.push("-o".into());
            o.push(opt);
        }
        o.push("-F".into());
        o.push("/dev/null".into());
        o
    }

    /// `ssh -p PORT EXTRA... OPTIONS LOGIN@HOST@127.0.0.1 [REMOTE]`, not yet run. `remote` is
    /// sent as it is: the target's shell parses it.
    pub fn to_command(&self, user: &User, target: &str, extra: &[&str], remote: &str) -> Command {
        let mut cmd = Command::new("/usr/bin/ssh");
        // `extra` first: for `-o`, ssh keeps the first value it sees, so the caller's win.
        cmd.arg("-p")
            .arg(self.port.to_string())
            .args(extra)
            .args(self.client_options(user))
            .arg("--")
            .arg(format!("{target}@127.0.0.1"));
        if !remote.is_empty() {
            cmd.arg(remote);
        }
        cmd
    }

    /// Run `remote` on `target` (`LOGIN@HOST`) through the broker as `user`.
    pub fn to(&self, user: &User, target: &str, remote: &str) -> Out {
        self.to_with(user, target, &[], remote)
    }

    /// As [`Latch::to`], with extra `ssh` options before the destination.
    pub fn to_with(&self, user: &User, target: &str, extra: &[&str], remote: &str) -> Out {
        let out = run(
            self.to_command(user, target, extra, remote),
            COMMAND_TIMEOUT,
        );
        eprintln!("$ ssh {} {target}@bastion {remote}\n{out}", extra.join(" "));
        out
    }
}

/// A client process left running: its output is collected as it comes, so a test can await
/// a line, then act, then see how (and when) the process ended. Killed when dropped.
pub struct Running {
    child: Child,
    what: String,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    /// When the process was seen to exit, for cut latency.
    ended: Option<(Instant, ExitStatus)>,
}

/// Keep reading `r` into `into` until EOF.
fn collect(mut r: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => into
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&buf[..n]),
            }
        }
    })
}

impl Running {
    /// Spawn `cmd` with stdin closed and both outputs collected.
    #[track_caller]
    pub fn spawn(mut cmd: Command) -> Running {
        Running::spawn_with(&mut cmd, true)
    }

    /// Spawn `cmd` with stdin closed; stdout goes into a pipe nobody ever reads when
    /// `read_stdout` is false (a stalled reader), else it is collected.
    #[track_caller]
    pub fn spawn_with(cmd: &mut Command, read_stdout: bool) -> Running {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = vec![];
        if let Some(err) = child.stderr.take() {
            readers.push(collect(err, Arc::clone(&stderr)));
        }
        if read_stdout {
            if let Some(out) = child.stdout.take() {
                readers.push(collect(out, Arc::clone(&stdout)));
            }
        }
        Running {
            child,
            what,
            stdout,
            stderr,
            readers,
            ended: None,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// Has the process exited (without waiting)?
    pub fn has_exited(&mut self) -> bool {
        if self.ended.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.ended = Some((Instant::now(), status));
            }
        }
        self.ended.is_some()
    }

    /// Await `text` on stdout; panics with both streams if it does not come within `within`
    /// or the process exits first.
    #[track_caller]
    pub fn await_stdout(&mut self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.stdout().contains(text) {
                return;
            }
            if self.has_exited() || Instant::now() >= deadline {
                // A last look: the output may have arrived with the exit.
                std::thread::sleep(Duration::from_millis(50));
                if self.stdout().contains(text) {
                    return;
                }
                let exited = self.has_exited();
                panic!(
                    "{} never printed {text:?} (exited: {exited}):\n  stdout: {}\n  stderr: {}",
                    self.what,
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the process to exit within `within`; its output and when it exited. Panics
    /// (killing it) on timeout.
    #[track_caller]
    pub fn finish(mut self, within: Duration) -> (Out, Instant) {
        let deadline = Instant::now() + within;
        while !self.has_exited() {
            if Instant::now() >= deadline {
                let (out, err) = (self.stdout(), self.stderr());
                let _ = self.child.kill();
                panic!(
                    "{} did not exit within {within:?}:\n  stdout: {out}\n  stderr: {err}",
                    self.what
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let (at, status) = self.ended.expect("exited");
        let out = Out {
            status: status.code().unwrap_or(-1),
            stdout: self.stdout(),
            stderr: self.stderr(),
        };
        eprintln!("$ {}\n{out}", self.what);
        (out, at)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.has_exited() {
            let _ = self.child.kill();
            let _ = wait_timeout(&mut self.child, Duration::from_secs(5));
        }
    }
}
