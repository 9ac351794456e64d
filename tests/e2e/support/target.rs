//! Real OpenSSH targets and the clients that reach them through the broker.
//!
//! - [`Target`]: a stock `/usr/sbin/sshd` on a free 127.0.0.1 port with its own host key,
//!   trusting the broker's user CA (`TrustedUserCAKeys STATE_DIR/user_ca_key.pub`) and
//!   nothing else: no authorized keys, no passwords. It logs verbosely to a file, so a test
//!   can read the certificate key id the broker logged in with.
//! - [`Config::target`]: the `[[hosts]]` entry that pins a target's host key.

use super::{run, wait_timeout, Config, Site, COMMAND_TIMEOUT};
use std::fmt::Write as _;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `sshd` may take to accept connections after it was started.
const TARGET_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Free ports are picked by binding port 0 and releasing it, so another process may take
/// one before `sshd` binds it; then we try again with another.
const BIND_ATTEMPTS: usize = 5;

/// A running stock `sshd`, killed (with every connection process it forked) when dropped.
pub struct Target {
    pub name: String,
    port: u16,
    dir: PathBuf,
    /// `ssh-ed25519 AAAA...` without the comment.
    host_key_line: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Target {
    /// Start `sshd` for host `name` in `site`. The CA file it trusts is read at each login,
    /// so the broker may create it after this (on its first start).
    #[track_caller]
    pub fn start(site: &Site, name: &str) -> Target {
        let dir = site.path().join("targets").join(name);
        fs::create_dir_all(&dir).expect("the target's directory");
        // sshd refuses to start without its privilege-separation directory.
        fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let key = dir.join("ssh_host_ed25519_key");
        let mut keygen = Command::new("ssh-keygen");
        keygen
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&key);
        run(keygen, COMMAND_TIMEOUT).ok();
        let host_key_line = fs::read_to_string(key.with_extension("pub"))
            .expect("ssh-keygen wrote the host public key")
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let mut target = Target {
            name: name.to_string(),
            port: 0,
            log: dir.join("sshd.log"),
            dir,
            host_key_line,
            child: None,
        };
        let mut failures = String::new();
        for _ in 0..BIND_ATTEMPTS {
            match target.try_start(&site.state_dir().join("user_ca_key.pub"), &key) {
                Ok(()) => return target,
                Err(e) => {
                    let _ = writeln!(failures, "{e}");
                }
            }
        }
        panic!("sshd for {name} did not start in {BIND_ATTEMPTS} attempts:\n{failures}");
    }

    fn try_start(&mut self, ca: &Path, key: &Path) -> Result<(), String> {
        let port = free_port();
        let config = self.dir.join("sshd_config");
        let text = format!(
            "Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {key}\n\
             TrustedUserCAKeys {ca}\n\
             AuthorizedKeysFile none\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             StrictModes no\n\
             PidFile {pid}\n\
             LogLevel VERBOSE\n\
             Subsystem sftp internal-sftp\n\
             PermitRootLogin yes\n\
             AllowTcpForwarding yes\n\
             PrintMotd no\n",
            key = key.display(),
            ca = ca.display(),
            pid = self.dir.join("sshd.pid").display(),
        );
        fs::write(&config, text).map_err(|e| format!("write sshd_config: {e}"))?;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("open {}: {e}", self.log.display()))?;
        // `-e` (log to stderr, here the log file) rather than `-E FILE`: with `-E`, OpenSSH
        // 9.2 logs only the listener's lines there, not the per-connection ones we need.
        let mut child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            // Its own process group, so Drop can end the connection processes it forks too.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run /usr/sbin/sshd: {e}"))?;
        let deadline = Instant::now() + TARGET_START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "sshd on port {port} exited ({status}); its log:\n{}",
                    self.log()
                ));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                self.port = port;
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "sshd did not accept on port {port} within {TARGET_START_TIMEOUT:?}; its log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The pinned host key line for the broker's config (`ssh-ed25519 AAAA...`).
    pub fn host_key_line(&self) -> &str {
        &self.host_key_line
    }

    /// Everything `sshd` logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The whole group: the listener and the per-connection processes it forked.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = wait_timeout(&mut child, Duration::from_secs(5));
        }
        if std::thread::panicking() {
            eprintln!(
                "---- sshd log of {} ({}) ----\n{}---- end of sshd log ----",
                self.name,
                self.log.display(),
                self.log()
            );
        }
    }
}

/// A port nobody listens on right now (bind port 0, read it, release it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

impl Config {
    /// A `[[hosts]]` entry for a running target, its host key pinned.
    pub fn target(self, target: &Target) -> Config {
        let (name, address) = (target.name.clone(), target.address());
        self.host_at(&name, &address, &[target.host_key_line()])
    }

    /// A `[[hosts]]` entry with any address and pinned keys (e.g. the wrong key).
    pub fn host_at(mut self, name: &str, address: &str, host_keys: &[&str]) -> Config {
        let keys: Vec<String> = host_keys.iter().map(|k| super::toml_string(k)).collect();
        self.hosts.push(format!(
            "[[hosts]]\nname = {}\naddress = {}\nhost_keys = [{}]\n",
            super::toml_string(name),
            super::toml_string(address),
            keys.join(", ")
        ));
        self
    }
}
