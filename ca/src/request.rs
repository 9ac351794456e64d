//! What a user certificate is minted for, and the checks that run before anything is signed.
//!
//! A certificate is a bearer credential for its lifetime, so everything that goes into one is
//! validated here: one plain login, a short lifetime, a key id that the target's `sshd` log can
//! print unambiguously, and a `source-address` list that `sshd` will actually parse (it refuses
//! the whole certificate otherwise, which would surface as a baffling login failure).

use crate::error::CaError;
use chrono::{DateTime, TimeDelta, Utc};
use russh::keys::ssh_key::PublicKey;
use std::fmt;
use std::net::IpAddr;

/// The longest lifetime of a minted certificate. Certificates are per upstream connection and
/// only need to last through the SSH handshake, so minutes suffice; revocation of the grant is
/// enforced by cutting the session, not by the certificate expiring.
pub const MAX_CERT_VALIDITY: TimeDelta = TimeDelta::minutes(10);

/// How far before `now` a certificate becomes valid, so a target whose clock runs a little
/// behind the broker's still accepts it.
pub const CLOCK_SKEW_BACKDATE: TimeDelta = TimeDelta::seconds(60);

/// Everything a user certificate is minted for.
#[derive(Debug, Clone)]
pub struct CertRequest<'a> {
    /// The broker's ephemeral key for this one upstream connection; the certificate certifies it.
    pub public_key: &'a PublicKey,
    /// The single login the certificate is valid for on the target.
    pub principal: String,
    /// The grant id (`g17`), or `role:<name>` for a standing role; goes in the key id.
    pub grant: String,
    /// The latch user the connection is for; goes in the key id.
    pub user: String,
    /// The session id; goes in the key id so the target's log joins the recording.
    pub session: String,
    /// Requested lifetime from `now`: more than zero and at most [`MAX_CERT_VALIDITY`].
    pub validity: TimeDelta,
    /// When the grant ends; the certificate never outlives it. `None` for standing roles.
    pub not_after_cap: Option<DateTime<Utc>>,
    /// What the session may do beyond a shell (the certificate's extensions).
    pub permissions: Permissions,
    /// Addresses or CIDR blocks the certificate may be used from (`source-address`); `None`
    /// for no restriction. An empty list is refused rather than read as "anywhere".
    pub source_address: Option<Vec<String>>,
    /// The certificate serial; the broker chooses it (see [`crate::random_serial`]).
    pub serial: u64,
}

/// What a session may do on the target, as certificate extensions.
///
/// Everything is off unless a role allows it. There is deliberately no `user_rc`: a user's
/// `~/.ssh/rc` runs arbitrary code at login outside the recorded session, so `permit-user-rc`
/// is never granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    /// `permit-pty`: allocate a terminal (interactive shells need it).
    pub pty: bool,
    /// `permit-port-forwarding`: `-L`/`-R` forwarding through the target.
    pub port_forwarding: bool,
    /// `permit-agent-forwarding`: forward the (broker-side) agent.
    pub agent_forwarding: bool,
    /// `permit-X11-forwarding`: X11 forwarding.
    pub x11_forwarding: bool,
}

impl Permissions {
    /// No extensions at all: commands only, no terminal, no forwarding.
    pub const NONE: Permissions = Permissions {
        pty: false,
        port_forwarding: false,
        agent_forwarding: false,
        x11_forwarding: false,
    };

    /// The OpenSSH extension names these permissions turn on, in the order sshd sorts them.
    pub fn extensions(&self) -> Vec<&'static str> {
        [
            (self.x11_forwarding, "permit-X11-forwarding"),
            (self.agent_forwarding, "permit-agent-forwarding"),
            (self.port_forwarding, "permit-port-forwarding"),
            (self.pty, "permit-pty"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// A certificate key id: `latch:<grant>:<user>:<session>`.
///
/// `sshd` logs the key id of every certificate it accepts, which is how an auditor joins the
/// target's log to the broker's event log and recording. The grant may itself contain `:`
/// (`role:<name>`), so user and session may not: the key id is read from the right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyId {
    grant: String,
    user: String,
    session: String,
}

const KEY_ID_PREFIX: &str = "latch:";

impl KeyId {
    /// Build a key id, refusing components that would make it ambiguous or unprintable.
    pub fn new(grant: &str, user: &str, session: &str) -> Result<KeyId, CaError> {
        check_key_id_part("grant", grant, true)?;
        check_key_id_part("user", user, false)?;
        check_key_id_part("session", session, false)?;
        Ok(KeyId {
            grant: grant.to_owned(),
            user: user.to_owned(),
            session: session.to_owned(),
        })
    }

    /// Read a key id back from a certificate; `None` if it is not one latch wrote.
    pub fn parse(key_id: &str) -> Option<KeyId> {
        let rest = key_id.strip_prefix(KEY_ID_PREFIX)?;
        let mut parts = rest.rsplitn(3, ':');
        let session = parts.next()?;
        let user = parts.next()?;
        let grant = parts.next()?;
        KeyId::new(grant, user, session).ok()
    }

    /// The grant id, or `role:<name>`.
    pub fn grant(&self) -> &str {
        &self.grant
    }

    /// The latch user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The session id.
    pub fn session(&self) -> &str {
        &self.session
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{KEY_ID_PREFIX}{}:{}:{}",
            self.grant, self.user, self.session
        )
    }
}

fn check_key_id_part(field: &'static str, value: &str, colon_ok: bool) -> Result<(), CaError> {
    let reason = if value.is_empty() {
        Some("it is empty")
    } else if value.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if value.chars().any(char::is_whitespace) {
        Some("it contains whitespace, which would split the key id in sshd's log")
    } else if !colon_ok && value.contains(':') {
        Some("it contains ':', which separates the key id's parts")
    } else if value.starts_with(':') || value.ends_with(':') {
        Some("it starts or ends with ':'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CaError::KeyIdPart {
            field,
            value: value.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A login principal is matched literally against the target account, so anything that is not
/// a plain user name is refused: `,` would be read as a list by tools that print principals,
/// `@` suggests a `user@host` mix-up, and pattern characters invite confusion with
/// `AuthorizedPrincipalsFile` patterns.
pub(crate) fn check_principal(principal: &str) -> Result<(), CaError> {
    let reason = if principal.is_empty() {
        Some("it is empty")
    } else if principal.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if principal.chars().any(char::is_whitespace) {
        Some("it contains whitespace")
    } else if principal.contains(',') {
        Some("it contains ',' (one login per certificate)")
    } else if principal.contains('@') {
        Some("it contains '@' (give the login alone, not login@host)")
    } else if principal.contains(['*', '?', '!']) {
        Some("it contains a pattern character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CaError::Principal {
            principal: principal.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The value of the `source-address` critical option, checked the way `sshd` will check it:
/// OpenSSH refuses a certificate whose list has a malformed entry or a CIDR block with host
/// bits set, so such a list is refused here, where the message can say which entry.
pub(crate) fn source_address_option(entries: &[String]) -> Result<String, CaError> {
    if entries.is_empty() {
        return Err(CaError::SourceAddress {
            value: String::new(),
            reason: "the list is empty",
        });
    }
    for entry in entries {
        check_source_address(entry).map_err(|reason| CaError::SourceAddress {
            value: entry.clone(),
            reason,
        })?;
    }
    Ok(entries.join(","))
}

fn check_source_address(entry: &str) -> Result<(), &'static str> {
    let (addr, prefix) = match entry.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (entry, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| "it is not an IP address or CIDR block")?;
    let Some(prefix) = prefix else {
        return Ok(());
    };
    // Digits only: `u8::from_str` would also take a leading '+', which OpenSSH does not.
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err("its prefix length is not a number");
    }
    let prefix: u32 = prefix
        .parse()
        .map_err(|_| "its prefix length is too long")?;
    let (bits, max) = match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    if prefix > max {
        return Err("its prefix length is longer than the address");
    }
    let host_mask = u128::MAX.checked_shr(prefix).unwrap_or(0);
    if bits & host_mask != 0 {
        return Err("it has host bits set after the prefix (sshd refuses that)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_reads_back_with_a_colon_in_the_grant() {
        let id = KeyId::new("role:developer", "alice", "s42").unwrap();
        assert_eq!(id.to_string(), "latch:role:developer:alice:s42");
        assert_eq!(KeyId::parse(&id.to_string()), Some(id));
    }

    #[test]
    fn key_id_refuses_separators_and_control_characters() {
        assert!(KeyId::new("g1", "al:ice", "s1").is_err());
        assert!(KeyId::new("g1", "alice", "s:1").is_err());
        assert!(KeyId::new("g 1", "alice", "s1").is_err());
        assert!(KeyId::new("g1", "alice\n", "s1").is_err());
        assert!(KeyId::new("g1", "", "s1").is_err());
        assert!(KeyId::new(":g1", "alice", "s1").is_err());
        assert_eq!(KeyId::parse("someone-else:g1:alice:s1"), None);
        assert_eq!(KeyId::parse("latch:alice:s1"), None);
    }

    #[test]
    fn principal_must_be_one_plain_login() {
        assert!(check_principal("postgres").is_ok());
        for bad in [
            "",
            "root,admin",
            "root admin",
            "root@host",
            "ro\tot",
            "r\u{7}",
            "*",
        ] {
            assert!(check_principal(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn source_addresses_are_checked_like_sshd_checks_them() {
        let ok = |s: &[&str]| {
            source_address_option(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(
            ok(&["10.0.0.0/8", "192.0.2.7"]).unwrap(),
            "10.0.0.0/8,192.0.2.7"
        );
        assert!(ok(&["2001:db8::/32", "::1", "0.0.0.0/0", "10.1.2.3/32"]).is_ok());
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "foo",
            "10.*",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "",
        ] {
            assert!(ok(&[bad]).is_err(), "{bad:?} accepted");
        }
        assert!(ok(&[]).is_err());
    }

    #[test]
    fn permissions_name_only_what_they_allow_and_never_user_rc() {
        assert!(Permissions::NONE.extensions().is_empty());
        let all = Permissions {
            pty: true,
            port_forwarding: true,
            agent_forwarding: true,
            x11_forwarding: true,
        };
        let names = all.extensions();
        assert_eq!(names.len(), 4);
        assert!(!names.contains(&"permit-user-rc"));
    }
}
