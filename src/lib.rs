//! cutover moves mailboxes from IMAP servers into Exchange Online (Microsoft
//! Graph) or any IMAP or Maildir target, and reruns as an incremental resync
//! until the MX record is switched.
//!
//! Data flows one way: users CSV ([`roster`]) → scan ([`source`]) →
//! [`scope`] (with [`labels`] and [`plan`]) → fetch ([`source`]) →
//! [`transform`] → upload ([`target`]) → [`checkpoint`]. [`build`] turns
//! the [`settings`] into built values once; [`run`] wires the migration.
//!
//! Around the migration, operator commands build the same way and decide
//! scope the same way: [`check`] before (can every user log in, how much is
//! there, how long will it take), [`verify`] after (does the target hold
//! everything in scope), [`bench`] to size the source, [`report`] for
//! the record (per-user statistics, every skipped or failed message,
//! CSV/JSON/HTML), and [`serve`] to watch it live in a browser (a
//! read-only dashboard over the state DB). ARCHITECTURE.md has the map.

pub mod bench;
pub mod build;
pub mod check;
pub mod checkpoint;
pub mod cli;
pub mod dav;
pub mod error;
pub mod event;
pub mod headers;
pub mod http;
pub mod imap;
pub mod init;
pub mod labels;
pub mod manpage;
pub mod model;
pub mod oauth;
pub mod pace;
pub mod plan;
pub mod progress;
pub mod report;
pub mod roster;
pub mod run;
pub mod scope;
pub mod secret;
pub mod serve;
pub mod settings;
pub mod shard;
pub mod source;
pub mod status;
pub mod table;
pub mod target;
pub mod transform;
pub mod utf7;
pub mod verify;
pub mod wait;
