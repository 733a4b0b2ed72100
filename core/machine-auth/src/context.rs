//! What a login brings besides the token: the role's name (for messages), the client address
//! (for `bound_cidrs`) and the time of the check.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The circumstances of one login.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct LoginContext<'a> {
    /// The login role's name, as messages name it.
    pub role_name: &'a str,
    /// The client's address (the server's view, never a forwarded header unless trusted).
    pub client_ip: Option<IpAddr>,
    /// When the login happens.
    pub now: SystemTime,
}

impl<'a> LoginContext<'a> {
    /// A login now.
    pub fn new(role_name: &'a str, client_ip: Option<IpAddr>) -> Self {
        Self {
            role_name,
            client_ip,
            now: SystemTime::now(),
        }
    }

    /// The same login at another time (tests, replays of a decision).
    pub fn at(mut self, now: SystemTime) -> Self {
        self.now = now;
        self
    }

    /// `now` in unix seconds.
    pub fn now_secs(&self) -> f64 {
        self.now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}
