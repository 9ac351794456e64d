//! What user, role, login and host names and host addresses may look like.
//!
//! Each check returns what is wrong in words that finish the sentence "name X ...", or
//! `None`. The rules are permissive but refuse what would be misread on the way: names are
//! typed as command arguments, logins become certificate principals, and hosts appear in
//! `LOGIN@HOST@bastion` user strings that scp and rsync also parse.

use std::net::SocketAddr;

/// The longest login name Linux `useradd` accepts.
const MAX_LOGIN_CHARS: usize = 32;

/// Shared rules for user and role names, which are typed as command arguments.
pub(super) fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains whitespace or a control character")
    } else if name.starts_with('-') {
        Some("starts with '-', which commands would read as an option")
    } else if name.contains('@') {
        Some("contains '@', which separates login, host and bastion in ssh user names")
    } else if name.contains(':') {
        Some("contains ':', which scp and rsync read as the start of a path")
    } else {
        None
    }
}

/// Login names go into certificates as principals and into target sshd's account lookup;
/// we stay permissive (uppercase, digits, dots are fine) but refuse what can never be an
/// account or would be misread on the way.
pub(super) fn login_problem(login: &str) -> Option<&'static str> {
    if let Some(problem) = name_problem(login) {
        Some(problem)
    } else if login.contains('/') {
        Some("contains '/', which no account name can")
    } else if login.chars().count() > MAX_LOGIN_CHARS {
        Some("is longer than 32 characters, the limit for account names")
    } else {
        None
    }
}

/// Host names appear in `LOGIN@HOST@bastion` and are matched by role patterns, so glob
/// characters in a name would make patterns ambiguous.
pub(super) fn host_name_problem(name: &str) -> Option<&'static str> {
    if let Some(problem) = name_problem(name) {
        Some(problem)
    } else if name.contains(['*', '?', '[', ']', '\\']) {
        Some(
            "contains a glob character (* ? [ ] \\), which belongs in role host \
            patterns, not host names",
        )
    } else if name.contains('/') {
        Some("contains '/'")
    } else {
        None
    }
}

/// `host:port` where host is an IP address, a bracketed IPv6 address or a DNS name.
pub(super) fn address_problem(address: &str) -> Option<&'static str> {
    if address.parse::<SocketAddr>().is_ok() {
        return None;
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Some("has no port");
    };
    if host.is_empty() {
        return Some("has no host before the ':'");
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) || port.is_empty() {
        return Some("does not end in a port number");
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => return Some("has a port outside 1-65535"),
        Ok(_) => {}
    }
    if host.contains(':') || host.contains('[') || host.contains(']') {
        return Some("is not a valid IPv6 address (write it in brackets, like [::1]:22)");
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '@' || c == '/')
    {
        return Some("has a host containing whitespace, '@' or '/'");
    }
    None
}
