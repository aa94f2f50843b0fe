//! Where an IMAP server is and how to reach it: the [`Endpoint`] a config
//! names, its [`Security`] and [`Compression`] settings, the loopback and
//! private-network checks those settings depend on, and [`connect`], which
//! turns an endpoint into a greeted connection (TCP, then TLS or STARTTLS,
//! or plaintext to loopback only). Logging in on that connection is
//! [`Conn`](super::Conn)'s; the TLS configuration it uses is built in
//! [`tls`](super::tls).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_imap::imap_proto::{Response, Status};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};

use super::classify::{classify_bye, classify_connect_error, io_error, timed};
use super::guard::{Guarded, Stream};
use super::tls::tls_error;
use crate::error::{Error, Result};

/// How the connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    Tls,
    Starttls,
    Plain,
}

/// Where an IMAP server is and how to talk to it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub ca_file: Option<PathBuf>,
    /// Limit on every single network read, write and connect.
    pub timeout: Duration,
    /// When to ask for COMPRESS=DEFLATE (RFC 4978) after login, if the
    /// server offers it.
    pub compress: Compression,
}

/// When to ask for COMPRESS=DEFLATE. Compression shrinks mail to about
/// half on the wire, which is what a link across the internet (Gmail, a
/// hosted server) is bound by; on a local network the server's CPU spent
/// compressing is what binds, and copies run several times slower.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// Only to servers outside the local networks: not to loopback,
    /// private (RFC 1918, fc00::/7) or link-local addresses.
    #[default]
    Auto,
    Always,
    Never,
}

impl Compression {
    /// Whether to ask, for a server at `peer` (`None`: address unknown).
    pub fn wanted(self, peer: Option<IpAddr>) -> bool {
        match self {
            Compression::Always => true,
            Compression::Never => false,
            Compression::Auto => peer.is_some_and(|ip| !is_local_network(ip)),
        }
    }
}

/// `compress = true`, `false` or `"auto"` in the config.
impl<'de> serde::Deserialize<'de> for Compression {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Compression;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or \"auto\"")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> std::result::Result<Compression, E> {
                Ok(if v { Compression::Always } else { Compression::Never })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Compression, E> {
                match v {
                    "auto" => Ok(Compression::Auto),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Loopback, private and link-local addresses: where bandwidth is cheap.
fn is_local_network(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_local_network(IpAddr::V4(v4)),
            None => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
        },
    }
}

/// True for addresses that never leave this machine, the only place
/// plaintext IMAP is allowed to go.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Opens a connection to `endpoint` and reads the greeting: the client is
/// ready for LOGIN or AUTHENTICATE.
pub(super) async fn connect(
    endpoint: &Endpoint,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<async_imap::Client<Guarded>> {
    let t = endpoint.timeout;
    let where_ = format!("{}:{}", endpoint.host, endpoint.port);
    if endpoint.security == Security::Plain && !is_loopback_host(&endpoint.host) {
        return Err(Error::fatal(format!(
            "refusing plaintext IMAP to {where_}: security = \"plain\" is only allowed to loopback addresses; use \"tls\" or \"starttls\""
        )));
    }
    let tcp = timed(
        t,
        &format!("connect to {where_}"),
        TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
    )
    .await?
    .map_err(|e| classify_connect_error(&where_, &e))?;
    let _ = tcp.set_nodelay(true);
    let peer = tcp.peer_addr().ok().map(|a| a.ip());
    let server_name = || {
        ServerName::try_from(endpoint.host.trim_matches(|c| c == '[' || c == ']').to_owned())
            .map_err(|_| Error::fatal(format!("{} is not a valid TLS server name", endpoint.host)))
    };
    let connector = TlsConnector::from(tls.clone());
    let stream = match endpoint.security {
        Security::Plain => Stream::Plain(tcp),
        Security::Tls => {
            let tls = timed(
                t,
                &format!("TLS handshake with {where_}"),
                connector.connect(server_name()?, tcp),
            )
            .await?
            .map_err(|e| tls_error(&where_, e))?;
            Stream::Tls(Box::new(tls))
        }
        Security::Starttls => {
            let mut client = async_imap::Client::new(Guarded::new(Stream::Plain(tcp), peer));
            read_greeting(&mut client, t, &where_).await?;
            // A refused STARTTLS is fatal: never fall back to plaintext.
            timed(t, "STARTTLS", client.run_command_and_check_ok("STARTTLS", None))
                .await?
                .map_err(|e| Error::fatal(format!(
                    "STARTTLS refused by {where_}: {e}; refusing to continue without encryption (use security = \"tls\" if it listens for TLS)"
                )))?;
            let Stream::Plain(tcp) = client.into_inner().inner else {
                unreachable!("the stream before STARTTLS is plain");
            };
            let tls = timed(
                t,
                &format!("TLS handshake with {where_}"),
                connector.connect(server_name()?, tcp),
            )
            .await?
            .map_err(|e| tls_error(&where_, e))?;
            // The pre-TLS greeting was already read; the new client starts
            // directly at the command phase.
            return Ok(async_imap::Client::new(Guarded::new(Stream::Tls(Box::new(tls)), peer)));
        }
    };
    let mut client = async_imap::Client::new(Guarded::new(stream, peer));
    read_greeting(&mut client, t, &where_).await?;
    Ok(client)
}

async fn read_greeting(client: &mut async_imap::Client<Guarded>, t: Duration, where_: &str) -> Result<()> {
    let greeting = timed(t, &format!("greeting from {where_}"), client.read_response())
        .await?
        .map_err(|e| io_error("greeting", e))?
        .ok_or_else(|| Error::transient(format!("{where_} closed the connection before greeting")))?;
    if let Response::Data {
        status: Status::Bye,
        outcome,
    } = greeting.parsed()
    {
        let info = outcome.information.as_deref().unwrap_or("");
        return Err(classify_bye("greeting", info));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_compression_is_for_servers_beyond_the_local_networks() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        for local in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.9",
            "192.168.1.1",
            "169.254.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:192.168.1.1",
        ] {
            assert!(!Compression::Auto.wanted(ip(local)), "{local}");
            assert!(Compression::Always.wanted(ip(local)), "{local}");
        }
        for remote in ["142.250.1.109", "2a00:1450:4001::6d", "::ffff:8.8.8.8"] {
            assert!(Compression::Auto.wanted(ip(remote)), "{remote}");
            assert!(!Compression::Never.wanted(ip(remote)), "{remote}");
        }
        assert!(!Compression::Auto.wanted(None));
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("127.1.2.3"));
        assert!(is_loopback_host("::1"));
        assert!(is_loopback_host("[::1]"));
        assert!(is_loopback_host("LOCALHOST"));
        assert!(!is_loopback_host("10.0.0.1"));
        assert!(!is_loopback_host("imap.example.com"));
    }
}
