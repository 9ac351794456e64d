//! The `latch` binary: parses flags and calls into the library. Errors are printed with
//! their chain and map to a non-zero exit status.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use latch::config_file::{self, ConfigSource, LoadedConfig};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "latch",
    version,
    about = "latch: a just-in-time SSH access broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write a documented config (DIR/latch.toml) and the state directory.
    Init {
        /// Where to write latch.toml (the state directory goes in DIR/latch-data).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Run the broker. Without --config: ./latch.toml if present, else the embedded default.
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen here instead of server.ssh_listen (port 0 picks a free port).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Config commands.
    Config {
        #[command(subcommand)]
        command: ConfigCmd,
    },
    /// Audit trail commands.
    Audit {
        #[command(subcommand)]
        command: AuditCmd,
    },
    /// The user CA targets trust.
    Ca {
        #[command(subcommand)]
        command: CaCmd,
    },
    /// Helpers for adding target hosts.
    Hosts {
        #[command(subcommand)]
        command: HostsCmd,
    },
    /// Sealed session recordings, offline.
    Recordings {
        #[command(subcommand)]
        command: RecordingsCmd,
    },
    /// Play a recording (.cast file) on this terminal with its timing.
    Replay {
        /// The .cast file.
        file: PathBuf,
        /// Playback speed: 2 is twice as fast, 0.5 half.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Shorten pauses longer than this (like 2s).
        #[arg(long)]
        idle_limit: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum RecordingsCmd {
    /// Check every sealed recording (or the given manifests): the manifest's SSH signature
    /// by the audit key, and each .cast against the SHA-256 in its manifest.
    Verify {
        /// Manifest files (*.manifest.json); default: every recording in the state directory.
        files: Vec<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// The audit public key (default: the state directory's audit_key.pub).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Print a recording's plain-text transcript (a .cast file).
    Transcript { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum CaCmd {
    /// Print the line targets put in the file named by sshd's TrustedUserCAKeys.
    PublicKey {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum HostsCmd {
    /// Connect to a target, show its host key fingerprint, and print the [[hosts]] entry
    /// that pins it. Compare the fingerprint with the one on the host before using it.
    Scan {
        /// host:port of the target's sshd.
        address: String,
        /// The name users will type (default: the address's host part).
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Validate a config and report every problem with its location.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// Print the allowed_signers line that lets `ssh-keygen -Y verify` check recordings.
    PublicKey {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Walk the event log's hash chain; name the first line that was edited, removed or reordered.
    Verify {
        /// The log file (default: events.jsonl in the config's state directory).
        file: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("latch: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line. Our error types already quote their cause in
/// their message, so a cause whose text is already shown is not repeated.
fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if text.contains(&c) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c);
    }
    text
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Init { dir } => init(&dir).map(|_| ExitCode::SUCCESS),
        Cmd::Serve { config, listen } => serve(config.as_deref(), listen),
        Cmd::Config {
            command: ConfigCmd::Check { config },
        } => config_check(config.as_deref()),
        Cmd::Audit {
            command: AuditCmd::Verify { file, config },
        } => audit_verify(file, config.as_deref()),
        Cmd::Ca {
            command: CaCmd::PublicKey { config },
        } => ca_public_key(config.as_deref()),
        Cmd::Hosts {
            command: HostsCmd::Scan { address, name },
        } => hosts_scan(&address, name),
        Cmd::Audit {
            command: AuditCmd::PublicKey { config },
        } => audit_public_key(config.as_deref()),
        Cmd::Recordings {
            command: RecordingsCmd::Verify { files, config, key },
        } => recordings_verify(files, config.as_deref(), key.as_deref()),
        Cmd::Recordings {
            command: RecordingsCmd::Transcript { file },
        } => recordings_transcript(&file),
        Cmd::Replay {
            file,
            speed,
            idle_limit,
        } => replay_file(&file, speed, idle_limit.as_deref()),
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("LATCH_LOG").unwrap_or_else(|_| EnvFilter::new("info,russh=warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn init(dir: &Path) -> Result<()> {
    let config_path = dir.join(config_file::DEFAULT_FILE);
    if config_path.exists() {
        bail!(
            "{} already exists; not overwriting it (move it away to start over)",
            config_path.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (admin, key_files) = config_file::local_admin();
    let text = latch::template::render(&admin, "127.0.0.1:2222", "./latch-data");
    std::fs::write(&config_path, &text)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let loaded = config_file::load_file(&config_path)?;
    latch::broker::create_private_dir(&loaded.state_dir)?;
    let (key, _) = latch::host_key::load_or_generate(&loaded.state_dir)?;
    let (ca, _) = latch::ca_key::load_or_generate(&loaded.state_dir)?;
    let (audit, _) = latch::audit_key::load_or_generate(&loaded.state_dir)?;
    println!(
        "Wrote {} (every key is documented in the file).",
        config_path.display()
    );
    println!(
        "State directory: {} (mode 0700)",
        loaded.state_dir.display()
    );
    if key_files.is_empty() {
        println!("No ~/.ssh/*.pub key found: add your public key to the first [[users]] entry.");
    } else {
        for f in &key_files {
            println!("Trusting {} as user {:?} (admin).", f.display(), admin.name);
        }
    }
    println!(
        "Broker host key: {}",
        key.public_key().to_openssh().unwrap_or_default()
    );
    println!("User CA: {}", ca.fingerprint());
    println!("\nOn each target, trust the latch CA (two lines, as root):");
    println!(
        "  echo '{}' > /etc/ssh/latch_user_ca.pub",
        ca.public_key_line()
    );
    println!("  echo 'TrustedUserCAKeys /etc/ssh/latch_user_ca.pub' >> /etc/ssh/sshd_config && systemctl reload ssh");
    println!("Then pin each target's host key in latch.toml: latch hosts scan HOST:22");
    println!("\nRecordings are signed with the audit key. Auditors verify them with this allowed_signers line:");
    println!(
        "  {}",
        recorder::seal::allowed_signers_line(latch::audit_key::PRINCIPAL, audit.public_key())?
    );
    println!("\nNext: latch serve --config {}", config_path.display());
    Ok(())
}

fn load(config: Option<&Path>) -> Result<LoadedConfig> {
    Ok(config_file::load(config)?)
}

fn serve(config: Option<&Path>, listen: Option<String>) -> Result<ExitCode> {
    init_tracing();
    let loaded = load(config)?;
    match &loaded.source {
        ConfigSource::File(p) => tracing::info!(config = %p.display(), "loaded config"),
        ConfigSource::EmbeddedDefault { trusted_key_files } => {
            tracing::warn!("no config given and no ./latch.toml: running on the EMBEDDED DEFAULT (for trying latch out; run `latch init` for a real setup)");
            if trusted_key_files.is_empty() {
                tracing::warn!("no ~/.ssh/*.pub keys found: nobody can log in. Create one with `ssh-keygen -t ed25519` and restart");
            }
            for f in trusted_key_files {
                tracing::warn!(key = %f.display(), user = %loaded.settings.users.first().map(|u| u.name.as_str()).unwrap_or(""), "embedded default trusts this key as an ADMIN");
            }
        }
    }
    let addr = match listen {
        Some(a) => a
            .parse()
            .with_context(|| format!("--listen {a:?} is not an address like 127.0.0.1:2222"))?,
        None => loaded.settings.server.ssh_listen,
    };
    let prepared = latch::serve::prepare(&loaded)?;
    tracing::info!(
        state_dir = %loaded.state_dir.display(),
        events = prepared.replay.events,
        grants = prepared.replay.grants,
        "replayed event log"
    );
    if let Some(r) = &prepared.replay.recovered {
        tracing::warn!(recovery = %r, "recovered from a torn write at the end of the event log");
    }
    if !loaded.settings.recordings.enabled {
        tracing::warn!("RECORDING IS OFF ([recordings] enabled = false): proxied sessions are not recorded; the audit log says so");
    }
    if prepared.host_key_generated {
        tracing::info!(path = %latch::host_key::path(&loaded.state_dir).display(), "generated a new SSH host key");
    }
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        tracing::info!(
            fingerprint = %prepared.host_key.public_key().fingerprint(Default::default()),
            "listening on {bound}"
        );
        // One machine-readable line on stdout: tests and scripts wait for it.
        println!("latch listening on {bound}");
        // A file-size limit (RLIMIT_FSIZE) makes an oversized write raise SIGXFSZ, which would
        // kill the broker mid-session. Catching it turns that into a write error, which the
        // recorder handles by cutting the session (fail closed) while the broker lives on.
        const SIGXFSZ: i32 = 25;
        if let Ok(mut xfsz) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ)) {
            tokio::spawn(async move {
                while xfsz.recv().await.is_some() {
                    tracing::error!("a write went past the file-size limit (SIGXFSZ)");
                }
            });
        }
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            tracing::info!("shutting down");
        };
        latch::serve::run(prepared, listener, shutdown).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn config_check(config: Option<&Path>) -> Result<ExitCode> {
    let path = match config {
        Some(p) => p.to_path_buf(),
        None if Path::new(config_file::DEFAULT_FILE).exists() => {
            PathBuf::from(config_file::DEFAULT_FILE)
        }
        None => {
            bail!("no config to check: give --config FILE (or run in a directory with latch.toml)")
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    match policy::Settings::from_toml(&text) {
        Ok(s) => {
            println!(
                "{}: OK ({} users, {} roles, {} hosts)",
                path.display(),
                s.users.len(),
                s.roles.len(),
                s.hosts.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprint!("{}: {e}", path.display());
            Ok(ExitCode::from(1))
        }
    }
}

fn audit_verify(file: Option<PathBuf>, config: Option<&Path>) -> Result<ExitCode> {
    let path = match file {
        Some(f) => f,
        None => load(config)?.state_dir.join(latch::eventlog::LOG_FILE),
    };
    let report =
        latch::eventlog::verify(&path).with_context(|| format!("verifying {}", path.display()))?;
    match report.problem {
        None => {
            println!(
                "{}: OK, {} events, chain intact",
                path.display(),
                report.lines_verified
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(p) => {
            println!(
                "{}: TAMPERED OR DAMAGED after {} good events",
                path.display(),
                report.lines_verified
            );
            println!("{p}");
            Ok(ExitCode::from(1))
        }
    }
}

fn ca_public_key(config: Option<&Path>) -> Result<ExitCode> {
    let loaded = load(config)?;
    // Targets are often set up before the first `serve`: make the state directory here.
    latch::broker::create_private_dir(&loaded.state_dir)?;
    let (ca, generated) = latch::ca_key::load_or_generate(&loaded.state_dir)?;
    if generated {
        eprintln!(
            "latch: generated a new user CA in {}",
            latch::ca_key::path(&loaded.state_dir).display()
        );
    }
    println!("{}", ca.public_key_line());
    Ok(ExitCode::SUCCESS)
}

fn hosts_scan(address: &str, name: Option<String>) -> Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let key = rt.block_on(latch::proxy::scan::host_key(address))?;
    let line = key.to_openssh().context("encoding the host key")?;
    let name = name.unwrap_or_else(|| {
        address
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(address)
            .to_string()
    });
    println!(
        "# {address} presented {} ({})",
        ca::fingerprint(&key),
        key.algorithm()
    );
    println!("# Compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` run on the host itself.");
    println!("[[hosts]]");
    println!("name = {}", serde_json::to_string(&name)?);
    println!("address = {}", serde_json::to_string(address)?);
    println!("host_keys = [{}]", serde_json::to_string(&line)?);
    Ok(ExitCode::SUCCESS)
}

fn audit_public_key(config: Option<&Path>) -> Result<ExitCode> {
    let loaded = load(config)?;
    latch::broker::create_private_dir(&loaded.state_dir)?;
    let (key, _) = latch::audit_key::load_or_generate(&loaded.state_dir)?;
    println!(
        "{}",
        recorder::seal::allowed_signers_line(latch::audit_key::PRINCIPAL, key.public_key())?
    );
    Ok(ExitCode::SUCCESS)
}

fn recordings_verify(
    files: Vec<PathBuf>,
    config: Option<&Path>,
    key: Option<&Path>,
) -> Result<ExitCode> {
    // Given manifests and a key, nothing else is needed: an auditor can verify a copy of
    // the recordings on another machine.
    let state_dir = if files.is_empty() || key.is_none() {
        Some(load(config)?.state_dir)
    } else {
        None
    };
    let dir = state_dir
        .as_ref()
        .map(|d| d.join(latch::recording::RecordingStore::DIR));
    let key_path = match (key, &state_dir) {
        (Some(k), _) => k.to_path_buf(),
        (None, Some(d)) => latch::audit_key::path(d).with_extension("pub"),
        (None, None) => bail!("give the audit public key with --key FILE"),
    };
    let text = std::fs::read_to_string(&key_path)
        .with_context(|| format!("reading the audit public key {}", key_path.display()))?;
    let public = russh::keys::ssh_key::PublicKey::from_openssh(text.trim())
        .with_context(|| format!("{} is not an OpenSSH public key", key_path.display()))?;
    let whole_store = files.is_empty();
    let manifests: Vec<PathBuf> = if whole_store {
        let dir = dir.as_ref().context("no recordings directory")?;
        // Every manifest file, readable or not: one that does not parse is a failure.
        latch::recording::catalog::manifest_files(dir)
    } else {
        files
    };
    let mut bad = 0;
    let mut seen = std::collections::BTreeMap::new();
    for m in &manifests {
        match latch::recording::catalog::verify(m, &public) {
            Ok(manifest) => {
                let note = if manifest.complete {
                    String::new()
                } else {
                    format!(" (sealed incomplete: {})", manifest.end_cause)
                };
                println!("OK       {}{note}", m.display());
                let sha = std::fs::read(m)
                    .map(|b| hex::encode(sha2::Sha256::digest(&b)))
                    .unwrap_or_default();
                seen.insert(manifest.name().as_str().to_string(), sha);
            }
            Err(e) => {
                bad += 1;
                println!("FAILED   {}: {e}", m.display());
            }
        }
    }
    // Against the event log: every recording the log says was sealed (and not deleted)
    // must be here, with the very manifest the log recorded.
    if let (true, Some(state)) = (whole_store, &state_dir) {
        let log = state.join(latch::eventlog::LOG_FILE);
        for (name, sha) in latch::recording::catalog::sealed_in_log(&log) {
            match seen.get(&name) {
                None => {
                    bad += 1;
                    println!("FAILED   {name}: the event log records it as sealed, but its manifest is missing or unreadable");
                }
                Some(found) if !sha.is_empty() && *found != sha => {
                    bad += 1;
                    println!("FAILED   {name}: its manifest differs from the one the event log recorded when it was sealed");
                }
                Some(_) => {}
            }
        }
    }
    println!("{} recordings checked, {} failed", manifests.len(), bad);
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn read_cast(file: &Path) -> Result<recorder::cast::Recording> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    recorder::cast::parse(&text)
        .with_context(|| format!("{} is not an asciicast v2 recording", file.display()))
}

fn recordings_transcript(file: &Path) -> Result<ExitCode> {
    let rec = read_cast(file)?;
    print!("{}", recorder::screen::transcript(&rec)?);
    Ok(ExitCode::SUCCESS)
}

fn replay_file(file: &Path, speed: f64, idle_limit: Option<&str>) -> Result<ExitCode> {
    use std::io::Write;
    let rec = read_cast(file)?;
    let idle = match idle_limit {
        Some(s) => Some(
            policy::duration::parse(s)
                .map_err(|e| anyhow::anyhow!("--idle-limit: {e}"))?
                .to_std()
                .unwrap_or_default(),
        ),
        None => None,
    };
    let schedule = recorder::replay::schedule(&rec, speed, idle)?;
    let mut out = std::io::stdout().lock();
    for step in schedule {
        if let recorder::cast::EventKind::Output(data) = &step.event.kind {
            std::thread::sleep(step.delay);
            out.write_all(data.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
