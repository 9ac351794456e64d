//! Session recordings as an auditor finds them on disk, and the tools that check them.
//!
//! - [`Config::recordings`]: the `[recordings]` table (retention).
//! - [`Site::start_under`]: start the broker under a shell prelude (`ulimit -f 2048`).
//! - [`Recording`]: one channel's files in `STATE_DIR/recordings/` (`.cast`, `.manifest.json`,
//!   `.manifest.json.sig`, `.partial.json` while open), read as JSON.
//! - [`Cast`]: an asciicast v2 file parsed line by line, without the product's reader.
//! - [`sha256`], [`asciinema_cat`], [`ssh_keygen_verify`]: the public tools an auditor uses.
//! - [`run_with_input`]: a client with something typed on its stdin (`ssh -tt`).

use super::{latch_bin, run, wait_timeout, Config, Latch, Out, Site, COMMAND_TIMEOUT};
use serde_json::Value;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

impl Config {
    /// A `[recordings]` table with `body` as its TOML lines (`retention = "1s"`). Any
    /// `[[hosts]]` rendered after it still belongs to the root table, so order is free.
    pub fn recordings(mut self, body: &str) -> Config {
        self.hosts.push(format!("[recordings]\n{}\n", body.trim()));
        self
    }
}

impl Site {
    /// Write `config` and start a broker on it under `prelude`, shell lines run before the
    /// broker is exec'd in the same process (`ulimit -f 2048`), so limits apply to it.
    #[track_caller]
    pub fn start_under(&self, config: &Config, prelude: &str) -> Latch {
        let text = config.render(&self.state_dir());
        fs::write(self.config_path(), text).expect("write the config");
        let source = self.path().join("latch-wrapper.src");
        let wrapper = self.path().join("latch-wrapper");
        fs::write(
            &source,
            format!(
                "#!/bin/bash\n{prelude}\nexec {} \"$@\"\n",
                shell_word(&latch_bin().display().to_string())
            ),
        )
        .expect("write the wrapper");
        // `install` writes the executable in its own process: a file this (multi-threaded)
        // process had open for writing could leak into another test's fork and make exec
        // fail with ETXTBSY.
        let mut install = Command::new("install");
        install.args(["-m", "0755"]).arg(&source).arg(&wrapper);
        run(install, COMMAND_TIMEOUT).ok();
        let mut latch = Latch {
            bin: wrapper,
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

    /// `latch audit public-key --config F` written to `allowed_signers`; its path.
    #[track_caller]
    pub fn allowed_signers(&self) -> PathBuf {
        let config = self.config_path().display().to_string();
        let out = self
            .latch(&["audit", "public-key", "--config", &config])
            .ok();
        let path = self.path().join("allowed_signers");
        fs::write(&path, &out.stdout).expect("write allowed_signers");
        path
    }

    /// `latch recordings verify --config F [MANIFEST...]`.
    pub fn verify_recordings(&self, manifests: &[&Path]) -> Out {
        let config = self.config_path().display().to_string();
        let mut args = vec!["recordings", "verify", "--config", &config];
        let shown: Vec<String> = manifests.iter().map(|m| m.display().to_string()).collect();
        args.extend(shown.iter().map(String::as_str));
        let out = self.latch(&args);
        eprintln!("$ latch {}\n{out}", args.join(" "));
        out
    }
}

/// A single shell word (for the wrapper script).
fn shell_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Latch {
    /// `STATE_DIR/recordings`.
    pub fn recordings_dir(&self) -> PathBuf {
        self.state_dir.join("recordings")
    }

    /// The recording named `name` (`s3-c0`), whether or not it exists yet.
    pub fn recording(&self, name: &str) -> Recording {
        Recording {
            name: name.to_string(),
            dir: self.recordings_dir(),
        }
    }

    /// The event log's records of `kind` (`recording_sealed`), their `data`, oldest first.
    pub fn event_data(&self, kind: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|r| r["event"]["type"] == kind)
            .map(|r| r["event"]["data"].clone())
            .collect()
    }

    /// Await the `recording_sealed` events of `session` (at least one), their `data`.
    #[track_caller]
    pub fn sealed(&self, session: &str) -> Vec<Value> {
        super::eventually(
            Duration::from_secs(10),
            &format!("recording_sealed for {session}"),
            || {
                let seals: Vec<Value> = self
                    .event_data("recording_sealed")
                    .into_iter()
                    .filter(|d| d["session"] == session)
                    .collect();
                if seals.is_empty() {
                    Err(format!(
                        "seals so far: {:?}",
                        self.event_data("recording_sealed")
                    ))
                } else {
                    Ok(seals)
                }
            },
        )
    }

    /// Files in the recordings directory, sorted.
    pub fn recording_files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.recordings_dir())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// One channel's recording files.
#[derive(Debug, Clone)]
pub struct Recording {
    /// `s3-c0`.
    pub name: String,
    pub dir: PathBuf,
}

impl Recording {
    pub fn cast_path(&self) -> PathBuf {
        self.dir.join(format!("{}.cast", self.name))
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(format!("{}.manifest.json", self.name))
    }

    pub fn signature_path(&self) -> PathBuf {
        self.dir.join(format!("{}.manifest.json.sig", self.name))
    }

    pub fn partial_path(&self) -> PathBuf {
        self.dir.join(format!("{}.partial.json", self.name))
    }

    /// The sealed manifest, parsed.
    #[track_caller]
    pub fn manifest(&self) -> Value {
        let path = self.manifest_path();
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", path.display()))
    }

    /// The cast, parsed.
    #[track_caller]
    pub fn cast(&self) -> Cast {
        Cast::read(&self.cast_path())
    }
}

/// An asciicast v2 file: the header line and `[time, code, data]` events.
#[derive(Debug, Clone)]
pub struct Cast {
    pub header: Value,
    /// (seconds since start, `o`/`i`/`r`/`m`, data).
    pub events: Vec<(f64, String, String)>,
    /// The file as it is.
    pub text: String,
}

impl Cast {
    /// Parse `path`: every line must be JSON (a header object, then 3-element arrays).
    #[track_caller]
    pub fn read(path: &Path) -> Cast {
        let bytes =
            fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let text = String::from_utf8(bytes)
            .unwrap_or_else(|e| panic!("{} is not UTF-8: {e}", path.display()));
        let mut lines = text.lines();
        let header: Value = lines
            .next()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("{} has no JSON header line:\n{text}", path.display()));
        let events = lines
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("{}: event line is not JSON ({e}): {l}", path.display())
                });
                match (
                    v.get(0).and_then(Value::as_f64),
                    v[1].as_str(),
                    v[2].as_str(),
                ) {
                    (Some(t), Some(code), Some(data)) if v.as_array().map(Vec::len) == Some(3) => {
                        (t, code.to_string(), data.to_string())
                    }
                    _ => panic!("{}: not a [time, code, data] event: {l}", path.display()),
                }
            })
            .collect();
        Cast {
            header,
            events,
            text,
        }
    }

    /// The data of every event with `code`, in order.
    pub fn data(&self, code: &str) -> Vec<&str> {
        self.events
            .iter()
            .filter(|(_, c, _)| c == code)
            .map(|(_, _, d)| d.as_str())
            .collect()
    }

    /// Everything the session printed (`o` events joined).
    pub fn output(&self) -> String {
        self.data("o").concat()
    }
}

/// `sha256sum FILE`: the hex digest.
#[track_caller]
pub fn sha256(path: &Path) -> String {
    let mut cmd = Command::new("sha256sum");
    cmd.arg(path);
    let out = run(cmd, COMMAND_TIMEOUT).ok();
    out.stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The real `asciinema cat FILE` (asciinema 2.4): the output as a terminal would get it.
pub fn asciinema_cat(path: &Path) -> Out {
    let mut cmd = Command::new("asciinema");
    cmd.arg("cat").arg(path);
    let out = run(cmd, COMMAND_TIMEOUT);
    eprintln!("$ asciinema cat {}\n{out}", path.display());
    out
}

/// `ssh-keygen -Y verify -f ALLOWED -I latch-audit -n latch-recording@latch -s SIG <
/// MANIFEST`, as the README tells auditors to run it.
pub fn ssh_keygen_verify(allowed_signers: &Path, manifest: &Path, signature: &Path) -> Out {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"exec ssh-keygen -Y verify -f "$1" -I latch-audit -n latch-recording@latch -s "$2" < "$3""#)
        .arg("sh")
        .arg(allowed_signers)
        .arg(signature)
        .arg(manifest);
    let out = run(cmd, COMMAND_TIMEOUT);
    eprintln!("$ ssh-keygen -Y verify ... < {}\n{out}", manifest.display());
    out
}

/// Run `cmd` with `input` written to its stdin (then closed), collecting its output; fails
/// the test past `timeout`.
#[track_caller]
pub fn run_with_input(mut cmd: Command, input: &[u8], timeout: Duration) -> Out {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
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
    let _ = writer.join();
    let out = Out {
        status: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    eprintln!("$ {shown}\n{out}");
    out
}
