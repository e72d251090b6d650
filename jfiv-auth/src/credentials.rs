//! What a user presents: [`Credentials`] and the [`ConnectionContext`] of the transport.

use std::fmt;
use std::net::IpAddr;

use rustls_pki_types::CertificateDer;
use secrecy::{ExposeSecret, SecretString};

/// A user name, a password and a database, as typed at the login prompt.
///
/// The password is a [`SecretString`]: zeroized on drop, redacted in `Debug`, and there is no
/// `Display`.
#[derive(Clone)]
pub struct Credentials {
    /// The personal login name.
    pub username: String,
    /// The password.
    pub password: SecretString,
    /// The database (Oracle connect string, or the name a local store answers to).
    pub database: String,
}

impl Credentials {
    /// Credentials from their parts. The `String` holding the password is moved into the
    /// secret, not copied.
    pub fn new(
        username: impl Into<String>,
        password: impl Into<String>,
        database: impl Into<String>,
    ) -> Self {
        Self {
            username: username.into(),
            password: SecretString::from(password.into()),
            database: database.into(),
        }
    }

    /// The password, for the one call that needs it.
    pub fn expose_password(&self) -> &str {
        self.password.expose_secret()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("database", &self.database)
            .finish()
    }
}

/// Where a login comes from, and the evidence the transport (TLS, VPN) presented.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    /// The peer's address as JFIV sees it (inside the VPN pool for a remote user).
    pub peer: IpAddr,
    /// The client certificate chain presented, leaf first, in DER; empty when none was.
    pub client_chain: Vec<CertificateDer<'static>>,
    /// The workstation name, when the caller knows it (for the audit trail of a LAN login).
    pub workstation: Option<String>,
}

impl ConnectionContext {
    /// A connection from `peer` with no certificate.
    pub fn new(peer: IpAddr) -> Self {
        Self {
            peer,
            client_chain: Vec::new(),
            workstation: None,
        }
    }

    /// Sets the client certificate chain (leaf first).
    pub fn with_client_chain(mut self, chain: Vec<CertificateDer<'static>>) -> Self {
        self.client_chain = chain;
        self
    }

    /// Sets the workstation name.
    pub fn with_workstation(mut self, name: impl Into<String>) -> Self {
        self.workstation = Some(name.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let c = Credentials::new("a.martin", "Tr3s-Secret-Phrase!", "JFIVPROD");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("Tr3s"), "{dbg}");
        assert!(
            dbg.contains("a.martin") && dbg.contains("JFIVPROD"),
            "{dbg}"
        );
        assert_eq!(c.expose_password(), "Tr3s-Secret-Phrase!");
    }
}
