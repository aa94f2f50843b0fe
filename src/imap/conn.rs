//! An authenticated IMAP connection, [`Conn`]: logging in (LOGIN, SASL
//! PLAIN for non-ASCII credentials, SASL XOAUTH2), the capabilities and
//! COMPRESS=DEFLATE that follow, the tagged command loop every command runs
//! through (timeouts, BYE, the bound on answers kept), the folder commands
//! (LIST, EXAMINE, SELECT), FETCH streamed answer by answer, and LOGOUT.
//! The APPEND family lives in [`append`](super::append) and STATUS=SIZE in
//! [`status`](super::status), both as further `impl Conn` blocks.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_imap::imap_proto::{self, Response, ResponseCode, Status};
use tokio_rustls::rustls;

use super::classify::{
    AnswerRate, answer_text, classify_bye, classify_status, describe_login_error, excerpt, io_error, login_pushback,
    timed, timed_while_receiving,
};
use super::endpoint::{Endpoint, connect};
use super::guard::{Guarded, MAX_UNTAGGED_BYTES};
use super::wire::quote;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// An authenticated IMAP connection.
pub struct Conn {
    pub(super) session: async_imap::Session<Guarded>,
    capabilities: HashSet<String>,
    pub(super) timeout: Duration,
    /// Set once the connection is known to be unusable; callers reconnect.
    pub(super) broken: bool,
    /// Messages in the folder last opened (EXAMINE/SELECT): bounds how many
    /// answers a FETCH may bring.
    exists: u32,
    /// `host:port`, for log lines.
    server: String,
    /// Bytes read from the server so far (see [`Guarded`]): the command
    /// deadline's measure.
    received: Arc<AtomicU64>,
    /// Literal bytes read so far: lets a FETCH bringing a large message
    /// take the time its size needs.
    literal_received: Arc<AtomicU64>,
}

/// What EXAMINE or SELECT reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailboxState {
    pub uid_validity: u32,
    pub uid_next: Option<u32>,
    pub exists: u32,
    /// HIGHESTMODSEQ (RFC 7162 CONDSTORE), where the server keeps it for
    /// the folder.
    pub highest_modseq: Option<u64>,
    /// PERMANENTFLAGS as listed (`\*` included), where the server sent
    /// them: the flags a STORE keeps across sessions.
    pub permanent_flags: Option<Vec<String>>,
}

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
        let received = session.get_ref().received.clone();
        let literal_received = session.get_ref().literal_received.clone();
        let mut conn = Conn {
            received,
            literal_received,
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

    /// The largest message the server takes in an APPEND, where it says
    /// (RFC 7889 `APPENDLIMIT=n` in its capabilities).
    pub fn append_limit(&self) -> Option<u64> {
        self.capabilities
            .iter()
            .find_map(|c| c.strip_prefix("APPENDLIMIT=")?.parse().ok())
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Passes a command's result on, marking the connection broken when
    /// the failure is retryable (a timeout, a transport failure, a BYE):
    /// the connection is then in an unknown state and must not be reused.
    pub(super) fn broken_if_retryable<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result
            && e.is_retryable()
        {
            self.broken = true;
        }
        result
    }

    /// Runs one tagged command and returns its untagged responses. A NO or
    /// BAD is classified by [`classify_status`]; a transport failure marks
    /// the connection broken.
    pub async fn command(&mut self, command: &str) -> Result<Vec<Response<'static>>> {
        let verb = command.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let result = self.command_inner(command, &verb).await;
        self.broken_if_retryable(result)
    }

    async fn command_inner(&mut self, command: &str, verb: &str) -> Result<Vec<Response<'static>>> {
        let t = self.timeout;
        let tag = timed(t, verb, self.session.run_command(command))
            .await?
            .map_err(|e| io_error(verb, e))?;
        self.read_until_done(&tag, verb).await
    }

    pub(super) async fn read_until_done(
        &mut self,
        tag: &imap_proto::RequestId,
        verb: &str,
    ) -> Result<Vec<Response<'static>>> {
        let t = self.timeout;
        let mut untagged = Vec::new();
        let mut kept = 0usize;
        let rate = AnswerRate::start(t, &self.received);
        loop {
            let resp = timed(t, verb, self.session.read_response())
                .await?
                .map_err(|e| io_error(verb, e))?
                .ok_or_else(|| Error::transient(format!("{verb}: the server closed the connection")))?;
            rate.check(verb, &self.received)?;
            match resp.parsed() {
                Response::Done {
                    tag: done,
                    status,
                    outcome,
                } if done == tag => {
                    let info = &answer_text(outcome.code.as_ref(), outcome.information.as_deref());
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
                    let info = &answer_text(outcome.code.as_ref(), outcome.information.as_deref());
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
    /// Opens a folder read-only; on a server with CONDSTORE, asks for its
    /// HIGHESTMODSEQ too, which tells a resync whether any flag changed.
    pub async fn examine(&mut self, wire_name: &str) -> Result<MailboxState> {
        let condstore = if self.has_capability("CONDSTORE") {
            " (CONDSTORE)"
        } else {
            ""
        };
        let responses = self
            .command(&format!("EXAMINE {}{condstore}", quote(wire_name)))
            .await?;
        let mut state = mailbox_state(&responses);
        // Without CONDSTORE offered a HIGHESTMODSEQ is not to be used (its
        // CHANGEDSINCE is CONDSTORE's), though some say it anyway: Dovecot
        // once any client used CONDSTORE on the folder, behind a proxy that
        // hides the capability.
        if condstore.is_empty() {
            state.highest_modseq = None;
        }
        self.exists = state.exists;
        Ok(state)
    }

    pub async fn select(&mut self, wire_name: &str) -> Result<MailboxState> {
        let responses = self.command(&format!("SELECT {}", quote(wire_name))).await?;
        let state = mailbox_state(&responses);
        self.exists = state.exists;
        Ok(state)
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
            let rate = AnswerRate::start(t, &self.received);
            let tag = timed(t, "FETCH", self.session.run_command(command))
                .await?
                .map_err(|e| io_error("FETCH", e))?;
            loop {
                // A response may carry a 150 MB literal: it gets the time
                // its size needs as long as it keeps coming.
                let resp = timed_while_receiving(t, "FETCH", &self.literal_received, self.session.read_response())
                    .await?
                    .map_err(|e| io_error("FETCH", e))?
                    .ok_or_else(|| Error::transient("FETCH: the server closed the connection"))?;
                rate.check("FETCH", &self.received)?;
                match resp.parsed() {
                    Response::Done {
                        tag: done,
                        status,
                        outcome,
                    } if *done == tag => {
                        let info = &answer_text(outcome.code.as_ref(), outcome.information.as_deref());
                        return match status {
                            Status::Ok => Ok(()),
                            _ => Err(classify_status("FETCH", status, info)),
                        };
                    }
                    Response::Data {
                        status: Status::Bye,
                        outcome,
                    } => {
                        let info = &answer_text(outcome.code.as_ref(), outcome.information.as_deref());
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
        self.broken_if_retryable(result)
    }

    /// Logs out and waits (up to two seconds) for the server to close the
    /// connection. A server counts the session against its limits until
    /// then (Dovecot's process_limit, per-user connection caps), so the
    /// caller's connection slot is freed only after it: a new login never
    /// overlaps the old session.
    pub async fn logout(mut self) {
        use tokio::io::AsyncReadExt;
        let answered = tokio::time::timeout(Duration::from_secs(5), self.session.logout()).await;
        if matches!(answered, Ok(Ok(()))) {
            let stream = self.session.get_mut();
            let closed = async {
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), closed).await;
        }
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
                Some(ResponseCode::HighestModSeq(v)) => state.highest_modseq = Some(*v),
                Some(ResponseCode::PermanentFlags(listed)) => {
                    state.permanent_flags = Some(listed.iter().map(|f| f.to_string()).collect());
                }
                _ => {}
            },
            _ => {}
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_answers_give_validity_modseq_and_permanent_flags() {
        let responses: Vec<Response<'static>> = [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft Work)\r\n",
            "* OK [PERMANENTFLAGS (\\Seen \\Deleted work)] Limited\r\n",
            "* OK [UIDVALIDITY 1700000001] UIDs valid\r\n",
            "* OK [HIGHESTMODSEQ 42] Highest\r\n",
            "* 3 EXISTS\r\n",
            "T1 OK [READ-WRITE] Select completed.\r\n",
        ]
        .iter()
        .map(|l| owned(l.as_bytes()).unwrap())
        .collect();
        let state = mailbox_state(&responses);
        assert_eq!(state.uid_validity, 1_700_000_001);
        assert_eq!(state.highest_modseq, Some(42));
        assert_eq!(state.exists, 3);
        assert_eq!(
            state.permanent_flags.as_deref(),
            Some(&["\\Seen".to_owned(), "\\Deleted".to_owned(), "work".to_owned()][..])
        );
        let bare = mailbox_state(&[owned(b"T1 OK done\r\n").unwrap()]);
        assert_eq!(bare.permanent_flags, None);
    }

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
}
