//! The IMAP plumbing both sides share: connecting with verified TLS,
//! STARTTLS or loopback-only plaintext, logging in, running tagged commands
//! with a timeout on every read and write, and classifying what the server
//! answered. `source::imap` reads through it and `target::imap` writes
//! through it; neither knows the other.
//!
//! The parts, from the socket up:
//! - `endpoint`: where a server is and how to reach it (security,
//!   compression, loopback and private-network checks), and opening the
//!   connection up to the greeting.
//! - `tls`: the rustls configuration and trust anchors.
//! - `guard`: the byte stream and the guard that bounds what a server may
//!   send; `deflate` compresses it once COMPRESS=DEFLATE is on.
//! - `conn`: the logged-in connection and its commands, with `append`
//!   (the write path), `status` (STATUS=SIZE, read beside the parser) and
//!   `namespace` (NAMESPACE, read the same way, and the mapping of folder
//!   names to paths relative to the personal namespace).
//! - `classify`: failures and NO/BAD/BYE answers as the crate's error
//!   classes.
//! - `wire`: IMAP syntax helpers (quoting, INTERNALDATE, APPENDUID).
//!
//! Callers use the re-exports below; folder-name encoding is
//! [`crate::utf7`], which needs no connection.

mod append;
mod classify;
mod conn;
mod deflate;
mod endpoint;
mod guard;
mod namespace;
mod status;
mod tls;
mod wire;

pub use append::AppendResult;
pub use classify::{classify_status, says_nonexistent};
pub use conn::{Conn, ListedFolder, MailboxState};
pub use endpoint::{Compression, Endpoint, Security, is_loopback_host};
pub use guard::{Guarded, MAX_LINE_BYTES, MAX_LITERAL_BYTES, MAX_RESPONSE_BYTES, MAX_UNTAGGED_BYTES, Stream};
pub use namespace::{Learnt, Namespace, Namespaces, Personal};
pub use tls::tls_config;
pub use wire::{format_internal_date, parse_internal_date, quote};
