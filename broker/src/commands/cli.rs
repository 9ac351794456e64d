//! The command line of the SSH command interface, as clap definitions.
//!
//! clap gives `help`, `COMMAND --help` and precise usage errors for free; the interface is
//! parsed from the exec string split like a POSIX shell would (`shell-words`), since OpenSSH
//! sends the remote command as one string.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "latch",
    bin_name = "ssh -p 2222 bastion",
    no_binary_name = true,
    disable_version_flag = true,
    color = clap::ColorChoice::Never,
    about = "latch: just-in-time SSH access. Request access, approve it, see what you can reach.",
    after_help = "Reach a host with: ssh -p 2222 LOGIN@HOST@bastion\nRun with no command for a dashboard. Exit status: 0 ok, 1 failure, 2 usage or invalid input, 3 not found, 4 not allowed, 5 conflict (wrong state)."
)]
pub struct CommandLine {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone, Copy, Default)]
pub struct Format {
    /// Print one JSON document on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Who you are: identity, standing roles, requestable roles, active grants.
    Whoami(Format),
    /// The hosts you can reach now, and with which logins.
    Hosts(Format),
    /// Request access to hosts under a role; prints the request id.
    Request(RequestCmd),
    /// List requests and grants (yours; approvers and admins see the ones they oversee).
    List(ListCmd),
    /// Show one request with its full history.
    Show(IdCmd),
    /// Approve a pending request, optionally narrowing hosts or duration.
    Approve(ApproveCmd),
    /// Deny a pending request.
    Deny(DenyCmd),
    /// Revoke an approved grant (approvers, admins, or its owner giving it back early).
    Revoke(RevokeCmd),
    /// Withdraw your own pending request.
    Cancel(IdCmd),
    /// Ask for more time on your approved grant (approved like a request).
    Extend(ExtendCmd),
    /// Lock a user out of all access (admins).
    Lock(LockCmd),
    /// Lift a lock (admins).
    Unlock(UnlockCmd),
    /// The audit trail (auditors and admins).
    Audit(AuditCmd),
    /// A short dashboard: your grants, approvals waiting for you, what you can reach.
    Dashboard(Format),
    /// Live proxied sessions (yours; approvers and admins see the ones they oversee).
    Sessions(SessionsCmd),
    /// Cut one live session at once (admins, approvers of its role, or its user).
    Kill(KillCmd),
    /// Sealed session recordings (auditors and admins), optionally searched by screen text.
    Recordings(RecordingsCmd),
    /// Play a recording on your terminal with its timing (use ssh -t).
    Replay(ReplayCmd),
    /// A recording's plain-text transcript, for reports.
    Transcript(TranscriptCmd),
}

#[derive(Debug, Args)]
pub struct RequestCmd {
    /// The role to request (see `whoami` for the roles you can request).
    #[arg(long)]
    pub role: String,
    /// Host name or pattern: `*` any run, `?` one character, `[a-z]` a class, `\` escapes.
    #[arg(long)]
    pub hosts: String,
    /// How long, like 30m, 2h, 1h30m (default from config; capped at the role's maximum).
    #[arg(long)]
    pub duration: Option<String>,
    /// Why you need access.
    #[arg(long)]
    pub reason: Option<String>,
    /// A ticket URL or id.
    #[arg(long)]
    pub ticket: Option<String>,
    /// Start later: an RFC 3339 time (2026-11-27T15:00:00Z) or a delay like 30m.
    #[arg(long)]
    pub start: Option<String>,
    /// Take access now without approval, for emergencies (only roles that allow it; loudly audited).
    #[arg(long)]
    pub break_glass: bool,
    /// TOTP code, required with --break-glass when you have a TOTP secret.
    #[arg(long)]
    pub totp: Option<String>,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ListCmd {
    /// Only this status: pending, approved, active, denied, cancelled, expired, revoked.
    #[arg(long)]
    pub status: Option<String>,
    /// Only your own requests.
    #[arg(long)]
    pub mine: bool,
    /// Include ended requests (denied, cancelled, expired, revoked); default shows open ones.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct IdCmd {
    /// A request id, like g17.
    pub id: String,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ApproveCmd {
    /// A request id, like g17.
    pub id: String,
    /// Narrow: the grant then allows only hosts matching both this and the requested pattern.
    #[arg(long)]
    pub hosts: Option<String>,
    /// Narrow: a shorter duration than requested.
    #[arg(long)]
    pub duration: Option<String>,
    /// A note recorded with the approval.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct DenyCmd {
    /// A request id, like g17.
    pub id: String,
    /// Why (required; the requester sees it).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct RevokeCmd {
    /// A grant id, like g17.
    pub id: String,
    /// Why (shown to users whose sessions are cut).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ExtendCmd {
    /// Your grant's id, like g17.
    pub id: String,
    /// How much more time, like 30m.
    #[arg(long)]
    pub duration: String,
    /// Why you need more time.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct LockCmd {
    /// The user to lock out.
    pub user: String,
    /// Why (required).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct UnlockCmd {
    /// The user to unlock.
    pub user: String,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct AuditCmd {
    /// Only events at or after this: an RFC 3339 time or an age like 2h.
    #[arg(long)]
    pub since: Option<String>,
    /// Only events by or about this user.
    #[arg(long)]
    pub user: Option<String>,
    /// Only this event type (requested, approved, auth_rejected, ...).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// At most this many of the newest matching events.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct SessionsCmd {
    /// Only your own sessions.
    #[arg(long)]
    pub mine: bool,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct KillCmd {
    /// A session id, like s17 (see `sessions`).
    pub session: String,
    /// Why (shown to the user whose session is cut).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct RecordingsCmd {
    /// Only this user's sessions.
    #[arg(long)]
    pub user: Option<String>,
    /// Only sessions on this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only sessions under this grant (like g17).
    #[arg(long)]
    pub grant: Option<String>,
    /// Only this session's recordings (like s17).
    #[arg(long)]
    pub session: Option<String>,
    /// Only recordings that ended at or after this: an RFC 3339 time or an age like 2h.
    #[arg(long)]
    pub since: Option<String>,
    /// Find recordings that showed this text on screen (rendered, so text drawn with cursor
    /// movement is found and escape sequences are not).
    #[arg(long)]
    pub grep: Option<String>,
    /// At most this many of the newest matching recordings.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ReplayCmd {
    /// A session (s17: its terminal recording) or one channel's recording (s17-c1).
    pub recording: String,
    /// Playback speed: 2 is twice as fast, 0.5 half.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Shorten pauses longer than this (like 2s).
    #[arg(long)]
    pub idle_limit: Option<String>,
    /// Show latch's markers (warnings, extensions, cuts, exit status) as dim lines.
    #[arg(long)]
    pub markers: bool,
}

#[derive(Debug, Args)]
pub struct TranscriptCmd {
    /// A session (s17) or one channel's recording (s17-c1).
    pub recording: String,
    #[command(flatten)]
    pub format: Format,
}
