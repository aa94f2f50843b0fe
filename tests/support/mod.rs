//! Shared test support for cutover's integration tests, examples and benchmarks.
//!
//! Every `tests/*.rs` file that needs a server declares `mod support;`; examples
//! include the same code with `#[path = "../tests/support/mod.rs"] mod support;`.
//! Each user of this module needs only a subset of it, hence the crate-wide
//! `dead_code` allowance below.
//!
//! - [`dovecot`]: starts real, isolated Dovecot instances (no mock servers: the
//!   point is to migrate against the IMAP semantics a production server has).
//! - [`mailgen`]: deterministic message generator and the odd-MIME corpus.
//! - [`imap`]: a tiny blocking IMAP client for raw protocol checks in tests.
//! - [`emulator`]: finds (or builds) the Graph emulator and starts it for a test.
//! - [`hostile`]: generated hostile mail (NUL bytes, 100-deep MIME, ...).
//! - [`hostile_server`]: a relay in front of Dovecot that misbehaves on cue.
//! - [`listener`]: the accept loop both relays share.
//! - [`relay`]: a relay that counts the bytes on the wire and can make the
//!   server refuse COMPRESS.
#![allow(dead_code, unused_imports)]

pub mod dovecot;
pub mod emulator;
pub mod hostile;
pub mod hostile_server;
pub mod imap;
pub mod listener;
pub mod mailgen;
pub mod relay;

pub use dovecot::{Dovecot, DovecotOptions, FolderStatus, SessionStats, StoredMessage};
pub use mailgen::{GenMessage, big_message, generate, message_id, odd_corpus};
