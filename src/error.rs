//! One error type for the pipeline, classified by the protocol module that
//! saw it. The class tells `pace` and `run` what to do next: retry the
//! operation, wait as the server asked, give up on this one message, or give
//! up on the whole mailbox.

use std::fmt;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A passing fault (connection reset, timeout, 5xx): try again.
    Transient,
    /// The server asked to slow down; wait at least this long.
    Throttled(Duration),
    /// This message cannot be copied; the rest of the mailbox goes on.
    Item,
    /// The target will never take this message (over its size limit, a
    /// reserved folder name): skipped with this reason, not retried.
    Refused,
    /// This mailbox cannot go on (wrong password, missing mailbox).
    Fatal,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn transient(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Transient,
            message: message.into(),
        }
    }

    pub fn throttled(delay: Duration, message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Throttled(delay),
            message: message.into(),
        }
    }

    pub fn item(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Item,
            message: message.into(),
        }
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Refused,
            message: message.into(),
        }
    }

    pub fn fatal(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Fatal,
            message: message.into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Transient | ErrorKind::Throttled(_))
    }

    /// Prefixes the message with where it happened, keeping the class.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}
