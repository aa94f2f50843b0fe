//! Turning what went wrong into the crate's error classes: a timeout, a
//! failed read or write, a failed connect, a refused login, a tagged NO or
//! BAD and an untagged BYE each become an [`Error`] whose
//! [`ErrorKind`](crate::error::ErrorKind) tells the caller what to do
//! (retry now, back off, skip the item, stop). It also decides how much of
//! a server's words goes into a message: enough to tell the admin what
//! happened, never a whole answer or the raw bytes of someone's mail.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_imap::imap_proto::Status;

use crate::error::{Error, Result};

pub(super) async fn timed<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| Error::transient(format!("{what}: no complete answer within {}s", limit.as_secs())))
}

/// The least average rate a long answer must keep up once its first
/// `limit` has passed: 16 KiB/s, about 130 kbit/s.
pub(super) const MIN_ANSWER_BYTES_PER_SECOND: u64 = 16 * 1024;

/// Like [`timed`], for answers that may be large (a FETCH bringing a
/// 150 MB message over a slow link): it fails when no literal byte arrived
/// for `limit`, or when the literal bytes fall behind [`AnswerRate`]. An
/// answer whose message keeps coming at a usable rate gets the time its
/// size needs; a server that stalls, trickles or sends an endless line is
/// still dropped. `received` counts the literal bytes read from the
/// connection.
pub(super) async fn timed_while_receiving<T>(
    limit: Duration,
    what: &str,
    received: &AtomicU64,
    fut: impl Future<Output = T>,
) -> Result<T> {
    let rate = AnswerRate::start(limit, received);
    let mut last = received.load(Ordering::Relaxed);
    let mut last_progress = tokio::time::Instant::now();
    let mut fut = std::pin::pin!(fut);
    // Checked every `step`: often enough that a stall is caught about
    // `limit` after the last byte.
    let step = (limit / 4).max(Duration::from_millis(50));
    loop {
        if let Ok(out) = tokio::time::timeout(step, &mut fut).await {
            return Ok(out);
        }
        let now_received = received.load(Ordering::Relaxed);
        if now_received != last {
            last = now_received;
            last_progress = tokio::time::Instant::now();
        }
        if last_progress.elapsed() >= limit {
            return Err(Error::transient(format!(
                "{what}: no complete answer within {}s",
                limit.as_secs()
            )));
        }
        rate.check(what, received)?;
    }
}

/// The least rate an answer, or the answers of a whole command, must keep:
/// once the first `limit` has passed, the bytes received since the start
/// must come at [`MIN_ANSWER_BYTES_PER_SECOND`] on average. A server that
/// trickles, a byte at a time or small answers each in time, cannot hold a
/// command open for ever.
pub(super) struct AnswerRate {
    started: tokio::time::Instant,
    first: u64,
    limit: Duration,
}

impl AnswerRate {
    pub(super) fn start(limit: Duration, received: &AtomicU64) -> AnswerRate {
        AnswerRate {
            started: tokio::time::Instant::now(),
            first: received.load(Ordering::Relaxed),
            limit,
        }
    }

    /// Fails once the bytes received have fallen behind the least rate.
    pub(super) fn check(&self, what: &str, received: &AtomicU64) -> Result<()> {
        let elapsed = self.started.elapsed();
        let Some(past) = elapsed.checked_sub(self.limit) else {
            return Ok(());
        };
        let needed = (past.as_secs_f64() * MIN_ANSWER_BYTES_PER_SECOND as f64) as u64;
        if received.load(Ordering::Relaxed) - self.first < needed {
            return Err(Error::transient(format!(
                "{what}: the answer came at under {} KiB/s for {}s; dropping the connection (raise timeout_seconds for a link this slow)",
                MIN_ANSWER_BYTES_PER_SECOND / 1024,
                elapsed.as_secs()
            )));
        }
        Ok(())
    }
}

pub(super) fn io_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::transient(format!("{what}: {}", describe_io_error(&e.to_string())))
}

/// The library's words for a failed read, kept short: a parse failure is
/// reported with the raw bytes it choked on (up to megabytes of someone's
/// mail), which belong in no log or report.
fn describe_io_error(text: &str) -> String {
    if text.contains("during parsing") || text.contains("Unable to parse") {
        return "the server sent a response that is not valid IMAP; dropping the connection".into();
    }
    match shortened(text) {
        Some(head) => format!("{head}..."),
        None => text.to_owned(),
    }
}

/// How many bytes of a server's (or the library's) words a message keeps.
const EXCERPT_MAX: usize = 300;

/// The first [`EXCERPT_MAX`] bytes of `text`, cut at a character boundary;
/// `None` when `text` is short enough to keep whole.
fn shortened(text: &str) -> Option<&str> {
    (text.len() > EXCERPT_MAX).then(|| &text[..text.floor_char_boundary(EXCERPT_MAX)])
}

/// The server's own words from a refused login (or other command), without the library's
/// debug framing ("code: None, info: Some(\"...\")").
pub(super) fn describe_login_error(e: &async_imap::error::Error) -> String {
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

/// What of a server's words goes into an error: enough to tell the admin
/// what happened, never a whole (possibly huge, possibly private) answer.
pub(super) fn excerpt(text: &str) -> String {
    match shortened(text) {
        Some(head) => format!("{head}… ({} bytes in all)", text.len()),
        None => text.to_owned(),
    }
}

/// The text of a tagged answer with the response code the parser took out
/// of it put back where callers look for it: `[TRYCREATE]` (the folder is
/// gone), `[ALERT]`, `[PARSE]`, `[READ-ONLY]`. Codes the parser does not
/// know stay in the text anyway.
/// Whether a NO answer says the folder does not exist (`[NONEXISTENT]`,
/// RFC 5530, or the words servers without response codes use).
pub fn says_nonexistent(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("[nonexistent]") || m.contains("does not exist") || m.contains("doesn't exist")
}

pub fn answer_text(code: Option<&async_imap::imap_proto::ResponseCode<'_>>, information: Option<&str>) -> String {
    use async_imap::imap_proto::ResponseCode;
    let info = information.unwrap_or("");
    let known = match code {
        Some(ResponseCode::TryCreate) => "[TRYCREATE] ",
        Some(ResponseCode::Alert) => "[ALERT] ",
        Some(ResponseCode::Parse) => "[PARSE] ",
        Some(ResponseCode::ReadOnly) => "[READ-ONLY] ",
        _ => "",
    };
    format!("{known}{info}")
}

/// Classifies a tagged NO/BAD. Throttling answers (RFC 5530 codes,
/// Exchange's "Request is throttled. Suggested Backoff Time: N
/// milliseconds") become [`ErrorKind::Throttled`](crate::error::ErrorKind);
/// `[UNAVAILABLE]`/`[SERVERBUG]` are transient; anything else about one
/// command is the caller's to judge, reported as an item error.
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
    // An APPEND over a limit is about that one message (Dovecot: "[LIMIT]
    // Mail size is larger than ..."), not the server asking to slow down:
    // the target decides what it means.
    if verb == "APPEND" && (upper.contains("[LIMIT]") || upper.contains("[TOOBIG]")) {
        return Error::item(message);
    }
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
pub(super) fn classify_connect_error(where_: &str, e: &std::io::Error) -> Error {
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
pub(super) fn login_pushback(e: &async_imap::error::Error, detail: &str) -> Option<Error> {
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

pub(super) fn classify_bye(verb: &str, info: &str) -> Error {
    let message = format!("{verb}: the server said BYE {info}");
    if let Some(delay) = suggested_backoff(info) {
        return Error::throttled(delay, message);
    }
    let lower = info.to_ascii_lowercase();
    // Cyrus ends the session after refusing a message over its size limit
    // ("BYE [TOOBIG] Message size exceeds fixed limit"): the connection is
    // gone, but no server is asking to slow down.
    if lower.contains("[toobig]") {
        return Error::transient(message);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A response that arrives in `chunks` pieces of `bytes` each, one every
    /// `every`, then completes.
    async fn answer(received: &AtomicU64, chunks: u32, bytes: u64, every: Duration) {
        for _ in 0..chunks {
            tokio::time::sleep(every).await;
            received.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_answer_that_keeps_coming_gets_the_time_its_size_needs() {
        let received = AtomicU64::new(0);
        // 150 MB at 1 MB/s: 150 s against a 60 s limit.
        let out = timed_while_receiving(
            Duration::from_secs(60),
            "FETCH",
            &received,
            answer(&received, 150, 1_000_000, Duration::from_secs(1)),
        )
        .await;
        assert!(out.is_ok(), "{out:?}");
        // The fixed deadline gives up on the same answer.
        let received = AtomicU64::new(0);
        assert!(
            timed(
                Duration::from_secs(60),
                "FETCH",
                answer(&received, 150, 1_000_000, Duration::from_secs(1))
            )
            .await
            .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_whose_answers_trickle_in_is_dropped() {
        let limit = Duration::from_secs(60);
        let received = AtomicU64::new(0);
        let rate = AnswerRate::start(limit, &received);
        // A small answer every 50 s: each in time, the whole far too slow.
        let mut failed_after = None;
        for answer in 1..100u64 {
            tokio::time::sleep(Duration::from_secs(50)).await;
            received.fetch_add(40, Ordering::Relaxed);
            if rate.check("LIST", &received).is_err() {
                failed_after = Some(answer);
                break;
            }
        }
        assert_eq!(
            failed_after,
            Some(2),
            "dropped at the first answer past the first minute"
        );
        // Plenty of answers at a good rate pass, however long they take.
        let received = AtomicU64::new(0);
        let rate = AnswerRate::start(limit, &received);
        for _ in 0..600 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            received.fetch_add(100_000, Ordering::Relaxed);
            rate.check("UID SEARCH", &received).unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_or_trickling_server_is_still_dropped() {
        let limit = Duration::from_secs(60);
        let received = AtomicU64::new(0);
        let started = tokio::time::Instant::now();
        let silent = timed_while_receiving(limit, "FETCH", &received, std::future::pending::<()>()).await;
        let e = silent.unwrap_err();
        assert!(e.message.contains("no complete answer within 60s"), "{}", e.message);
        assert!(started.elapsed() <= limit + limit / 4, "{:?}", started.elapsed());

        // One byte a second, forever: under the least rate once the first
        // minute has passed.
        let received = AtomicU64::new(0);
        let started = tokio::time::Instant::now();
        let trickle = timed_while_receiving(
            limit,
            "FETCH",
            &received,
            answer(&received, u32::MAX, 1, Duration::from_secs(1)),
        )
        .await;
        let e = trickle.unwrap_err();
        assert!(e.message.contains("KiB/s"), "{}", e.message);
        assert!(started.elapsed() <= limit * 2, "{:?}", started.elapsed());
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
        // A message over the server's size limit is that message's problem.
        let e = classify_status("APPEND", &Status::No, "[LIMIT] Mail size is larger than 1000 bytes");
        assert_eq!(e.kind, crate::error::ErrorKind::Item);
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
        // Cyrus, after refusing a message over its size limit: no push-back.
        assert_eq!(
            classify_bye("APPEND", "[TOOBIG] Message size exceeds fixed limit").kind,
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
    fn a_long_server_answer_is_cut_in_errors() {
        let info = "é".repeat(10_000);
        let e = classify_status("APPEND", &Status::No, &info);
        assert!(e.message.len() < 400, "{}", e.message.len());
        assert!(e.message.ends_with("(20000 bytes in all)"), "{}", e.message);
        let short = classify_status("APPEND", &Status::No, "[OVERQUOTA] mailbox full");
        assert_eq!(short.message, "APPEND answered NO [OVERQUOTA] mailbox full");
    }

    #[test]
    fn response_codes_the_parser_takes_out_are_put_back() {
        use async_imap::imap_proto::ResponseCode;
        assert_eq!(
            answer_text(Some(&ResponseCode::TryCreate), Some("Mailbox doesn't exist: Gone")),
            "[TRYCREATE] Mailbox doesn't exist: Gone"
        );
        assert_eq!(answer_text(None, Some("[LIMIT] too big")), "[LIMIT] too big");
        assert_eq!(answer_text(Some(&ResponseCode::UidNext(4)), None), "");
    }
}
