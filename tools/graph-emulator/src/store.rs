//! In-memory mailboxes: folders, messages and attachments.
//!
//! The store only holds state and enforces structural rules (ids, folder
//! tree, duplicate names). What Graph does with a request body lives in the
//! handlers; the store never sees JSON from a client. Raw MIME and attachment
//! bytes are `Bytes`, so listing, dumping and `$value` share one copy.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// Kinds of object id; the kind byte is encoded in the id so a message id
/// used where a folder id is expected is recognised as such.
pub const KIND_FOLDER: u8 = b'F';
pub const KIND_MESSAGE: u8 = b'M';
pub const KIND_ATTACHMENT: u8 = b'A';

/// Encodes an object id. Real Exchange ids are opaque base64 strings that
/// start with `AAMk`; ours have the same look and carry the mailbox serial so
/// an id from another mailbox is a clean 404.
pub fn make_id(kind: u8, mailbox: u32, serial: u64, rng: &mut fastrand::Rng) -> String {
    let mut b = [0u8; 24];
    b[0] = kind;
    b[1..5].copy_from_slice(&mailbox.to_be_bytes());
    b[5..13].copy_from_slice(&serial.to_be_bytes());
    rng.fill(&mut b[13..]);
    format!("AAMk{}", URL_SAFE_NO_PAD.encode(b))
}

/// Decodes an id made by [`make_id`]: (kind, mailbox serial).
pub fn parse_id(id: &str) -> Option<(u8, u32)> {
    let raw = URL_SAFE_NO_PAD.decode(id.strip_prefix("AAMk")?).ok()?;
    if raw.len() != 24 {
        return None;
    }
    Some((raw[0], u32::from_be_bytes(raw[1..5].try_into().ok()?)))
}

/// Well-known folder names (learn.microsoft.com/graph/api/resources/mailfolder),
/// with the display name and parent each gets in a new mailbox. `None` means
/// the name is valid but such a folder does not exist in a fresh Exchange
/// Online mailbox, so it answers 404.
pub const WELL_KNOWN: &[(&str, Option<(&str, Parent)>)] = &[
    ("msgfolderroot", Some(("Top of Information Store", Parent::Top))),
    ("inbox", Some(("Inbox", Parent::Root))),
    ("sentitems", Some(("Sent Items", Parent::Root))),
    ("drafts", Some(("Drafts", Parent::Root))),
    ("deleteditems", Some(("Deleted Items", Parent::Root))),
    ("junkemail", Some(("Junk Email", Parent::Root))),
    ("archive", Some(("Archive", Parent::Root))),
    ("outbox", Some(("Outbox", Parent::Root))),
    ("conversationhistory", Some(("Conversation History", Parent::Root))),
    // Outlook creates Sync Issues and its three children in every mailbox.
    ("syncissues", Some(("Sync Issues", Parent::Root))),
    ("conflicts", Some(("Conflicts", Parent::SyncIssues))),
    ("localfailures", Some(("Local Failures", Parent::SyncIssues))),
    ("serverfailures", Some(("Server Failures", Parent::SyncIssues))),
    // Lives outside the IPM subtree: addressable, never listed under the root.
    ("recoverableitemsdeletions", Some(("Deletions", Parent::Top))),
    ("clutter", None),
    ("scheduled", None),
    ("searchfolders", None),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent {
    Top,
    Root,
    SyncIssues,
}

/// An email address as Graph's `recipient` type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub name: Option<String>,
    pub address: String,
}

/// How a message came into the store (reported by the inspection API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreatedVia {
    MimeDraft,
    ImportMime,
    Json,
}

impl CreatedVia {
    pub fn as_str(self) -> &'static str {
        match self {
            CreatedVia::MimeDraft => "mime-draft",
            CreatedVia::ImportMime => "import-mime",
            CreatedVia::Json => "json",
        }
    }
}

/// Content of an attachment.
#[derive(Debug, Clone)]
pub enum AttachmentContent {
    File {
        content_type: String,
        content_id: Option<String>,
        bytes: Bytes,
    },
    /// An attached Outlook item; `item` is the JSON given by the client (or
    /// derived from an attached message/rfc822 part), `raw` its MIME if known.
    Item { item: Value, raw: Option<Bytes> },
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub id: String,
    pub name: String,
    pub is_inline: bool,
    pub last_modified: DateTime<Utc>,
    pub content: AttachmentContent,
    /// "json" (with the create request), "post", "upload-session" or "mime".
    pub created_via: &'static str,
}

impl Attachment {
    pub fn size(&self) -> u64 {
        match &self.content {
            AttachmentContent::File { bytes, .. } => bytes.len() as u64,
            AttachmentContent::Item { item, raw } => match raw {
                Some(r) => r.len() as u64,
                None => serde_json::to_vec(item).map(|v| v.len()).unwrap_or(0) as u64,
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub folder_id: String,
    pub created_via: CreatedVia,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub change: u64,
    pub received: DateTime<Utc>,
    pub sent: Option<DateTime<Utc>>,
    pub is_draft: bool,
    pub is_read: bool,
    pub subject: String,
    /// "text" or "html".
    pub body_type: String,
    pub body: String,
    pub from: Option<Recipient>,
    pub sender: Option<Recipient>,
    pub to: Vec<Recipient>,
    pub cc: Vec<Recipient>,
    pub bcc: Vec<Recipient>,
    pub reply_to: Vec<Recipient>,
    /// "low", "normal" or "high".
    pub importance: String,
    pub inference: String,
    pub categories: Vec<String>,
    /// followupFlag object; always has `flagStatus`.
    pub flag: serde_json::Map<String, Value>,
    pub internet_message_id: String,
    pub headers: Vec<(String, String)>,
    /// Single-value extended properties, id normalised ("Integer 0xe07").
    pub ext_props: Vec<(String, String)>,
    pub multi_ext_props: Vec<Value>,
    pub delivery_receipt: bool,
    pub read_receipt: bool,
    pub conversation_id: String,
    /// Original MIME bytes for MIME-created items.
    pub mime: Option<Bytes>,
    pub attachments: Vec<Attachment>,
}

impl Message {
    /// Approximate item size used against MaxReceiveSize: the MIME when the
    /// item came from MIME, otherwise body, headers and attachments.
    pub fn size(&self) -> u64 {
        let base = match &self.mime {
            Some(m) => m.len() as u64,
            None => {
                (self.body.len()
                    + self.subject.len()
                    + self.headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>()) as u64
            }
        };
        // MIME-created items already contain their MIME attachments; only
        // attachments added afterwards add to the size.
        let extra: u64 = self
            .attachments
            .iter()
            .filter(|a| self.mime.is_none() || a.created_via != "mime")
            .map(Attachment::size)
            .sum();
        base + extra
    }

    pub fn ext_prop(&self, id: &str) -> Option<&str> {
        self.ext_props.iter().find(|(k, _)| k == id).map(|(_, v)| v.as_str())
    }

    pub fn touch(&mut self) {
        self.change += 1;
        self.last_modified = Utc::now();
    }

    pub fn change_key(&self) -> String {
        let mut raw = self.id.as_bytes()[4..12].to_vec();
        raw.extend_from_slice(&self.change.to_be_bytes());
        base64::engine::general_purpose::STANDARD.encode(raw)
    }
}

#[derive(Debug, Clone)]
pub struct Folder {
    pub id: String,
    pub parent_id: String,
    pub display_name: String,
    pub well_known: Option<&'static str>,
    pub is_hidden: bool,
    pub children: Vec<String>,
    pub messages: Vec<String>,
}

#[derive(Debug)]
pub struct Mailbox {
    pub serial: u32,
    pub id: String,
    pub address: String,
    pub max_receive_size: u64,
    /// Parent of msgfolderroot; never addressable, never listed.
    pub top_id: String,
    pub root_id: String,
    pub folders: HashMap<String, Folder>,
    pub well_known: HashMap<&'static str, String>,
    pub messages: HashMap<String, Message>,
    /// Message ids by internetMessageId (for `$filter=internetMessageId eq`).
    pub by_imid: HashMap<String, Vec<String>>,
    next_serial: u64,
    pub created: DateTime<Utc>,
    /// Contacts and calendars.
    pub pim: crate::pim::PimStore,
    /// Outlook's master category list (`/outlook/masterCategories`).
    pub categories: Vec<crate::categories::Category>,
}

/// Why a folder or object lookup failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Not an id this service could have issued (400 ErrorInvalidIdMalformed).
    Malformed,
    /// A valid id or well-known name with no object behind it (404 ErrorItemNotFound).
    NotFound,
}

impl Mailbox {
    fn new(serial: u32, address: &str, max_receive_size: u64, rng: &mut fastrand::Rng) -> Mailbox {
        let mut mb = Mailbox {
            serial,
            id: crate::http::guid(rng),
            address: address.to_string(),
            max_receive_size,
            top_id: String::new(),
            root_id: String::new(),
            folders: HashMap::new(),
            well_known: HashMap::new(),
            messages: HashMap::new(),
            by_imid: HashMap::new(),
            next_serial: 1,
            created: Utc::now(),
            pim: crate::pim::PimStore::default(),
            categories: crate::categories::defaults(serial),
        };
        mb.top_id = mb.new_id(KIND_FOLDER, rng);
        let top = mb.top_id.clone();
        let mut sync_issues = String::new();
        for (name, spec) in WELL_KNOWN {
            let Some((display, parent)) = spec else {
                continue;
            };
            let parent_id = match parent {
                Parent::Top => top.clone(),
                Parent::Root => mb.root_id.clone(),
                Parent::SyncIssues => sync_issues.clone(),
            };
            let id = mb.add_folder(&parent_id, display, false, Some(name), rng);
            match *name {
                "msgfolderroot" => mb.root_id = id.clone(),
                "syncissues" => sync_issues = id.clone(),
                _ => {}
            }
            mb.well_known.insert(name, id);
        }
        // The default Contacts folder and Calendar get ids from serials at
        // the top of the range and a generator of their own, so adding them
        // left every other id a seeded run issues as it was.
        let mut own = fastrand::Rng::with_seed(u64::from(serial));
        let contacts = make_id(crate::pim::KIND_CONTACT_FOLDER, serial, u64::MAX - 1, &mut own);
        let calendar = make_id(crate::pim::KIND_CALENDAR, serial, u64::MAX, &mut own);
        mb.pim = crate::pim::PimStore::new(&mb.root_id, contacts, calendar);
        mb
    }

    pub fn new_id(&mut self, kind: u8, rng: &mut fastrand::Rng) -> String {
        let serial = self.next_serial;
        self.next_serial += 1;
        make_id(kind, self.serial, serial, rng)
    }

    fn add_folder(
        &mut self,
        parent_id: &str,
        display_name: &str,
        is_hidden: bool,
        well_known: Option<&'static str>,
        rng: &mut fastrand::Rng,
    ) -> String {
        let id = self.new_id(KIND_FOLDER, rng);
        self.folders.insert(
            id.clone(),
            Folder {
                id: id.clone(),
                parent_id: parent_id.to_string(),
                display_name: display_name.to_string(),
                well_known,
                is_hidden,
                children: Vec::new(),
                messages: Vec::new(),
            },
        );
        if let Some(p) = self.folders.get_mut(parent_id) {
            p.children.push(id.clone());
        }
        id
    }

    /// Resolves a folder id or well-known name.
    pub fn resolve_folder(&self, key: &str) -> Result<String, Lookup> {
        let lower = key.to_ascii_lowercase();
        if let Some((name, _)) = WELL_KNOWN.iter().find(|(n, _)| *n == lower) {
            return self.well_known.get(name).cloned().ok_or(Lookup::NotFound);
        }
        self.resolve_object(key, KIND_FOLDER)?;
        if key == self.top_id {
            return Err(Lookup::NotFound);
        }
        if self.folders.contains_key(key) {
            Ok(key.to_string())
        } else {
            Err(Lookup::NotFound)
        }
    }

    /// Checks that `key` is an id of `kind` issued for this mailbox.
    pub fn resolve_object(&self, key: &str, kind: u8) -> Result<(), Lookup> {
        match parse_id(key) {
            None => Err(Lookup::Malformed),
            Some((k, mbx)) if k == kind && mbx == self.serial => Ok(()),
            Some(_) => Err(Lookup::NotFound),
        }
    }

    /// Creates a folder; `Err(())` when a sibling already has the name
    /// (compared case-insensitively, as Exchange does).
    pub fn create_folder(
        &mut self,
        parent_id: &str,
        display_name: &str,
        is_hidden: bool,
        rng: &mut fastrand::Rng,
    ) -> Result<String, ()> {
        let exists = self.folders[parent_id].children.iter().any(|c| {
            self.folders[c]
                .display_name
                .to_lowercase()
                .eq(&display_name.to_lowercase())
        });
        if exists {
            return Err(());
        }
        Ok(self.add_folder(parent_id, display_name, is_hidden, None, rng))
    }

    /// Whether a sibling under `parent_id` other than `except` has the name
    /// (compared case-insensitively, as Exchange does).
    pub fn name_taken(&self, parent_id: &str, display_name: &str, except: &str) -> bool {
        let wanted = display_name.to_lowercase();
        self.folders[parent_id]
            .children
            .iter()
            .any(|c| c != except && self.folders[c].display_name.to_lowercase() == wanted)
    }

    /// Whether folder `id` is `ancestor` or below it.
    pub fn is_within(&self, id: &str, ancestor: &str) -> bool {
        let mut cur = id;
        loop {
            if cur == ancestor {
                return true;
            }
            match self.folders.get(cur) {
                Some(f) if f.parent_id != cur && !f.parent_id.is_empty() => cur = &f.parent_id,
                _ => return false,
            }
        }
    }

    /// Moves a folder (with what it holds and its subfolders) below
    /// `parent_id`. Folder ids stay as they are. The caller checked the
    /// rules (not a well-known folder, not into itself, no name clash).
    pub fn move_folder(&mut self, id: &str, parent_id: &str) {
        let old_parent = self.folders[id].parent_id.clone();
        if old_parent == parent_id {
            return;
        }
        if let Some(p) = self.folders.get_mut(&old_parent) {
            p.children.retain(|c| c != id);
        }
        if let Some(p) = self.folders.get_mut(parent_id) {
            p.children.push(id.to_string());
        }
        if let Some(f) = self.folders.get_mut(id) {
            f.parent_id = parent_id.to_string();
        }
    }

    /// Moves a message to folder `folder_id` the way Exchange does: a new
    /// item in the destination, the original removed, so the message gets
    /// a new id (and change key); the old id names nothing any more.
    /// Returns the new id.
    pub fn move_message(&mut self, id: &str, folder_id: &str, rng: &mut fastrand::Rng) -> Option<String> {
        let mut m = self.remove_message(id)?;
        m.id = self.new_id(KIND_MESSAGE, rng);
        m.folder_id = folder_id.to_string();
        m.touch();
        let new_id = m.id.clone();
        self.insert_message(m);
        Some(new_id)
    }

    /// Display names from the root down to the folder (the root itself is `[]`).
    pub fn folder_path(&self, id: &str) -> Vec<String> {
        let mut path = Vec::new();
        let mut cur = id;
        while cur != self.root_id && cur != self.top_id {
            let Some(f) = self.folders.get(cur) else {
                break;
            };
            path.push(f.display_name.clone());
            cur = &f.parent_id;
        }
        if cur == self.top_id && id != self.root_id {
            // Outside the IPM subtree (e.g. Deletions): mark it.
            path.push("(non-IPM)".to_string());
        }
        path.reverse();
        path
    }

    pub fn insert_message(&mut self, msg: Message) {
        self.by_imid
            .entry(msg.internet_message_id.clone())
            .or_default()
            .push(msg.id.clone());
        if let Some(f) = self.folders.get_mut(&msg.folder_id) {
            f.messages.push(msg.id.clone());
        }
        self.messages.insert(msg.id.clone(), msg);
    }

    pub fn remove_message(&mut self, id: &str) -> Option<Message> {
        let msg = self.messages.remove(id)?;
        if let Some(f) = self.folders.get_mut(&msg.folder_id) {
            f.messages.retain(|m| m != id);
        }
        self.unindex_imid(&msg.internet_message_id, id);
        Some(msg)
    }

    pub fn unindex_imid(&mut self, imid: &str, id: &str) {
        if let Some(v) = self.by_imid.get_mut(imid) {
            v.retain(|m| m != id);
            if v.is_empty() {
                self.by_imid.remove(imid);
            }
        }
    }

    pub fn unread_count(&self, folder: &Folder) -> usize {
        folder
            .messages
            .iter()
            .filter(|m| self.messages.get(*m).is_some_and(|m| !m.is_read))
            .count()
    }

    pub fn folder_size(&self, folder: &Folder) -> u64 {
        folder
            .messages
            .iter()
            .filter_map(|m| self.messages.get(m))
            .map(Message::size)
            .sum()
    }
}

/// All mailboxes.
#[derive(Debug)]
pub struct Store {
    pub mailboxes: Vec<Mailbox>,
    by_key: HashMap<String, usize>,
    /// When set (from --mailboxes), unknown users are not provisioned.
    fixed: bool,
    default_max_receive: u64,
}

impl Store {
    pub fn new(mailboxes: Option<&[String]>, default_max_receive: u64, rng: &mut fastrand::Rng) -> Store {
        let mut s = Store {
            mailboxes: Vec::new(),
            by_key: HashMap::new(),
            fixed: mailboxes.is_some(),
            default_max_receive,
        };
        for m in mailboxes.unwrap_or_default() {
            s.provision(m, None, rng);
        }
        s
    }

    /// Empties the store, re-creating the --mailboxes set.
    pub fn reset(&mut self, mailboxes: Option<&[String]>, rng: &mut fastrand::Rng) {
        *self = Store::new(mailboxes, self.default_max_receive, rng);
    }

    /// Creates a mailbox (or returns the existing one).
    pub fn provision(&mut self, address: &str, max_receive: Option<u64>, rng: &mut fastrand::Rng) -> usize {
        let key = address.to_ascii_lowercase();
        if let Some(&i) = self.by_key.get(&key) {
            if let Some(m) = max_receive {
                self.mailboxes[i].max_receive_size = m;
            }
            return i;
        }
        let idx = self.mailboxes.len();
        let mb = Mailbox::new(
            idx as u32 + 1,
            address,
            max_receive.unwrap_or(self.default_max_receive),
            rng,
        );
        self.by_key.insert(key, idx);
        self.by_key.insert(mb.id.to_ascii_lowercase(), idx);
        self.mailboxes.push(mb);
        idx
    }

    /// Finds a mailbox by address or id, provisioning it on first use unless
    /// the set is fixed. Only strings that look like an address are
    /// provisioned: an unknown GUID is an unknown user.
    pub fn lookup(&mut self, user: &str, rng: &mut fastrand::Rng) -> Option<usize> {
        if let Some(&i) = self.by_key.get(&user.to_ascii_lowercase()) {
            return Some(i);
        }
        if self.fixed || !looks_like_address(user) {
            return None;
        }
        Some(self.provision(user, None, rng))
    }

    /// The mailbox at `idx` if it still has id `id` (a reset may have
    /// replaced the store while a request was in flight).
    pub fn checked(&self, idx: usize, id: &str) -> Option<&Mailbox> {
        self.mailboxes.get(idx).filter(|m| m.id == id)
    }

    pub fn checked_mut(&mut self, idx: usize, id: &str) -> Option<&mut Mailbox> {
        self.mailboxes.get_mut(idx).filter(|m| m.id == id)
    }

    /// Finds a mailbox without provisioning it.
    pub fn find(&self, user: &str) -> Option<usize> {
        self.by_key.get(&user.to_ascii_lowercase()).copied()
    }
}

fn looks_like_address(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !s.chars().any(|c| c.is_whitespace() || c == '/')
        }
        None => false,
    }
}
