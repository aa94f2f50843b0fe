//! cutover moves mailboxes from IMAP servers into Exchange Online (Microsoft
//! Graph) or any IMAP or Maildir target, and reruns as an incremental resync
//! until the MX record is switched.
//!
//! Data flows one way: users CSV ([`roster`]) → scan ([`source`]) →
//! [`plan`] → fetch ([`source`]) → [`transform`] → upload ([`target`]) →
//! [`checkpoint`]. [`run`] is the one place that wires them.

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod error;
pub mod event;
pub mod imap;
pub mod model;
pub mod pace;
pub mod plan;
pub mod progress;
pub mod roster;
pub mod run;
pub mod secret;
pub mod settings;
pub mod source;
pub mod status;
pub mod target;
pub mod transform;
