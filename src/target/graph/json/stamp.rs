//! cutover's stamp: named extended properties every copy carries besides
//! its content, saying which source message it is. The write paths set it
//! (json in the create request, importMime in the PATCH that follows the
//! import), the lookup after a lost answer filters on it, and `cutover
//! verify` reads the source's size and Message-ID from it.

use super::super::api::ExtendedProperty;

// cutover's named MAPI properties live in a property set (GUID) of its
// own, so they never collide with another application's.

/// `String {set} Name cutoverKey`: cutover's key for the source message
/// ([`Stamp::key`]). Lets an interrupted run find a message it already
/// wrote even when the message has no Message-ID.
pub const KEY_PROPERTY: &str = "String {8c1f5e3a-6b2d-4f7e-9a41-2d6c0b7e5f13} Name cutoverKey";
/// `Integer {set} Name cutoverSourceSize`: the message's size at the
/// source, so `cutover verify` can compare sizes (Exchange's own
/// PR_MESSAGE_SIZE differs from the MIME size).
pub const SIZE_PROPERTY: &str = "Integer {8c1f5e3a-6b2d-4f7e-9a41-2d6c0b7e5f13} Name cutoverSourceSize";
/// `String {set} Name cutoverMessageId`: the Message-ID as the source scan
/// read it, absent when the source message has none. Exchange makes one up
/// for a message without, and may pick another of several Message-ID
/// headers; `cutover verify` must compare what the source says.
pub const MESSAGE_ID_PROPERTY: &str = "String {8c1f5e3a-6b2d-4f7e-9a41-2d6c0b7e5f13} Name cutoverMessageId";

/// What cutover writes on every message besides its content: where it
/// came from, as named extended properties. Both write modes carry it
/// (json in the create request, importMime in the PATCH that follows the
/// import), and the MIME itself is never touched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// A digest of the source message's identity (mailbox, folder,
    /// UIDVALIDITY, UID): stable across runs, 32 hex digits.
    pub key: String,
    /// RFC822.SIZE at the source.
    pub source_size: u64,
    /// The Message-ID as the source scan read it.
    pub message_id: Option<String>,
}

impl Stamp {
    /// The stamp for the source message `key` (see [`crate::model::Upload::key`]).
    pub fn new(key: &str, source_size: u64, message_id: Option<&str>) -> Stamp {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(key.as_bytes());
        Stamp {
            key: digest[..16].iter().map(|b| format!("{b:02x}")).collect(),
            source_size,
            message_id: message_id.map(str::trim).filter(|m| !m.is_empty()).map(str::to_owned),
        }
    }

    /// The key a copy carries while it is still being made (json mode:
    /// created, attachments still to add). A lookup that finds it knows
    /// the copy is cutover's own and unfinished.
    pub fn pending(key: &str) -> String {
        format!("{key}-pending")
    }

    pub(in crate::target::graph) fn properties(&self) -> Vec<ExtendedProperty> {
        let mut props = vec![
            ExtendedProperty {
                id: KEY_PROPERTY,
                value: self.key.clone(),
            },
            ExtendedProperty {
                id: SIZE_PROPERTY,
                // A MAPI Integer is 32-bit; Exchange takes nothing that large anyway.
                value: self.source_size.min(i32::MAX as u64).to_string(),
            },
        ];
        if let Some(id) = &self.message_id {
            props.push(ExtendedProperty {
                id: MESSAGE_ID_PROPERTY,
                value: id.clone(),
            });
        }
        props
    }
}
