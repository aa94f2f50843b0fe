//! Reading the source mailbox. Strictly read-only: folders are opened with
//! EXAMINE and bodies fetched with BODY.PEEK[], so a migration never changes
//! a flag or a message on the source.

pub mod imap;

pub use self::imap::{ImapSource, SourceSession};
