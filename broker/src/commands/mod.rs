//! The command interface over SSH: `ssh -p 2222 bastion COMMAND [ARGS]`.
//!
//! Identity is the key the client authenticated with; the login name is ignored (except
//! that `LOGIN@HOST` selects a target, which is the data plane's business). Every command
//! prints a readable table or sentence, or with `--json` one JSON document on stdout.
//! Errors go to stderr with a non-zero [`exit`] status and say what to do.

mod audit;
mod cli;
mod grants;
mod info;
mod recordings;
mod render;
mod sessions;

use crate::broker::{Broker, BrokerError};
use crate::proxy::DataPlane;
use crate::sessions::SessionRegistry;
use clap::Parser;
use cli::{CommandLine, Format};
use policy::state::PolicyError;
use std::net::SocketAddr;
use std::sync::Arc;

/// Exit statuses, documented in `help` and the README.
pub mod exit {
    pub const OK: u32 = 0;
    /// Something failed on the broker's side (the log could not be written).
    pub const FAILURE: u32 = 1;
    /// Bad usage or invalid input: fix the command line.
    pub const USAGE: u32 = 2;
    /// No such request, user or host (or not one you may see).
    pub const NOT_FOUND: u32 = 3;
    /// You are not allowed to do this.
    pub const FORBIDDEN: u32 = 4;
    /// The request is not in a state that allows this.
    pub const CONFLICT: u32 = 5;
}

/// One command as received.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The authenticated latch user.
    pub user: String,
    /// The exec string; empty for a shell (the dashboard).
    pub line: String,
    /// The SSH login name as sent.
    pub login: String,
    pub peer: SocketAddr,
}

/// What goes back to the client.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub status: u32,
    /// Bytes to play after `stdout`, each after its delay (`replay`); sent as they are,
    /// with no line-ending translation.
    pub playback: Vec<(std::time::Duration, Vec<u8>)>,
}

/// A command's successful answer in both forms.
pub(crate) struct Reply {
    pub json: serde_json::Value,
    pub text: String,
}

/// A command's failure: a message for stderr and an exit status.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: u32,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            status: exit::USAGE,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure {
            status: exit::NOT_FOUND,
            message: message.into(),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Failure {
        Failure {
            status: exit::FORBIDDEN,
            message: message.into(),
        }
    }
    fn kind(&self) -> &'static str {
        match self.status {
            exit::USAGE => "invalid",
            exit::NOT_FOUND => "not_found",
            exit::FORBIDDEN => "forbidden",
            exit::CONFLICT => "conflict",
            _ => "failure",
        }
    }
}

impl From<BrokerError> for Failure {
    fn from(e: BrokerError) -> Failure {
        match e {
            BrokerError::Policy(p) => {
                let status = match &p {
                    PolicyError::Invalid(_) => exit::USAGE,
                    PolicyError::NotFound(_) => exit::NOT_FOUND,
                    PolicyError::Forbidden(_) => exit::FORBIDDEN,
                    PolicyError::Conflict(_) => exit::CONFLICT,
                    _ => exit::FAILURE,
                };
                Failure {
                    status,
                    message: p.to_string(),
                }
            }
            other => {
                tracing::error!(error = %other, "command failed on the broker side");
                Failure {
                    status: exit::FAILURE,
                    message: format!("latch could not complete this ({other}); nothing was changed. Tell your latch administrator."),
                }
            }
        }
    }
}

type CmdResult = Result<Reply, Failure>;

/// Run one invocation to completion.
pub async fn run(plane: &DataPlane, inv: Invocation) -> Output {
    let (broker, registry) = (&plane.broker, &*plane.registry);
    let words =
        match shell_words::split(&inv.line) {
            Ok(w) => w,
            Err(_) => return failure_output(
                Failure::usage(
                    "unbalanced quotes in the command; quote arguments like --reason 'fix the db'",
                ),
                false,
            ),
        };
    let words = if words.is_empty() {
        vec!["dashboard".to_string()]
    } else {
        words
    };
    let parsed = match CommandLine::try_parse_from(&words) {
        Ok(p) => p,
        Err(e) => {
            let text = e.render().to_string();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    Output {
                        stdout: text,
                        ..Default::default()
                    }
                }
                clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Output {
                    stderr: text,
                    status: exit::USAGE,
                    ..Default::default()
                },
                _ => Output {
                    stderr: text,
                    status: exit::USAGE,
                    ..Default::default()
                },
            };
        }
    };
    if let cli::Command::Replay(c) = &parsed.command {
        return match recordings::replay(broker, &plane.recordings, &inv.user, c) {
            Ok(playback) => Output {
                playback,
                ..Default::default()
            },
            Err(f) => failure_output(f, false),
        };
    }
    let (format, result) =
        dispatch(broker, registry, &plane.recordings, &inv, parsed.command).await;
    match result {
        Ok(reply) => {
            let stdout = if format.json {
                let mut s =
                    serde_json::to_string_pretty(&reply.json).unwrap_or_else(|_| "null".into());
                s.push('\n');
                s
            } else {
                reply.text
            };
            Output {
                stdout,
                status: exit::OK,
                ..Default::default()
            }
        }
        Err(f) => failure_output(f, format.json),
    }
}

fn failure_output(f: Failure, json: bool) -> Output {
    let stdout = if json {
        let doc = serde_json::json!({"error": {"kind": f.kind(), "message": f.message, "status": f.status}});
        format!("{doc}\n")
    } else {
        String::new()
    };
    let mut stderr = format!("latch: {}", f.message);
    if !stderr.ends_with('\n') {
        stderr.push('\n');
    }
    Output {
        stdout,
        stderr,
        status: f.status,
        ..Default::default()
    }
}

async fn dispatch(
    broker: &Arc<Broker>,
    registry: &SessionRegistry,
    store: &crate::recording::RecordingStore,
    inv: &Invocation,
    command: cli::Command,
) -> (Format, CmdResult) {
    use cli::Command as C;
    let user = inv.user.as_str();
    match command {
        C::Whoami(f) => (f, info::whoami(broker, user)),
        C::Hosts(f) => (f, info::hosts(broker, user)),
        C::Dashboard(f) => (f, info::dashboard(broker, user)),
        C::Request(c) => (c.format, grants::request(broker, user, c).await),
        C::List(c) => (c.format, grants::list(broker, user, c)),
        C::Show(c) => (c.format, grants::show(broker, user, &c.id)),
        C::Approve(c) => (c.format, grants::approve(broker, user, c).await),
        C::Deny(c) => (c.format, grants::deny(broker, user, c).await),
        C::Revoke(c) => (c.format, grants::revoke(broker, user, c).await),
        C::Cancel(c) => (c.format, grants::cancel(broker, user, &c.id).await),
        C::Extend(c) => (c.format, grants::extend(broker, user, c).await),
        C::Lock(c) => (c.format, grants::lock(broker, user, c).await),
        C::Unlock(c) => (c.format, grants::unlock(broker, user, c).await),
        C::Audit(c) => (c.format, audit::audit(broker, user, c)),
        C::Sessions(c) => (c.format, sessions::list(broker, registry, user, c)),
        C::Kill(c) => (c.format, sessions::kill(broker, user, c).await),
        C::Recordings(c) => (c.format, recordings::list(broker, store, user, c)),
        C::Transcript(c) => (c.format, recordings::transcript(broker, store, user, &c)),
        // Handled before dispatch: it streams.
        C::Replay(_) => (
            Format::default(),
            Err(Failure::usage("replay streams; it is handled separately")),
        ),
    }
}
