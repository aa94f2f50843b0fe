//! What a failed Graph request means for cutover: every HTTP answer that
//! is not a success, and every request that got no answer, becomes a
//! [`Failure`], whose error has the crate's
//! [`ErrorKind`](crate::error::ErrorKind) (retry, skip the
//! message, stop the user or the run) and a message that tells the admin
//! what to do. The rules are pure functions, so each one is unit-tested.
//!
//! Callers that must react to particular Graph answers (a folder that
//! already exists, a message deleted meanwhile, importMime refused) read
//! the status and Graph's error code kept beside the error.

use std::time::Duration;

use super::api::ErrorBody;
use crate::error::Error;

/// When a 429 comes without Retry-After (Graph always sends one).
pub const DEFAULT_THROTTLE: Duration = Duration::from_secs(10);

/// A failed request: the classified error plus what callers need to react
/// to specific Graph answers.
#[derive(Debug)]
pub struct Failure {
    pub status: Option<u16>,
    /// Graph's error code (`ErrorFolderExists`), empty when none.
    pub code: String,
    /// Graph's error message, empty when none.
    pub message: String,
    pub error: Error,
    /// The server may have acted on the request before it failed (a
    /// timeout, a reset, a 5xx): creating it again could duplicate it.
    pub maybe_applied: bool,
}

impl Failure {
    /// A failure that is only an error (no HTTP status to react to).
    pub fn plain(error: Error) -> Failure {
        Failure {
            status: None,
            code: String::new(),
            message: String::new(),
            error,
            maybe_applied: false,
        }
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        f.error
    }
}

/// A request that got no HTTP answer.
pub fn network_error(what: &str, e: &reqwest::Error, timeout: Duration) -> Failure {
    let (error, maybe_applied) = crate::http::transport_error(what, e, timeout);
    Failure {
        maybe_applied,
        ..Failure::plain(error)
    }
}

/// Error codes that mean the mailbox itself is missing or not reachable
/// through Graph.
pub fn mailbox_missing(code: &str) -> bool {
    matches!(
        code,
        "ErrorInvalidUser"
            | "MailboxNotEnabledForRESTAPI"
            | "MailboxNotFound"
            | "ErrorNonExistentMailbox"
            | "ResourceNotFound"
            | "Request_ResourceNotFound"
    )
}

/// What an HTTP error answer from Graph means for cutover, and what the
/// admin should do about it. Pure, so every rule is unit-tested.
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8], what: &str) -> Failure {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let code = parsed.error.code;
    let message = parsed.error.message;
    let detail = match (code.is_empty(), message.is_empty()) {
        (true, true) => format!("HTTP {status}"),
        (false, true) => format!("HTTP {status} {code}"),
        (true, false) => format!("HTTP {status}: {message}"),
        (false, false) => format!("HTTP {status} {code}: {message}"),
    };
    let (error, maybe_applied) = match status {
        429 => {
            let delay = retry_after.unwrap_or(DEFAULT_THROTTLE);
            (
                Error::throttled(
                    delay,
                    format!(
                        "{what}: Exchange Online throttled the app ({detail}); waiting {} s as asked",
                        delay.as_secs()
                    ),
                ),
                false,
            )
        }
        503 if retry_after.is_some() => {
            let delay = retry_after.unwrap_or(DEFAULT_THROTTLE);
            (
                Error::throttled(
                    delay,
                    format!(
                        "{what}: Graph is busy ({detail}); waiting {} s as asked",
                        delay.as_secs()
                    ),
                ),
                true,
            )
        }
        413 => (
            Error::refused(format!(
                "{what}: message too large for the mailbox ({detail}); raise the mailbox's limit (Set-Mailbox -MaxReceiveSize 150MB) and run again to copy it"
            )),
            false,
        ),
        _ if code == "ErrorMessageSizeExceeded" || code == "RequestEntityTooLarge" => (
            Error::refused(format!(
                "{what}: message too large for the mailbox ({detail}); raise the mailbox's limit (Set-Mailbox -MaxReceiveSize 150MB) and run again to copy it"
            )),
            false,
        ),
        _ if code.starts_with("ErrorQuotaExceeded") || status == 507 => (
            Error::fatal(format!(
                "{what}: the mailbox is full ({detail}); raise its quota or free space, then run again"
            )),
            false,
        ),
        401 => (
            Error::fatal(format!(
                "{what}: Graph refused the app's token even after renewing it ({detail}); check that the app has the application permission Mail.ReadWrite with admin consent, and that tenant_id is the mailbox's tenant"
            )),
            false,
        ),
        403 => (
            Error::fatal(format!(
                "{what}: access denied ({detail}); grant the app the application permission Mail.ReadWrite with admin consent, and if RBAC for Applications or an application access policy limits the app, include this mailbox"
            )),
            false,
        ),
        404 if code == "ErrorItemNotFound" => (Error::item(format!("{what}: not found ({detail})")), false),
        404 => (
            Error::fatal(format!(
                "{what}: mailbox not found ({detail}); check the EmailAddress column and that the user has an Exchange Online mailbox (licensed, not soft-deleted)"
            )),
            false,
        ),
        400 | 409 | 422 => (Error::item(format!("{what}: refused ({detail})")), false),
        500..=599 => (
            Error::transient(format!("{what}: Graph failed ({detail}); retrying")),
            true,
        ),
        _ => (Error::item(format!("{what}: unexpected answer ({detail})")), false),
    };
    Failure {
        status: Some(status),
        code,
        message,
        error,
        maybe_applied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn body(code: &str, message: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"error": {"code": code, "message": message}})).unwrap()
    }

    #[test]
    fn throttling_keeps_the_servers_delay() {
        let f = classify(
            429,
            Some(Duration::from_secs(37)),
            &body("ApplicationThrottled", "MailboxConcurrency"),
            "import message",
        );
        assert_eq!(f.error.kind, ErrorKind::Throttled(Duration::from_secs(37)));
        assert!(!f.maybe_applied, "a 429 was not acted on");
        let f = classify(503, Some(Duration::from_secs(5)), b"", "x");
        assert_eq!(f.error.kind, ErrorKind::Throttled(Duration::from_secs(5)));
        assert_eq!(
            classify(429, None, b"", "x").error.kind,
            ErrorKind::Throttled(DEFAULT_THROTTLE)
        );
    }

    #[test]
    fn server_faults_are_transient_and_possibly_applied() {
        for status in [500, 502, 503, 504] {
            let f = classify(status, None, b"<html>", "create message");
            assert_eq!(f.error.kind, ErrorKind::Transient, "{status}");
            assert!(f.maybe_applied, "{status}");
        }
    }

    #[test]
    fn bad_items_keep_their_reason() {
        let f = classify(
            400,
            None,
            &body(
                "ErrorMimeContentInvalidBase64String",
                "Invalid base64 string for MIME content.",
            ),
            "import message",
        );
        assert_eq!(f.error.kind, ErrorKind::Item);
        assert_eq!(f.code, "ErrorMimeContentInvalidBase64String");
        assert!(f.error.message.contains("Invalid base64 string"), "{}", f.error);
        assert!(!f.maybe_applied);
    }

    #[test]
    fn too_large_is_refused_with_advice() {
        let f = classify(413, None, b"", "import message");
        assert_eq!(f.error.kind, ErrorKind::Refused);
        assert!(f.error.message.contains("MaxReceiveSize"));
        assert_eq!(
            classify(400, None, &body("ErrorMessageSizeExceeded", "too big"), "x")
                .error
                .kind,
            ErrorKind::Refused
        );
    }

    #[test]
    fn access_and_missing_mailboxes_are_fatal() {
        let f = classify(
            403,
            None,
            &body("ErrorAccessDenied", "Access is denied."),
            "list folders",
        );
        assert_eq!(f.error.kind, ErrorKind::Fatal);
        assert!(f.error.message.contains("Mail.ReadWrite"));
        let f = classify(
            404,
            None,
            &body("ErrorInvalidUser", "The requested user 'x@y' is invalid."),
            "open mailbox",
        );
        assert_eq!(f.error.kind, ErrorKind::Fatal);
        assert!(f.error.message.contains("EmailAddress"));
        assert_eq!(classify(401, None, b"", "x").error.kind, ErrorKind::Fatal);
        assert_eq!(classify(507, None, b"", "x").error.kind, ErrorKind::Fatal);
        assert!(
            classify(403, None, &body("ErrorQuotaExceeded", "full"), "x")
                .error
                .message
                .contains("mailbox is full")
        );
    }

    #[test]
    fn a_missing_item_is_not_a_missing_mailbox() {
        let f = classify(
            404,
            None,
            &body("ErrorItemNotFound", "The specified object was not found in the store."),
            "x",
        );
        assert_eq!(f.error.kind, ErrorKind::Item);
        assert_eq!(f.code, "ErrorItemNotFound");
    }
}
