//! The IMAP plumbing both sides share: connecting with verified TLS,
//! STARTTLS or loopback-only plaintext, logging in, running tagged commands
//! with a timeout on every read and write, and classifying what the server
//! answered. `source::imap` reads through it and `target::imap` writes
//! through it; neither knows the other.

mod deflate;
pub mod utf7;

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::imap_proto::{self, Response, ResponseCode, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};

use crate::error::{Error, Result};
use crate::secret::Secret;

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

/// A byte stream that is either plain TCP (loopback only) or TLS.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Largest line (outside literals) accepted from a server. Real answers are
/// far shorter; the longest legitimate ones are SEARCH results, a few bytes
/// per UID.
pub const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;
/// Largest literal accepted from a server: above the 150 MiB ceiling of
/// `max_message_bytes`, so any message the run may copy fits.
pub const MAX_LITERAL_BYTES: u64 = 160 * 1024 * 1024;
/// Largest single response (its lines and literals together).
pub const MAX_RESPONSE_BYTES: u64 = MAX_LITERAL_BYTES + MAX_LINE_BYTES;
/// Largest sum of untagged answers kept for one command other than FETCH
/// (LIST, SEARCH, STATUS ...), whose answers are held until the command ends.
pub const MAX_UNTAGGED_BYTES: usize = 64 * 1024 * 1024;

/// Watches every byte a server sends, so a hostile or broken server cannot
/// make the client buffer without bound: lines longer than
/// [`MAX_LINE_BYTES`], literals announced larger than
/// [`MAX_LITERAL_BYTES`] and responses larger than [`MAX_RESPONSE_BYTES`]
/// fail the read (and so the connection) with an error that says which.
/// It follows the IMAP framing only: a line ends at LF, and a line ending in
/// `{N}` (or `~{N}`) is followed by N bytes of literal.
#[derive(Debug, Default)]
struct ResponseGuard {
    line: u64,
    literal_left: u64,
    response: u64,
    /// The last bytes of the current line, to find a `{N}` at its end.
    tail: Vec<u8>,
}

impl ResponseGuard {
    fn check(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        let bad = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidData, msg);
        while !data.is_empty() {
            if self.literal_left > 0 {
                let n = (self.literal_left).min(data.len() as u64);
                self.literal_left -= n;
                self.response += n;
                data = &data[n as usize..];
                continue;
            }
            let upto = data.iter().position(|&b| b == b'\n').map_or(data.len(), |i| i + 1);
            let (chunk, rest) = data.split_at(upto);
            data = rest;
            self.line += chunk.len() as u64;
            self.response += chunk.len() as u64;
            self.tail.extend_from_slice(chunk);
            if self.tail.len() > 32 {
                self.tail.drain(..self.tail.len() - 32);
            }
            if self.line > MAX_LINE_BYTES {
                return Err(bad(format!(
                    "the server sent a line longer than {} MiB; dropping the connection",
                    MAX_LINE_BYTES >> 20
                )));
            }
            if self.response > MAX_RESPONSE_BYTES {
                return Err(bad(format!(
                    "the server sent a response larger than {} MiB; dropping the connection",
                    MAX_RESPONSE_BYTES >> 20
                )));
            }
            if chunk.last() != Some(&b'\n') {
                continue;
            }
            let announced = literal_at_end(&self.tail);
            self.line = 0;
            self.tail.clear();
            match announced {
                Some(n) if n > MAX_LITERAL_BYTES => {
                    return Err(bad(format!(
                        "the server announced a literal of {n} bytes, over the {} MiB limit; dropping the connection",
                        MAX_LITERAL_BYTES >> 20
                    )));
                }
                Some(n) => self.literal_left = n,
                None => self.response = 0,
            }
        }
        Ok(())
    }
}

/// The size of the literal announced at the end of a line (`... {123}\r\n`).
fn literal_at_end(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Too many digits to fit is over any limit.
    Some(std::str::from_utf8(digits).ok()?.parse().unwrap_or(u64::MAX))
}

/// The connection as the IMAP library sees it: the stream, with every
/// byte read checked by a [`ResponseGuard`], and, once COMPRESS=DEFLATE is
/// active, compressed both ways (the guard sees the inflated bytes).
#[derive(Debug)]
pub struct Guarded {
    inner: Stream,
    guard: ResponseGuard,
    deflate: Option<Box<deflate::Deflate>>,
    /// The server's address, for [`Compression::Auto`].
    peer: Option<IpAddr>,
}

impl Guarded {
    fn new(inner: Stream, peer: Option<IpAddr>) -> Guarded {
        Guarded {
            inner,
            guard: ResponseGuard::default(),
            deflate: None,
            peer,
        }
    }

    /// Everything from the next byte on, both ways, is raw DEFLATE. Called
    /// right after the server's OK to `COMPRESS DEFLATE`, when nothing is
    /// buffered in either direction.
    fn start_deflate(&mut self) {
        self.deflate = Some(Box::default());
    }

    fn deflate_totals(&self) -> Option<deflate::DeflateTotals> {
        self.deflate.as_ref().map(|d| d.totals())
    }
}

impl AsyncRead for Guarded {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = match &mut this.deflate {
            Some(d) => d.poll_read(&mut this.inner, cx, buf),
            None => Pin::new(&mut this.inner).poll_read(cx, buf),
        };
        match polled {
            Poll::Ready(Ok(())) => Poll::Ready(this.guard.check(&buf.filled()[before..])),
            other => other,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match &mut this.deflate {
            Some(d) => d.poll_write(&mut this.inner, cx, buf),
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match &mut this.deflate {
            Some(d) => d.poll_flush(&mut this.inner, cx),
            None => Pin::new(&mut this.inner).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match &mut this.deflate {
            Some(d) => d.poll_shutdown(&mut this.inner, cx),
            None => Pin::new(&mut this.inner).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match &mut this.deflate {
            // The compressor takes one slice at a time.
            Some(d) => {
                let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
                d.poll_write(&mut this.inner, cx, first)
            }
            None => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.deflate.is_none() && self.inner.is_write_vectored()
    }
}

/// Builds the TLS client configuration: the system's trust store plus the
/// endpoint's `ca_file`. Certificates are always verified.
pub fn tls_config(ca_file: Option<&PathBuf>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let pem =
            std::fs::read(path).map_err(|e| Error::fatal(format!("cannot read ca_file {}: {e}", path.display())))?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| Error::fatal(format!("ca_file {} is not valid PEM: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| Error::fatal(format!("ca_file {} holds an unusable certificate: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::fatal(format!(
                "ca_file {} holds no PEM certificate",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::fatal(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn timed<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| Error::transient(format!("{what}: no complete answer within {}s", limit.as_secs())))
}

fn io_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::transient(format!("{what}: {}", describe_io_error(&e.to_string())))
}

/// The library's words for a failed read, kept short: a parse failure is
/// reported with the raw bytes it choked on (up to megabytes of someone's
/// mail), which belong in no log or report.
fn describe_io_error(text: &str) -> String {
    if text.contains("during parsing") || text.contains("Unable to parse") {
        return "the server sent a response that is not valid IMAP; dropping the connection".into();
    }
    const MAX: usize = 300;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// An authenticated IMAP connection.
pub struct Conn {
    session: async_imap::Session<Guarded>,
    capabilities: HashSet<String>,
    timeout: Duration,
    /// Set once the connection is known to be unusable; callers reconnect.
    broken: bool,
    /// Messages in the folder last opened (EXAMINE/SELECT): bounds how many
    /// answers a FETCH may bring.
    exists: u32,
    /// `host:port`, for log lines.
    server: String,
}

/// What EXAMINE or SELECT reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailboxState {
    pub uid_validity: u32,
    pub uid_next: Option<u32>,
    pub exists: u32,
}

/// The answer to one APPEND: the APPENDUID (UIDVALIDITY, UID) if reported.
pub type AppendResult = Result<Option<(u32, u32)>>;

/// One line of a LIST answer.
#[derive(Clone, Debug)]
pub struct ListedFolder {
    pub wire_name: String,
    pub delimiter: Option<String>,
    /// Attributes in lower case, with the backslash (`\noselect`, `\sent`).
    pub attributes: Vec<String>,
}

impl Conn {
    /// Connects, secures the connection as configured, and logs in.
    pub async fn login(
        endpoint: &Endpoint,
        tls: &Arc<rustls::ClientConfig>,
        user: &str,
        password: &Secret,
    ) -> Result<Conn> {
        let client = connect(endpoint, tls).await?;
        let t = endpoint.timeout;
        // LOGIN cannot carry non-ASCII credentials; SASL PLAIN can.
        let use_plain = !password.expose().is_ascii() || !user.is_ascii();
        let result = if use_plain {
            let auth = PlainAuth {
                user: user.to_owned(),
                password: password.clone(),
            };
            timed(t, "AUTHENTICATE", client.authenticate("PLAIN", auth)).await?
        } else {
            timed(t, "LOGIN", client.login(user, password.expose())).await?
        };
        let session = match result {
            Ok(s) => s,
            Err((e, _)) => {
                let detail = describe_login_error(&e);
                if let Some(pushback) = login_pushback(&e, &detail) {
                    return Err(pushback);
                }
                return Err(Error::fatal(format!(
                    "login as {user} refused by {}:{}: {detail}; check UserName and Password in the users file",
                    endpoint.host, endpoint.port
                )));
            }
        };
        Conn::logged_in(session, endpoint).await
    }

    /// Logs in with SASL XOAUTH2 (Gmail, Exchange Online): `user` and an
    /// OAuth access token instead of a password.
    pub async fn login_xoauth2(
        endpoint: &Endpoint,
        tls: &Arc<rustls::ClientConfig>,
        user: &str,
        token: &Secret,
    ) -> Result<Conn> {
        let client = connect(endpoint, tls).await?;
        let t = endpoint.timeout;
        let auth = XOAuth2 {
            response: Secret::new(String::from_utf8_lossy(&crate::oauth::xoauth2_response(user, token)).into_owned()),
            sent: false,
        };
        let session = match timed(t, "AUTHENTICATE", client.authenticate("XOAUTH2", auth)).await? {
            Ok(s) => s,
            Err((e, _)) => {
                let detail = describe_login_error(&e);
                return Err(Error::fatal(format!(
                    "XOAUTH2 login as {user} refused by {}:{}: {detail}; check that the token is for this mailbox and has the IMAP scope",
                    endpoint.host, endpoint.port
                )));
            }
        };
        Conn::logged_in(session, endpoint).await
    }

    async fn logged_in(mut session: async_imap::Session<Guarded>, endpoint: &Endpoint) -> Result<Conn> {
        let t = endpoint.timeout;
        let caps = timed(t, "CAPABILITY", session.capabilities())
            .await?
            .map_err(|e| io_error("CAPABILITY", e))?;
        let capabilities = caps.iter().map(capability_name).collect();
        let mut conn = Conn {
            session,
            capabilities,
            timeout: t,
            broken: false,
            exists: 0,
            server: format!("{}:{}", endpoint.host, endpoint.port),
        };
        if endpoint.compress.wanted(conn.session.get_ref().peer) && conn.has_capability("COMPRESS=DEFLATE") {
            conn.start_compression().await?;
        }
        Ok(conn)
    }

    /// `COMPRESS DEFLATE` (RFC 4978). On OK both directions are compressed
    /// from the next byte on; a refusal (NO or BAD, e.g. `[COMPRESSIONACTIVE]`
    /// or a proxy that advertises what the server behind it lacks) leaves
    /// the connection as it was. Only a failed transport is an error.
    async fn start_compression(&mut self) -> Result<()> {
        let answer = timed(
            self.timeout,
            "COMPRESS",
            self.session.run_command_and_check_ok("COMPRESS DEFLATE"),
        )
        .await?;
        match answer {
            Ok(()) => {
                // The server answered and sends nothing more unasked, so no
                // uncompressed byte is left in the library's buffer.
                self.session.get_mut().start_deflate();
                tracing::debug!(server = %self.server, "COMPRESS=DEFLATE active");
                Ok(())
            }
            Err(e @ (async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_))) => {
                tracing::debug!(
                    server = %self.server,
                    "COMPRESS DEFLATE refused ({}); continuing uncompressed",
                    excerpt(&describe_login_error(&e))
                );
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                Err(io_error("COMPRESS", e))
            }
        }
    }

    /// Whether COMPRESS=DEFLATE is active on this connection.
    pub fn is_compressed(&self) -> bool {
        self.session.get_ref().deflate.is_some()
    }

    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.contains(&name.to_ascii_uppercase())
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Runs one tagged command and returns its untagged responses. A NO or
    /// BAD is classified by [`classify_status`]; a transport failure marks
    /// the connection broken.
    pub async fn command(&mut self, command: &str) -> Result<Vec<Response<'static>>> {
        let verb = command.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let result = self.command_inner(command, &verb).await;
        if let Err(e) = &result
            && e.is_retryable()
        {
            self.broken = true;
        }
        result
    }

    async fn command_inner(&mut self, command: &str, verb: &str) -> Result<Vec<Response<'static>>> {
        let t = self.timeout;
        let tag = timed(t, verb, self.session.run_command(command))
            .await?
            .map_err(|e| io_error(verb, e))?;
        self.read_until_done(&tag, verb).await
    }

    async fn read_until_done(&mut self, tag: &imap_proto::RequestId, verb: &str) -> Result<Vec<Response<'static>>> {
        let t = self.timeout;
        let mut untagged = Vec::new();
        let mut kept = 0usize;
        loop {
            let resp = timed(t, verb, self.session.read_response())
                .await?
                .map_err(|e| io_error(verb, e))?
                .ok_or_else(|| Error::transient(format!("{verb}: the server closed the connection")))?;
            match resp.parsed() {
                Response::Done {
                    tag: done,
                    status,
                    outcome,
                } if done == tag => {
                    let info = outcome.information.as_deref().unwrap_or("");
                    return match status {
                        Status::Ok => {
                            untagged.push(owned(resp.borrow_owner())?);
                            Ok(untagged)
                        }
                        _ => Err(classify_status(verb, status, info)),
                    };
                }
                Response::Data {
                    status: Status::Bye,
                    outcome,
                } => {
                    let info = outcome.information.as_deref().unwrap_or("");
                    self.broken = true;
                    return Err(classify_bye(verb, info));
                }
                _ => {
                    kept += resp.borrow_owner().len();
                    if kept > MAX_UNTAGGED_BYTES {
                        return Err(Error::transient(format!(
                            "{verb}: the server sent more than {} MiB of answers to one command; dropping the connection",
                            MAX_UNTAGGED_BYTES >> 20
                        )));
                    }
                    untagged.push(owned(resp.borrow_owner())?)
                }
            }
        }
    }

    /// LIST "" "*", with special-use attributes where the server offers them.
    ///
    /// Never XLIST: its `* XLIST` answers are not LIST responses to the
    /// parser, so the listing would fail. Gmail, which advertises XLIST
    /// but not SPECIAL-USE, puts the special-use attributes (`\All`,
    /// `\Sent`, ...) on plain LIST answers anyway, as its IMAP extensions
    /// documentation says; other servers fall back to the name table.
    pub async fn list(&mut self) -> Result<Vec<ListedFolder>> {
        let command = if self.has_capability("SPECIAL-USE") {
            "LIST \"\" \"*\" RETURN (SPECIAL-USE)"
        } else {
            "LIST \"\" \"*\""
        };
        let responses = self.command(command).await?;
        let mut out = Vec::new();
        for r in &responses {
            if let Response::MailboxData(imap_proto::MailboxDatum::List(data)) = r {
                out.push(ListedFolder {
                    wire_name: data.name.to_string(),
                    delimiter: data.delimiter.as_ref().map(|d| d.to_string()),
                    attributes: data.name_attributes.iter().map(name_attribute).collect(),
                });
            }
        }
        Ok(out)
    }

    /// EXAMINE: opens a folder read-only, so nothing the client does can
    /// change the source's flags.
    pub async fn examine(&mut self, wire_name: &str) -> Result<MailboxState> {
        let responses = self.command(&format!("EXAMINE {}", quote(wire_name))).await?;
        let state = mailbox_state(&responses);
        self.exists = state.exists;
        Ok(state)
    }

    pub async fn select(&mut self, wire_name: &str) -> Result<MailboxState> {
        let responses = self.command(&format!("SELECT {}", quote(wire_name))).await?;
        let state = mailbox_state(&responses);
        self.exists = state.exists;
        Ok(state)
    }

    /// APPEND with flags and INTERNALDATE, byte-identical. Uses LITERAL+
    /// when offered (one round trip instead of two) and returns the
    /// APPENDUID (UIDVALIDITY, UID) when the server reports it.
    pub async fn append(
        &mut self,
        wire_name: &str,
        flags: &str,
        internal_date: &str,
        raw: &[u8],
    ) -> Result<Option<(u32, u32)>> {
        let result = self.append_inner(wire_name, flags, internal_date, raw).await;
        if let Err(e) = &result
            && e.is_retryable()
        {
            self.broken = true;
        }
        result
    }

    async fn append_inner(
        &mut self,
        wire_name: &str,
        flags: &str,
        internal_date: &str,
        raw: &[u8],
    ) -> Result<Option<(u32, u32)>> {
        let t = self.timeout;
        let non_sync = self.has_capability("LITERAL+");
        let binary = raw.contains(&0);
        let literal = format!(
            "{}{{{}{}}}",
            if binary { "~" } else { "" },
            raw.len(),
            if non_sync { "+" } else { "" }
        );
        let command = format!("APPEND {} ({flags}) \"{internal_date}\" {literal}", quote(wire_name));
        let tag = timed(t, "APPEND", self.session.run_command(&command))
            .await?
            .map_err(|e| io_error("APPEND", e))?;
        if !non_sync {
            let resp = timed(t, "APPEND", self.session.read_response())
                .await?
                .map_err(|e| io_error("APPEND", e))?
                .ok_or_else(|| Error::transient("APPEND: the server closed the connection"))?;
            match resp.parsed() {
                Response::Continue(_) => {}
                Response::Done { status, outcome, .. } => {
                    let info = outcome.information.as_deref().unwrap_or("");
                    return Err(classify_status("APPEND", status, info));
                }
                other => {
                    return Err(Error::transient(format!(
                        "APPEND: expected a continuation, got {}",
                        excerpt(&format!("{other:?}"))
                    )));
                }
            }
        }
        self.write_literal(raw).await?;
        let responses = self.read_until_done(&tag, "APPEND").await?;
        Ok(responses.last().and_then(|r| match r {
            Response::Done { outcome, .. } => first_append_uid(outcome.code.as_ref()),
            _ => None,
        }))
    }

    /// Sends one message literal and the line end that completes its
    /// APPEND, in one write.
    async fn write_literal(&mut self, raw: &[u8]) -> Result<()> {
        let stream = self.session.get_mut();
        timed(literal_write_limit(self.timeout, raw.len()), "APPEND", async {
            stream.write_all(raw).await?;
            stream.write_all(b"\r\n").await?;
            stream.flush().await
        })
        .await?
        .map_err(|e| io_error("APPEND", e))
    }

    /// Pipelined APPENDs into one folder: with LITERAL+ every command and
    /// its literal go out back to back and the answers are read afterwards,
    /// so the server never waits on a round trip. One result per message,
    /// in order; an outer error means the connection failed and the
    /// messages without an answer are unsettled (they may or may not be
    /// stored). Without LITERAL+ this falls back to one APPEND at a time.
    pub async fn append_many(
        &mut self,
        wire_name: &str,
        items: &[(String, String, &[u8])],
    ) -> Result<Vec<AppendResult>> {
        if !self.has_capability("LITERAL+") || items.len() < 2 {
            let mut out = Vec::with_capacity(items.len());
            for (flags, date, raw) in items {
                match self.append(wire_name, flags, date, raw).await {
                    Err(e) if e.is_retryable() || e.kind == crate::error::ErrorKind::Fatal => {
                        if out.is_empty() {
                            return Err(e);
                        }
                        return Ok(out);
                    }
                    r => out.push(r),
                }
            }
            return Ok(out);
        }
        if self.has_capability("MULTIAPPEND") {
            match self.multi_append(wire_name, items).await {
                Ok(results) => return Ok(results),
                // The server refused the group as a whole (one message too
                // large, say) and stored none of it: send them one by one so
                // only the bad one fails.
                Err(e) if matches!(e.kind, crate::error::ErrorKind::Item | crate::error::ErrorKind::Refused) => {
                    tracing::debug!("MULTIAPPEND refused ({e}); appending one by one");
                }
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            }
        }
        let result = self.append_many_inner(wire_name, items).await;
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    /// One APPEND command carrying every message (RFC 3502 MULTIAPPEND,
    /// literals sent with LITERAL+): the server stores them in one
    /// transaction, all or none, which for Dovecot is several times faster
    /// than one APPEND per message. The UIDs come back as one APPENDUID
    /// set, in the order of the messages.
    async fn multi_append(&mut self, wire_name: &str, items: &[(String, String, &[u8])]) -> Result<Vec<AppendResult>> {
        let t = self.timeout;
        let total: usize = items.iter().map(|(_, _, raw)| raw.len()).sum();
        let write_limit = literal_write_limit(t, total);
        let part = |flags: &str, date: &str, raw: &[u8]| {
            let binary = if raw.contains(&0) { "~" } else { "" };
            format!("({flags}) \"{date}\" {binary}{{{}+}}", raw.len())
        };
        let (flags, date, raw) = &items[0];
        let command = format!("APPEND {} {}", quote(wire_name), part(flags, date, raw));
        let tag = timed(t, "APPEND", self.session.run_command(&command))
            .await?
            .map_err(|e| io_error("APPEND", e))?;
        let stream = self.session.get_mut();
        timed(write_limit, "APPEND", async {
            stream.write_all(raw).await?;
            for (flags, date, raw) in &items[1..] {
                stream
                    .write_all(format!(" {}\r\n", part(flags, date, raw)).as_bytes())
                    .await?;
                stream.write_all(raw).await?;
            }
            stream.write_all(b"\r\n").await?;
            stream.flush().await
        })
        .await?
        .map_err(|e| io_error("APPEND", e))?;
        let responses = self.read_until_done(&tag, "APPEND").await?;
        let mut uids: Vec<(u32, u32)> = Vec::with_capacity(items.len());
        if let Some(Response::Done { outcome, .. }) = responses.last()
            && let Some(ResponseCode::AppendUid(validity, set)) = &outcome.code
        {
            for member in set {
                match member {
                    imap_proto::rfc4315::UidSetMember::Uid(u) => uids.push((*validity, *u)),
                    imap_proto::rfc4315::UidSetMember::UidRange(r) => {
                        uids.extend(r.clone().map(|u| (*validity, u)));
                    }
                }
            }
        }
        if uids.len() != items.len() {
            // Stored, but the server did not say where: no ids to record.
            return Ok(items.iter().map(|_| Ok(None)).collect());
        }
        Ok(uids.into_iter().map(|u| Ok(Some(u))).collect())
    }

    async fn append_many_inner(
        &mut self,
        wire_name: &str,
        items: &[(String, String, &[u8])],
    ) -> Result<Vec<AppendResult>> {
        let t = self.timeout;
        let mut tags = Vec::with_capacity(items.len());
        for (flags, date, raw) in items {
            let binary = if raw.contains(&0) { "~" } else { "" };
            let command = format!(
                "APPEND {} ({flags}) \"{date}\" {binary}{{{}+}}",
                quote(wire_name),
                raw.len()
            );
            let tag = timed(t, "APPEND", self.session.run_command(&command))
                .await?
                .map_err(|e| io_error("APPEND", e))?;
            self.write_literal(raw).await?;
            tags.push(tag);
        }
        let mut results: Vec<Option<AppendResult>> = (0..items.len()).map(|_| None).collect();
        let mut pending = items.len();
        while pending > 0 {
            let resp = timed(t, "APPEND", self.session.read_response())
                .await?
                .map_err(|e| io_error("APPEND", e))?
                .ok_or_else(|| Error::transient("APPEND: the server closed the connection"))?;
            match resp.parsed() {
                Response::Done { tag, status, outcome } => {
                    let Some(i) = tags.iter().position(|t| t == tag) else {
                        continue;
                    };
                    let info = outcome.information.as_deref().unwrap_or("");
                    results[i] = Some(match status {
                        Status::Ok => Ok(first_append_uid(outcome.code.as_ref())),
                        _ => Err(classify_status("APPEND", status, info)),
                    });
                    pending -= 1;
                }
                Response::Data {
                    status: Status::Bye,
                    outcome,
                } => {
                    let info = outcome.information.as_deref().unwrap_or("");
                    return Err(classify_bye("APPEND", info));
                }
                _ => {}
            }
        }
        Ok(results.into_iter().map(|r| r.expect("every tag answered")).collect())
    }

    /// STATUS (MESSAGES SIZE) of many folders in one round trip, on servers
    /// that offer STATUS=SIZE (RFC 8438): `(messages, bytes)` per name, in
    /// order, `None` where the server refused that folder. Errors with an
    /// item error when the server lacks the extension.
    ///
    /// The IMAP parser underneath does not know the SIZE attribute and
    /// would reject the answer, so these commands are written and their
    /// answers read and parsed here, straight on the connection. That is
    /// safe between commands: the server sends nothing unasked then, so no
    /// bytes sit in the parser's buffer and none are read past the last
    /// tagged answer.
    pub async fn status_sizes(&mut self, wire_names: &[String]) -> Result<Vec<Option<(u32, u64)>>> {
        if !self.has_capability("STATUS=SIZE") {
            return Err(Error::item("the server does not offer STATUS=SIZE"));
        }
        if wire_names.is_empty() {
            return Ok(Vec::new());
        }
        let result = self.status_sizes_inner(wire_names).await;
        if let Err(e) = &result
            && e.is_retryable()
        {
            self.broken = true;
        }
        result
    }

    async fn status_sizes_inner(&mut self, wire_names: &[String]) -> Result<Vec<Option<(u32, u64)>>> {
        let t = self.timeout;
        let mut commands = String::new();
        for (i, name) in wire_names.iter().enumerate() {
            commands.push_str(&format!("cs{i} STATUS {} (MESSAGES SIZE)\r\n", quote(name)));
        }
        let stream = self.session.get_mut();
        timed(t, "STATUS", async {
            stream.write_all(commands.as_bytes()).await?;
            stream.flush().await
        })
        .await?
        .map_err(|e| io_error("STATUS", e))?;
        let mut found: std::collections::HashMap<String, (u32, u64)> = std::collections::HashMap::new();
        let mut answered = vec![false; wire_names.len()];
        let mut refused = vec![false; wire_names.len()];
        let mut pending = wire_names.len();
        let mut buf: Vec<u8> = Vec::with_capacity(8192);
        let mut chunk = vec![0u8; 8192];
        while pending > 0 {
            while let Some(len) = complete_response(&buf) {
                let line: Vec<u8> = buf.drain(..len).collect();
                let line = &line[..line.len() - 2];
                if let Some(rest) = line.strip_prefix(b"* STATUS ") {
                    if let Some((name, counts)) = parse_status_size(rest) {
                        found.insert(name, counts);
                    }
                } else if line.starts_with(b"* BYE") {
                    return Err(classify_bye("STATUS", &String::from_utf8_lossy(&line[5..])));
                } else if let Some(rest) = line.strip_prefix(b"cs") {
                    let text = String::from_utf8_lossy(rest);
                    let (index, outcome) = text.split_once(' ').unwrap_or((&text, ""));
                    if let Ok(i) = index.parse::<usize>()
                        && i < answered.len()
                        && !answered[i]
                    {
                        answered[i] = true;
                        refused[i] = !outcome.starts_with("OK");
                        pending -= 1;
                    }
                }
            }
            if pending == 0 {
                break;
            }
            let stream = self.session.get_mut();
            let n = timed(t, "STATUS", stream.read(&mut chunk))
                .await?
                .map_err(|e| io_error("STATUS", e))?;
            if n == 0 {
                return Err(Error::transient("STATUS: the server closed the connection"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(wire_names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                if refused[i] {
                    return None;
                }
                found.get(name).copied().or_else(|| {
                    // The server may spell INBOX its own way.
                    name.eq_ignore_ascii_case("INBOX")
                        .then(|| {
                            found
                                .iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case("INBOX"))
                                .map(|(_, v)| *v)
                        })
                        .flatten()
                })
            })
            .collect())
    }

    /// Sends a FETCH and hands each response to `each` as it arrives, so
    /// the caller can process bodies without holding the whole batch.
    ///
    /// A FETCH brings at most one answer per message of the open folder,
    /// plus the odd unsolicited update; a server that keeps answering past
    /// twice that (and 10,000 more for mail arriving meanwhile) is dropped,
    /// so a FETCH that never ends cannot run the caller out of memory.
    pub async fn fetch_each(&mut self, command: &str, mut each: impl FnMut(&Response<'_>) -> Result<()>) -> Result<()> {
        let most = 2 * u64::from(self.exists) + 10_000;
        let result = async {
            let t = self.timeout;
            let mut answers = 0u64;
            let tag = timed(t, "FETCH", self.session.run_command(command))
                .await?
                .map_err(|e| io_error("FETCH", e))?;
            loop {
                let resp = timed(t, "FETCH", self.session.read_response())
                    .await?
                    .map_err(|e| io_error("FETCH", e))?
                    .ok_or_else(|| Error::transient("FETCH: the server closed the connection"))?;
                match resp.parsed() {
                    Response::Done {
                        tag: done,
                        status,
                        outcome,
                    } if *done == tag => {
                        let info = outcome.information.as_deref().unwrap_or("");
                        return match status {
                            Status::Ok => Ok(()),
                            _ => Err(classify_status("FETCH", status, info)),
                        };
                    }
                    Response::Data {
                        status: Status::Bye,
                        outcome,
                    } => {
                        let info = outcome.information.as_deref().unwrap_or("");
                        return Err(classify_bye("FETCH", info));
                    }
                    other => {
                        answers += 1;
                        if answers > most {
                            return Err(Error::transient(format!(
                                "FETCH: the server sent more than {most} answers for a folder of {} messages; dropping the connection",
                                self.exists
                            )));
                        }
                        each(other)?
                    }
                }
            }
        }
        .await;
        if let Err(e) = &result
            && e.is_retryable()
        {
            self.broken = true;
        }
        result
    }

    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.session.logout()).await;
        if let Some(t) = self.session.get_ref().deflate_totals() {
            tracing::debug!(
                server = %self.server,
                "COMPRESS=DEFLATE: read {} bytes as {} on the wire, wrote {} as {}",
                t.read_plain,
                t.read_wire,
                t.written_plain,
                t.written_wire
            );
        }
    }
}

async fn connect(endpoint: &Endpoint, tls: &Arc<rustls::ClientConfig>) -> Result<async_imap::Client<Guarded>> {
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

fn tls_error(where_: &str, e: std::io::Error) -> Error {
    // A certificate problem will not fix itself by retrying.
    Error::fatal(format!(
        "TLS with {where_} failed: {e} (if the server uses a private CA, set ca_file)"
    ))
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

/// An owned copy of one response, re-parsed from its raw bytes (the
/// library's response type borrows its buffer and cannot be cloned).
fn owned(raw: &[u8]) -> Result<Response<'static>> {
    Response::parse(raw)
        .map(|(_, r)| r.into_owned())
        .map_err(|_| Error::transient("the server sent a response that cannot be parsed"))
}

/// SASL XOAUTH2: the initial response, then an empty answer to the error
/// challenge a server sends before refusing.
struct XOAuth2 {
    response: Secret,
    sent: bool,
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Self::Response {
        if std::mem::replace(&mut self.sent, true) {
            return Vec::new();
        }
        self.response.expose().as_bytes().to_vec()
    }
}

struct PlainAuth {
    user: String,
    password: Secret,
}

impl async_imap::Authenticator for PlainAuth {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Self::Response {
        let mut out = Vec::new();
        out.push(0);
        out.extend_from_slice(self.user.as_bytes());
        out.push(0);
        out.extend_from_slice(self.password.expose().as_bytes());
        out
    }
}

/// The server's own words from a refused login (or other command), without the library's
/// debug framing ("code: None, info: Some(\"...\")").
fn describe_login_error(e: &async_imap::error::Error) -> String {
    let text = match e {
        async_imap::error::Error::No(s) | async_imap::error::Error::Bad(s) => s.clone(),
        other => return other.to_string(),
    };
    const OPEN: &str = "info: Some(\"";
    match (text.find(OPEN), text.rfind("\")")) {
        (Some(a), Some(b)) if a + OPEN.len() <= b => text[a + OPEN.len()..b].replace("\\\"", "\""),
        _ => text,
    }
}

fn capability_name(c: &async_imap::types::Capability) -> String {
    match c {
        async_imap::types::Capability::Imap4rev1 => "IMAP4REV1".to_owned(),
        async_imap::types::Capability::Auth(a) => format!("AUTH={}", a.to_ascii_uppercase()),
        async_imap::types::Capability::Atom(a) => a.to_ascii_uppercase(),
    }
}

fn name_attribute(a: &imap_proto::NameAttribute<'_>) -> String {
    use imap_proto::NameAttribute as A;
    match a {
        A::NoInferiors => "\\noinferiors".to_owned(),
        A::NoSelect => "\\noselect".to_owned(),
        A::Marked => "\\marked".to_owned(),
        A::Unmarked => "\\unmarked".to_owned(),
        A::All => "\\all".to_owned(),
        A::Archive => "\\archive".to_owned(),
        A::Drafts => "\\drafts".to_owned(),
        A::Flagged => "\\flagged".to_owned(),
        A::Junk => "\\junk".to_owned(),
        A::Sent => "\\sent".to_owned(),
        A::Trash => "\\trash".to_owned(),
        A::Extension(s) => s.to_ascii_lowercase(),
        _ => format!("{a:?}").to_ascii_lowercase(),
    }
}

fn mailbox_state(responses: &[Response<'static>]) -> MailboxState {
    let mut state = MailboxState::default();
    for r in responses {
        match r {
            Response::MailboxData(imap_proto::MailboxDatum::Exists(n)) => state.exists = *n,
            Response::Data { outcome, .. } => match &outcome.code {
                Some(ResponseCode::UidValidity(v)) => state.uid_validity = *v,
                Some(ResponseCode::UidNext(v)) => state.uid_next = Some(*v),
                _ => {}
            },
            _ => {}
        }
    }
    state
}

/// Classifies a tagged NO/BAD. Throttling answers (RFC 5530 codes,
/// Exchange's "Request is throttled. Suggested Backoff Time: N
/// milliseconds") become [`ErrorKind::Throttled`](crate::error::ErrorKind);
/// `[UNAVAILABLE]`/`[SERVERBUG]` are transient; anything else about one
/// command is the caller's to judge, reported as an item error.
/// How long sending `bytes` of literals may take: the command timeout plus
/// a second per 256 KiB, so a slow link is not mistaken for a dead one.
fn literal_write_limit(timeout: Duration, bytes: usize) -> Duration {
    timeout + Duration::from_secs((bytes / (256 * 1024)) as u64)
}

/// (UIDVALIDITY, UID) of the first message an APPENDUID answer names.
fn first_append_uid(code: Option<&ResponseCode>) -> Option<(u32, u32)> {
    match code {
        Some(ResponseCode::AppendUid(validity, uids)) => uids.first().map(|u| match u {
            imap_proto::rfc4315::UidSetMember::Uid(u) => (*validity, *u),
            imap_proto::rfc4315::UidSetMember::UidRange(r) => (*validity, *r.start()),
        }),
        _ => None,
    }
}

/// What of a server's words goes into an error: enough to tell the admin
/// what happened, never a whole (possibly huge, possibly private) answer.
fn excerpt(text: &str) -> String {
    const MAX: usize = 300;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

pub fn classify_status(verb: &str, status: &Status, info: &str) -> Error {
    let word = match status {
        Status::No => "NO",
        Status::Bad => "BAD",
        _ => "error",
    };
    let message = format!("{verb} answered {word} {}", excerpt(info));
    if let Some(delay) = suggested_backoff(info) {
        return Error::throttled(delay, message);
    }
    let upper = info.to_ascii_uppercase();
    if upper.contains("[THROTTLED]") || upper.contains("[LIMIT]") || upper.contains("[UNAVAILABLE]") {
        return Error::throttled(Duration::from_secs(10), message);
    }
    // Gmail: "Account exceeded command or bandwidth limits".
    if upper.contains("BANDWIDTH") || upper.contains("EXCEEDED COMMAND") {
        return Error::throttled(Duration::from_secs(30), message);
    }
    if upper.contains("[SERVERBUG]") || upper.contains("[INUSE]") {
        return Error::transient(message);
    }
    Error::item(message)
}

/// A failed TCP connect. A refusal means the server (or a load balancer in
/// front of it) is turning connections away, often because too many are
/// open: that is push-back, met with a growing wait. Anything else
/// (unreachable, reset) is a passing fault.
fn classify_connect_error(where_: &str, e: &std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        return Error::throttled(
            Duration::from_secs(2),
            format!("{where_} refused the connection (too many connections, or the server is down)"),
        );
    }
    Error::transient(format!("cannot connect to {where_}: {e}"))
}

/// A login refused for now rather than for bad credentials: the server is
/// busy or limits connections (`[UNAVAILABLE]`, `[THROTTLED]`, `[LIMIT]`,
/// `[INUSE]`, Exchange's suggested backoff, "too many connections").
fn login_pushback(e: &async_imap::error::Error, detail: &str) -> Option<Error> {
    let raw = match e {
        async_imap::error::Error::No(s) | async_imap::error::Error::Bad(s) => s.as_str(),
        _ => return None,
    };
    let upper = raw.to_ascii_uppercase();
    let message = format!("LOGIN answered {detail}");
    if let Some(delay) = suggested_backoff(raw) {
        return Some(Error::throttled(delay, message));
    }
    let busy = [
        "UNAVAILABLE",
        "THROTTL",
        "[LIMIT]",
        "\"LIMIT\"",
        "INUSE",
        "TOO MANY",
        "BANDWIDTH",
        "MAXIMUM NUMBER OF CONNECTIONS",
    ];
    busy.iter()
        .any(|w| upper.contains(w))
        .then(|| Error::throttled(Duration::from_secs(10), message))
}

fn classify_bye(verb: &str, info: &str) -> Error {
    let message = format!("{verb}: the server said BYE {info}");
    if let Some(delay) = suggested_backoff(info) {
        return Error::throttled(delay, message);
    }
    let lower = info.to_ascii_lowercase();
    // Gmail ends a session over its bandwidth limit with "Session expired".
    if lower.contains("throttl")
        || lower.contains("bandwidth")
        || lower.contains("too many")
        || lower.contains("limit")
        || lower.contains("[unavailable]")
        || lower.contains("session expired")
        || lower.contains("maximum number of connections")
    {
        return Error::throttled(Duration::from_secs(30), message);
    }
    Error::transient(message)
}

/// Exchange: "Request is throttled. Suggested Backoff Time: 299961 milliseconds".
fn suggested_backoff(info: &str) -> Option<Duration> {
    let lower = info.to_ascii_lowercase();
    let at = lower.find("suggested backoff time:")?;
    let rest = lower[at + "suggested backoff time:".len()..].trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    Some(Duration::from_millis(n))
}

/// Length of the first complete response line in `buf` (CRLF included),
/// literals (`{n}` or `{n+}` before a CRLF, then n bytes) included.
fn complete_response(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + buf[from..].windows(2).position(|w| w == b"\r\n")?;
        let line = &buf[from..at];
        let literal = line
            .strip_suffix(b"}")
            .and_then(|l| l.iter().rposition(|&b| b == b'{').map(|open| &l[open + 1..]))
            .map(|n| n.strip_suffix(b"+").unwrap_or(n))
            .and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok());
        match literal {
            Some(n) => {
                from = at + 2 + n;
                if from > buf.len() {
                    return None;
                }
            }
            None => return Some(at + 2),
        }
    }
}

/// `<mailbox> (MESSAGES n SIZE m)` from an untagged STATUS answer; the
/// mailbox as a quoted string, a literal or an atom.
fn parse_status_size(rest: &[u8]) -> Option<(String, (u32, u64))> {
    let (name, after) = match rest.first()? {
        b'"' => {
            let mut name = Vec::new();
            let mut i = 1;
            loop {
                match *rest.get(i)? {
                    b'\\' => {
                        name.push(*rest.get(i + 1)?);
                        i += 2;
                    }
                    b'"' => break,
                    b => {
                        name.push(b);
                        i += 1;
                    }
                }
            }
            (name, &rest[i + 1..])
        }
        b'{' => {
            let close = rest.iter().position(|&b| b == b'}')?;
            let digits = std::str::from_utf8(&rest[1..close]).ok()?;
            let n: usize = digits.trim_end_matches('+').parse().ok()?;
            let start = close + 3;
            (rest.get(start..start + n)?.to_vec(), &rest[start + n..])
        }
        _ => {
            let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            (rest[..end].to_vec(), &rest[end..])
        }
    };
    let text = std::str::from_utf8(after).ok()?;
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    let words: Vec<&str> = inner.split_whitespace().collect();
    let mut messages = None;
    let mut size = None;
    for pair in words.chunks(2) {
        match pair {
            [k, v] if k.eq_ignore_ascii_case("MESSAGES") => messages = v.parse().ok(),
            [k, v] if k.eq_ignore_ascii_case("SIZE") => size = v.parse().ok(),
            _ => {}
        }
    }
    Some((String::from_utf8(name).ok()?, (messages?, size?)))
}

/// Quotes a string for an IMAP command (mailbox names are already 7-bit
/// after modified UTF-7 encoding).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// IMAP date-time ("17-Jul-1996 02:44:25 +0000") for APPEND.
pub fn format_internal_date(unix: i64) -> String {
    let dt = chrono::DateTime::from_timestamp(unix, 0).unwrap_or_default();
    dt.format("%d-%b-%Y %H:%M:%S +0000").to_string()
}

/// Parses an IMAP INTERNALDATE into unix seconds.
pub fn parse_internal_date(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_str(s.trim(), "%d-%b-%Y %H:%M:%S %z")
        .ok()
        .map(|d| d.timestamp())
}

#[cfg(test)]
mod tests {

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
    use super::*;

    /// Why `list` never sends XLIST, and why Gmail needs no XLIST: LIST
    /// answers as Google documents them carry the special-use attributes,
    /// while an `* XLIST` answer does not parse as a LIST response.
    #[test]
    fn gmail_list_answers_carry_roles_and_xlist_answers_do_not_parse() {
        let line = b"* LIST (\\HasNoChildren \\All) \"/\" \"[Gmail]/All Mail\"\r\n";
        match Response::parse(line) {
            Ok((_, Response::MailboxData(imap_proto::MailboxDatum::List(data)))) => {
                let attrs: Vec<String> = data.name_attributes.iter().map(name_attribute).collect();
                assert!(attrs.contains(&"\\all".to_owned()), "{attrs:?}");
                assert_eq!(data.name, "[Gmail]/All Mail");
            }
            other => panic!("a Gmail LIST answer must parse: {other:?}"),
        }
        let xlist = b"* XLIST (\\HasNoChildren \\AllMail) \"/\" \"[Gmail]/All Mail\"\r\n";
        assert!(
            !matches!(
                Response::parse(xlist),
                Ok((_, Response::MailboxData(imap_proto::MailboxDatum::List(_))))
            ),
            "XLIST answers are not LIST data to the parser"
        );
    }

    #[test]
    fn parse_failures_do_not_carry_the_servers_bytes() {
        let e = io_error(
            "FETCH",
            "Error(Error { input: [42, 32], code: TakeWhile1 }) during parsing of \"* 1 FETCH secret mail\"",
        );
        assert!(!e.message.contains("secret mail"), "{}", e.message);
        assert!(e.message.contains("not valid IMAP"), "{}", e.message);
        let long = "x".repeat(5000);
        assert!(io_error("LIST", &long).message.len() < 320);
    }

    #[test]
    fn the_guard_follows_literals_and_bounds_lines_and_literal_sizes() {
        let mut g = ResponseGuard::default();
        // A FETCH with a literal holding CRLFs and braces, then the end.
        g.check(b"* 1 FETCH (UID 7 BODY[] {12}\r\nab{3}\r\n\r\ncd)\r\n")
            .unwrap();
        assert_eq!((g.line, g.literal_left, g.response), (0, 0, 0));
        // Split anywhere, even inside the announcement.
        for b in b"* 2 FETCH (BODY[] {5".iter().chain(b"}\r\nhello)\r\n") {
            g.check(&[*b]).unwrap();
        }
        assert_eq!((g.line, g.literal_left, g.response), (0, 0, 0));
        let err = g.check(b"* 3 FETCH (BODY[] {999999999999}\r\n").unwrap_err();
        assert!(err.to_string().contains("literal of 999999999999 bytes"), "{err}");
        let mut g = ResponseGuard::default();
        let big = vec![b'a'; (MAX_LINE_BYTES as usize) / 4];
        for _ in 0..4 {
            g.check(&big).unwrap();
        }
        let err = g.check(b"a").unwrap_err();
        assert!(err.to_string().contains("line longer than 16 MiB"), "{err}");
        assert_eq!(literal_at_end(b"x ~{42}\r\n"), Some(42));
        assert_eq!(literal_at_end(b"x {}\r\n"), None);
        assert_eq!(literal_at_end(b"x {4a}\r\n"), None);
    }

    /// Once COMPRESS=DEFLATE is on, the guard judges the inflated bytes:
    /// a compressed announcement of a 4 GB literal (a few bytes on the
    /// wire) fails the read like an uncompressed one.
    #[tokio::test]
    async fn the_guard_watches_the_inflated_bytes_of_a_compressed_connection() {
        use flate2::{Compress, Compression, FlushCompress};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.unwrap();
            let mut z = Compress::new(Compression::default(), false);
            let mut wire = Vec::with_capacity(4096);
            let answers = b"* 1 FETCH (UID 1 BODY[] {3}\r\nabc)\r\n* 2 FETCH (UID 2 BODY[] {4000000000}\r\n";
            z.compress_vec(answers, &mut wire, FlushCompress::Sync).unwrap();
            peer.write_all(&wire).await.unwrap();
            // Keep the connection open until the client gave up.
            let mut rest = Vec::new();
            let _ = peer.read_to_end(&mut rest).await;
        });
        let mut conn = Guarded::new(Stream::Plain(TcpStream::connect(addr).await.unwrap()), None);
        conn.start_deflate();
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        let err = loop {
            match conn.read(&mut buf).await {
                Ok(0) => panic!("the stream ended before the guard stopped it"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("literal of 4000000000 bytes"), "{err}");
        assert!(got.starts_with(b"* 1 FETCH (UID 1 BODY[] {3}\r\nabc)\r\n"), "{got:?}");
        drop(conn);
        server.await.unwrap();
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

    #[test]
    fn internal_dates_round_trip() {
        assert_eq!(parse_internal_date("17-Jul-1996 02:44:25 -0700"), Some(837_596_665));
        assert_eq!(parse_internal_date(" 7-Jul-1996 02:44:25 +0000"), Some(836_707_465));
        let s = format_internal_date(837_596_665);
        assert_eq!(s, "17-Jul-1996 09:44:25 +0000");
        assert_eq!(parse_internal_date(&s), Some(837_596_665));
    }

    #[test]
    fn throttling_answers_are_recognised() {
        let e = classify_status(
            "APPEND",
            &Status::Bad,
            "Request is throttled. Suggested Backoff Time: 299961 milliseconds",
        );
        assert_eq!(
            e.kind,
            crate::error::ErrorKind::Throttled(Duration::from_millis(299_961))
        );
        let e = classify_status("FETCH", &Status::No, "[THROTTLED] slow down");
        assert!(matches!(e.kind, crate::error::ErrorKind::Throttled(_)));
        let e = classify_status(
            "APPEND",
            &Status::No,
            "Maximum size of appendable message has been exceeded",
        );
        assert_eq!(e.kind, crate::error::ErrorKind::Item);
        let e = classify_status("FETCH", &Status::No, "[UNAVAILABLE] try later");
        assert!(matches!(e.kind, crate::error::ErrorKind::Throttled(_)));
        let e = classify_status("FETCH", &Status::No, "[LIMIT] too many commands");
        assert!(matches!(e.kind, crate::error::ErrorKind::Throttled(_)));
        let e = classify_status(
            "FETCH",
            &Status::No,
            "[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)",
        );
        assert_eq!(e.kind, crate::error::ErrorKind::Throttled(Duration::from_secs(30)));
        let e = classify_status("SELECT", &Status::No, "[SERVERBUG] internal error");
        assert_eq!(e.kind, crate::error::ErrorKind::Transient);
    }

    #[test]
    fn a_bye_that_pushes_back_is_throttling_and_any_other_bye_is_transient() {
        use crate::error::ErrorKind;
        let e = classify_bye(
            "FETCH",
            "Request is throttled. Suggested Backoff Time: 1500 milliseconds",
        );
        assert_eq!(e.kind, ErrorKind::Throttled(Duration::from_millis(1500)));
        // Gmail over its bandwidth limit.
        assert!(matches!(
            classify_bye("FETCH", "Session expired").kind,
            ErrorKind::Throttled(_)
        ));
        assert!(matches!(
            classify_bye("FETCH", "Account exceeded bandwidth limits").kind,
            ErrorKind::Throttled(_)
        ));
        // Dovecot's per user and IP connection cap.
        assert!(matches!(
            classify_bye(
                "LOGIN",
                "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)"
            )
            .kind,
            ErrorKind::Throttled(_)
        ));
        assert!(matches!(
            classify_bye("greeting", "[UNAVAILABLE] Server shutting down").kind,
            ErrorKind::Throttled(_)
        ));
        assert_eq!(
            classify_bye("FETCH", "Disconnected for inactivity.").kind,
            ErrorKind::Transient
        );
    }

    #[test]
    fn a_refused_connection_is_push_back_other_connect_failures_are_transient() {
        use crate::error::ErrorKind;
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = classify_connect_error("imap.example:993", &refused);
        assert!(matches!(e.kind, ErrorKind::Throttled(_)), "{e:?}");
        assert!(e.message.contains("imap.example:993 refused the connection"));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(classify_connect_error("h:1", &reset).kind, ErrorKind::Transient);
    }

    #[test]
    fn a_busy_login_refusal_is_retried_a_wrong_password_is_not() {
        use crate::error::ErrorKind;
        let busy = async_imap::error::Error::No(
            "code: Some(Unavailable), info: Some(\"[UNAVAILABLE] Temporary authentication failure.\")".into(),
        );
        let e = login_pushback(&busy, &describe_login_error(&busy)).expect("push-back");
        assert!(matches!(e.kind, ErrorKind::Throttled(_)));
        let exchange = async_imap::error::Error::Bad(
            "code: None, info: Some(\"Request is throttled. Suggested Backoff Time: 2000 milliseconds\")".into(),
        );
        let e = login_pushback(&exchange, &describe_login_error(&exchange)).expect("push-back");
        assert_eq!(e.kind, ErrorKind::Throttled(Duration::from_millis(2000)));
        let full = async_imap::error::Error::No(
            "code: None, info: Some(\"Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)\")"
                .into(),
        );
        assert!(login_pushback(&full, &describe_login_error(&full)).is_some());
        let wrong = async_imap::error::Error::No(
            "code: None, info: Some(\"[AUTHENTICATIONFAILED] Authentication failed.\")".into(),
        );
        assert!(login_pushback(&wrong, &describe_login_error(&wrong)).is_none());
    }

    #[test]
    fn login_errors_keep_only_the_servers_words() {
        let e = async_imap::error::Error::No(
            "code: None, info: Some(\"[AUTHENTICATIONFAILED] Authentication failed.\")".into(),
        );
        assert_eq!(
            describe_login_error(&e),
            "[AUTHENTICATIONFAILED] Authentication failed."
        );
    }

    #[test]
    fn status_size_answers_are_parsed_with_quoted_literal_and_atom_names() {
        assert_eq!(
            parse_status_size(b"\"Kunden & Partner\" (MESSAGES 3 SIZE 4096)"),
            Some(("Kunden & Partner".to_owned(), (3, 4096)))
        );
        assert_eq!(
            parse_status_size(b"INBOX (SIZE 10 MESSAGES 1)"),
            Some(("INBOX".to_owned(), (1, 10)))
        );
        assert_eq!(
            parse_status_size(b"{5}\r\na\"b\\c (MESSAGES 0 SIZE 0)"),
            Some(("a\"b\\c".to_owned(), (0, 0)))
        );
        assert_eq!(parse_status_size(b"\"x\" (MESSAGES 1)"), None);
        let buf = b"* STATUS {3}\r\nabc (MESSAGES 1 SIZE 2)\r\ncs0 OK done\r\n";
        let first = complete_response(buf).unwrap();
        assert_eq!(&buf[..first], b"* STATUS {3}\r\nabc (MESSAGES 1 SIZE 2)\r\n");
        assert_eq!(complete_response(&buf[first..]), Some(buf.len() - first));
        assert_eq!(complete_response(b"* STATUS {30}\r\nabc"), None);
    }

    #[test]
    fn quoting_escapes_quotes_and_backslashes() {
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }

    #[test]
    fn a_long_server_answer_is_cut_in_errors() {
        let info = "é".repeat(10_000);
        let e = classify_status("APPEND", &Status::No, &info);
        assert!(e.message.len() < 400, "{}", e.message.len());
        assert!(e.message.ends_with("(20000 bytes in all)"), "{}", e.message);
        let short = classify_status("APPEND", &Status::No, "[OVERQUOTA] mailbox full");
        assert_eq!(short.message, "APPEND answered NO [OVERQUOTA] mailbox full");
    }
}
