//! How users reach this bastion, for the commands latch suggests in its messages
//! (`ssh -p 2222 bastion request ...`).
//!
//! The port is the one the broker actually listens on (set once at start, so a broker on
//! `--listen 127.0.0.1:0` suggests its real port); the host is written `bastion`, since
//! the name users know the bastion by is not something the broker can see.

use std::sync::OnceLock;

static PORT: OnceLock<u16> = OnceLock::new();

/// Record the listening port (first call wins).
pub fn set_port(port: u16) {
    let _ = PORT.set(port);
}

/// `ssh -p PORT bastion`.
pub fn ssh() -> String {
    format!("ssh -p {} bastion", PORT.get().copied().unwrap_or(2222))
}

/// `ssh -p PORT LOGIN@HOST@bastion`.
pub fn ssh_to(login: &str, host: &str) -> String {
    format!(
        "ssh -p {} {login}@{host}@bastion",
        PORT.get().copied().unwrap_or(2222)
    )
}
