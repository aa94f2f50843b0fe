//! Reading calendars and contacts from files: a Google Takeout export
//! (its `Calendar/*.ics` and `Contacts/**/*.vcf`) or any `.ics`/`.vcf`
//! files an admin put in a user's folder. Each `.ics` file is a calendar
//! and each `.vcf` file an address book, so a migration treats them as it
//! treats a DAV server's collections; the files are only read.
//!
//! A file has no ETags and no sync tokens, so an item is named by its
//! UID and versioned by a hash of its own text: a rerun reads the files
//! again, compares each item's hash with the one stored and hands on only
//! what changed. Google's vCards carry no UID; such a card is named by its
//! name (and which of that name it is), so editing its phone number
//! updates the copy instead of adding another one, and the UID written
//! into the copy is derived from that name, not from the card's text.
//!
//! Takeout specifics: `All Contacts.vcf` holds every contact and each
//! label's `.vcf` a subset, so when it is present the other `.vcf` files of
//! the export are left out (the labels are in each card's CATEGORIES); the
//! calendar named after the user's address is the primary one.
//!
//! Items that cannot be read are listed with a key of their own and fail
//! alone when fetched, with the reason; the rest of the file goes on.
//! Memory holds one file's items at a time.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::dav::{
    Changes, Collection, CollectionKind, Discovery, FetchOutcome, FetchedItem, ListedBy, Member, SkippedCollection,
    diff_members,
};
use crate::error::{Error, Result};
use crate::transform::contact::split_vcards;
use crate::transform::event::split_calendar;

/// The largest file read as one calendar or address book: it is read and
/// split whole, so this bounds a user's memory.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// How deep below the user's folder files are looked for (a Takeout export
/// nests `Takeout/Contacts/<label>/<label>.vcf`).
const MAX_DEPTH: usize = 6;

/// The file Google Takeout writes every contact into.
const TAKEOUT_ALL_CONTACTS: &str = "All Contacts.vcf";

/// Key prefix of an item that cannot be read: it is listed so that it
/// fails (and is reported) instead of vanishing.
const INVALID_PREFIX: &str = "invalid:";

/// One user's `.ics`/`.vcf` files, read-only.
#[derive(Debug)]
pub struct FilesSource {
    /// The user's folder (searched recursively) or single file.
    root: PathBuf,
    email: String,
    /// The last file read, so that listing and fetching a collection read
    /// it once.
    cache: Mutex<Option<Arc<FileItems>>>,
}

/// One file's items, by key.
#[derive(Debug)]
struct FileItems {
    href: String,
    items: BTreeMap<String, FileItem>,
}

#[derive(Debug)]
struct FileItem {
    /// `sha256:` and the hash of the item's text.
    version: String,
    /// The item's own text, or why it cannot be copied.
    body: std::result::Result<String, String>,
}

impl FilesSource {
    /// The files at `root` (a folder or one file) for the user `email`.
    pub fn new(root: PathBuf, email: &str) -> FilesSource {
        FilesSource {
            root,
            email: email.to_owned(),
            cache: Mutex::new(None),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every `.ics` (a calendar) and `.vcf` (an address book) file under
    /// the user's folder, in path order, the primary calendar first.
    pub async fn collections(&self) -> Result<Discovery> {
        let root = self.root.clone();
        let email = self.email.clone();
        tokio::task::spawn_blocking(move || discover(&root, &email))
            .await
            .map_err(|e| Error::fatal(format!("reading the contacts and calendar files stopped: {e}")))?
    }

    /// What changed in the file `collection` since the item versions in
    /// `known` were stored: each item's content hash compared with the
    /// stored one.
    pub async fn changes(&self, collection: &Collection, known: &BTreeMap<String, String>) -> Result<Changes> {
        let file = self.load(collection).await?;
        let listed = file
            .items
            .iter()
            .map(|(key, item)| Member {
                href: key.clone(),
                etag: Some(item.version.clone()),
            })
            .collect();
        let (changed, removed) = diff_members(known, listed);
        Ok(Changes {
            changed,
            removed,
            token: None,
            listed_by: ListedBy::ContentHashes,
        })
    }

    /// The items at `keys` of the file `collection`, one outcome each.
    pub async fn fetch(&self, collection: &Collection, keys: &[String]) -> Result<Vec<FetchOutcome>> {
        let file = self.load(collection).await?;
        Ok(keys
            .iter()
            .map(|key| match file.items.get(key) {
                None => FetchOutcome::Gone { href: key.clone() },
                Some(FileItem { body: Err(reason), .. }) => FetchOutcome::Failed {
                    href: key.clone(),
                    error: Error::item(reason.clone()),
                },
                Some(FileItem {
                    body: Ok(body),
                    version,
                }) => FetchOutcome::Found(FetchedItem {
                    href: key.clone(),
                    etag: Some(version.clone()),
                    body: body.clone(),
                }),
            })
            .collect())
    }

    /// The items of `collection`'s file, read and split once.
    async fn load(&self, collection: &Collection) -> Result<Arc<FileItems>> {
        if let Some(cached) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && cached.href == collection.href
        {
            return Ok(cached.clone());
        }
        let path = if self.root.is_file() {
            self.root.clone()
        } else {
            self.root.join(&collection.href)
        };
        let href = collection.href.clone();
        let kind = collection.kind;
        let items = tokio::task::spawn_blocking(move || read_items(&path, &href, kind))
            .await
            .map_err(|e| Error::fatal(format!("reading {} stopped: {e}", collection.href)))??;
        let file = Arc::new(FileItems {
            href: collection.href.clone(),
            items,
        });
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(file.clone());
        Ok(file)
    }
}

/// Finds the calendars and address books under `root`.
fn discover(root: &Path, email: &str) -> Result<Discovery> {
    let meta = std::fs::metadata(root).map_err(|e| {
        Error::fatal(format!(
            "no contacts and calendar files for {email} at {}: {e}; check [contacts_calendars] path",
            root.display()
        ))
    })?;
    let mut files = Vec::new();
    if meta.is_file() {
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.push((name, root.to_path_buf()));
    } else {
        for top in takeout_parts(root).unwrap_or_else(|| vec![root.to_path_buf()]) {
            walk(root, &top, 0, &mut files)?;
        }
    }
    files.sort();
    let mut discovery = Discovery::default();
    let takeout_all = files
        .iter()
        .any(|(rel, _)| rel.rsplit('/').next() == Some(TAKEOUT_ALL_CONTACTS));
    for (rel, _) in files {
        let Some(kind) = kind_of(&rel) else { continue };
        let stem = stem_of(&rel);
        let collection = Collection {
            href: rel.clone(),
            kind,
            display_name: Some(stem),
            color: None,
            description: None,
            ctag: None,
            sync_token: None,
            supports_sync: false,
            components: Vec::new(),
        };
        match kind {
            CollectionKind::Calendar => discovery.calendars.push(collection),
            CollectionKind::AddressBook if takeout_all && rel.rsplit('/').next() != Some(TAKEOUT_ALL_CONTACTS) => {
                discovery.skipped.push(SkippedCollection {
                    href: rel,
                    display_name: collection.display_name,
                    reason: format!(
                        "its contacts are in {TAKEOUT_ALL_CONTACTS} of the same export (their labels are copied as categories)"
                    ),
                });
            }
            CollectionKind::AddressBook => discovery.address_books.push(collection),
        }
    }
    // The primary calendar: the one Takeout names after the user's
    // address, else the only one. Without either, every calendar goes to
    // a calendar of its own name.
    let primary = discovery
        .calendars
        .iter()
        .position(|c| c.display_name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(email)))
        .or((discovery.calendars.len() == 1).then_some(0));
    match primary {
        Some(i) => {
            let first = discovery.calendars.remove(i);
            discovery.calendars.insert(0, first);
        }
        None => discovery.no_primary_calendar = true,
    }
    Ok(discovery)
}

/// In a Google Takeout export (the folder holding `Calendar` and
/// `Contacts`, or the one holding `Takeout/`), only those two folders:
/// the export's Drive may hold `.ics`/`.vcf` files the user uploaded,
/// which are documents, not their calendars. `None` for any other folder.
fn takeout_parts(root: &Path) -> Option<Vec<PathBuf>> {
    let nested = root.join("Takeout");
    let export = if nested.is_dir() { nested } else { root.to_path_buf() };
    let parts: Vec<PathBuf> = ["Calendar", "Contacts"]
        .iter()
        .map(|name| export.join(name))
        .filter(|p| p.is_dir())
        .collect();
    (!parts.is_empty()).then_some(parts)
}

/// Collects `.ics`/`.vcf` files below `dir` as (path relative to `root`
/// with `/` separators, full path). Hidden entries and symbolic links are
/// left alone.
fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::fatal(format!("cannot list {}: {e}; check its permissions", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::fatal(format!("cannot list {}: {e}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(file_type) = entry.file_type() else { continue };
        let path = entry.path();
        if file_type.is_dir() && depth < MAX_DEPTH {
            walk(root, &path, depth + 1, out)?;
        } else if file_type.is_file() && kind_of(&name).is_some() {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, path));
        }
    }
    Ok(())
}

fn kind_of(name: &str) -> Option<CollectionKind> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".ics") {
        Some(CollectionKind::Calendar)
    } else if lower.ends_with(".vcf") {
        Some(CollectionKind::AddressBook)
    } else {
        None
    }
}

fn stem_of(rel: &str) -> String {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.rsplit_once('.').map_or(name, |(stem, _)| stem).to_owned()
}

/// Reads one file and splits it into items by key.
fn read_items(path: &Path, href: &str, kind: CollectionKind) -> Result<BTreeMap<String, FileItem>> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::item(format!("cannot read {}: {e}", path.display())))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(Error::item(format!(
            "{} is {} MB, more than the {} MB read as one calendar or address book; split it into several files",
            path.display(),
            size / (1024 * 1024),
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::item(format!("cannot read {}: {e}", path.display())))?;
    let text = decode(bytes);
    Ok(split_items(&text, href, kind))
}

/// The file's text: UTF-8, or else Latin-1 (older vCard 2.1 exports),
/// where every byte is a character.
fn decode(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    }
}

/// Splits a file's text into items by key. Pure.
fn split_items(text: &str, href: &str, kind: CollectionKind) -> BTreeMap<String, FileItem> {
    let mut items = BTreeMap::new();
    let problems = match kind {
        CollectionKind::Calendar => {
            let (objects, problems) = split_calendar(text);
            for object in objects {
                items.insert(object.uid.clone(), item(object.raw));
            }
            problems
        }
        CollectionKind::AddressBook => {
            let (objects, problems) = split_vcards(text);
            let mut seen: HashMap<String, usize> = HashMap::new();
            for object in objects {
                // A UID cutover generated (the card had none) is a hash of
                // the card's text and changes with every edit; such a card
                // is named by its name instead.
                let generated = object.uid.starts_with("cutover-") && !text.contains(&object.uid);
                if !generated {
                    items.insert(object.uid.clone(), item(object.raw));
                    continue;
                }
                let c = &object.contact;
                let name = c
                    .formatted_name
                    .clone()
                    .or_else(|| c.organization.clone())
                    .or_else(|| c.emails.first().map(|e| e.address.clone()))
                    .or_else(|| c.phones.first().map(|p| p.number.clone()))
                    .unwrap_or_default();
                let name = name.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
                let n = seen.entry(name.clone()).or_default();
                *n += 1;
                let key = format!("name:{name}#{n}");
                let uid = format!("cutover-{}", &hex(&Sha256::digest(format!("{href}\n{key}")))[..32]);
                let raw = object
                    .raw
                    .replace(&format!("UID:{}", object.uid), &format!("UID:{uid}"));
                items.insert(key, item(raw));
            }
            problems
        }
    };
    for problem in problems {
        let key = format!("{INVALID_PREFIX}{}", problem.uid_or_position);
        items.insert(
            key,
            FileItem {
                version: format!("sha256:{}", hex(&Sha256::digest(problem.reason.as_bytes()))),
                body: Err(problem.reason),
            },
        );
    }
    items
}

fn item(raw: String) -> FileItem {
    FileItem {
        version: format!("sha256:{}", hex(&Sha256::digest(raw.as_bytes()))),
        body: Ok(raw),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARDS: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ada Lovelace\r\nTEL:+44 1\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ada  lovelace\r\nEMAIL:ada2@example.org\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-1\r\nFN:Charles Babbage\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:3.0\r\nNOTE:nothing to copy\r\nEND:VCARD\r\n";

    const EVENTS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
BEGIN:VEVENT\r\nUID:ev-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260301T090000Z\r\nDTEND:20260301T100000Z\r\nSUMMARY:One\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:ev-2\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260302T090000Z\r\nDTEND:20260302T100000Z\r\nSUMMARY:Two\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

    #[test]
    fn cards_without_uid_are_named_by_their_name_and_keep_it_across_edits() {
        let items = split_items(
            CARDS,
            "Contacts/All Contacts/All Contacts.vcf",
            CollectionKind::AddressBook,
        );
        let keys: Vec<&String> = items.keys().collect();
        assert_eq!(keys.len(), 4, "{keys:?}");
        assert!(items.contains_key("card-1"));
        // Two cards of the same name are told apart by their order.
        assert!(items.contains_key("name:ada lovelace#1"));
        assert!(items.contains_key("name:ada lovelace#2"));
        let bad = items
            .keys()
            .find(|k| k.starts_with(INVALID_PREFIX))
            .expect("the empty card is listed");
        assert!(items[bad].body.as_ref().unwrap_err().contains("nothing to copy"));

        // Editing the first card's phone keeps its key and its UID, and
        // changes its version; the others stay as they were.
        let edited = CARDS.replacen("TEL:+44 1", "TEL:+44 2", 1);
        let again = split_items(
            &edited,
            "Contacts/All Contacts/All Contacts.vcf",
            CollectionKind::AddressBook,
        );
        let before = &items["name:ada lovelace#1"];
        let after = &again["name:ada lovelace#1"];
        assert_ne!(before.version, after.version);
        let uid = |i: &FileItem| {
            i.body
                .as_ref()
                .unwrap()
                .lines()
                .find(|l| l.starts_with("UID:"))
                .unwrap()
                .to_owned()
        };
        assert_eq!(uid(before), uid(after));
        assert_eq!(items["card-1"].version, again["card-1"].version);
        assert_eq!(
            items["name:ada lovelace#2"].version,
            again["name:ada lovelace#2"].version
        );
    }

    #[test]
    fn calendar_items_are_keyed_by_uid_and_versioned_by_content() {
        let items = split_items(EVENTS, "Calendar/a.ics", CollectionKind::Calendar);
        assert_eq!(items.keys().cloned().collect::<Vec<_>>(), vec!["ev-1", "ev-2"]);
        let edited = EVENTS.replace("SUMMARY:Two", "SUMMARY:Two (moved)");
        let again = split_items(&edited, "Calendar/a.ics", CollectionKind::Calendar);
        assert_eq!(items["ev-1"].version, again["ev-1"].version);
        assert_ne!(items["ev-2"].version, again["ev-2"].version);
        assert!(again["ev-2"].body.as_ref().unwrap().contains("Two (moved)"));
    }

    #[test]
    fn not_a_calendar_fails_as_an_item_with_the_reason() {
        let items = split_items("hello\r\n", "Calendar/x.ics", CollectionKind::Calendar);
        assert_eq!(items.len(), 1);
        let only = items.values().next().unwrap();
        assert!(only.body.as_ref().unwrap_err().contains("not iCalendar"));
    }

    #[test]
    fn latin1_files_are_read_not_garbled() {
        assert_eq!(decode(b"FN:Jos\xe9".to_vec()), "FN:José");
        assert_eq!(decode("FN:José".as_bytes().to_vec()), "FN:José");
    }

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn takeout_layout_keeps_all_contacts_and_puts_the_users_calendar_first() {
        let dir = tree(&[
            ("Takeout/Calendar/Holidays.ics", EVENTS),
            ("Takeout/Calendar/ada@example.org.ics", EVENTS),
            ("Takeout/Contacts/All Contacts/All Contacts.vcf", CARDS),
            ("Takeout/Contacts/Friends/Friends.vcf", CARDS),
            ("Takeout/Mail/All mail Including Spam and Trash.mbox", "From x\n"),
            ("Takeout/Calendar/.hidden.ics", EVENTS),
            ("Takeout/Drive/Uploaded/party.ics", EVENTS),
            ("Takeout/Drive/Uploaded/cards.vcf", CARDS),
        ]);
        let found = discover(dir.path(), "Ada@Example.org").unwrap();
        let hrefs = |c: &[Collection]| c.iter().map(|c| c.href.clone()).collect::<Vec<_>>();
        assert_eq!(
            hrefs(&found.calendars),
            vec!["Takeout/Calendar/ada@example.org.ics", "Takeout/Calendar/Holidays.ics"]
        );
        assert!(!found.no_primary_calendar);
        assert_eq!(
            hrefs(&found.address_books),
            vec!["Takeout/Contacts/All Contacts/All Contacts.vcf"]
        );
        assert_eq!(found.skipped.len(), 1);
        assert!(found.skipped[0].reason.contains("All Contacts.vcf"));
    }

    #[test]
    fn plain_files_without_a_user_calendar_have_no_primary() {
        let dir = tree(&[
            ("work.ics", EVENTS),
            ("home.ics", EVENTS),
            ("a.vcf", CARDS),
            ("b.vcf", CARDS),
        ]);
        let found = discover(dir.path(), "ada@example.org").unwrap();
        assert!(found.no_primary_calendar);
        assert_eq!(found.calendars.len(), 2);
        assert_eq!(found.address_books.len(), 2);
        let missing = discover(&dir.path().join("nope"), "ada@example.org").unwrap_err();
        assert!(
            missing.message.contains("[contacts_calendars] path"),
            "{}",
            missing.message
        );
    }

    #[tokio::test]
    async fn a_rerun_lists_only_what_changed_in_the_file() {
        let dir = tree(&[("cal.ics", EVENTS)]);
        let source = FilesSource::new(dir.path().to_path_buf(), "ada@example.org");
        let found = source.collections().await.unwrap();
        let cal = &found.calendars[0];
        let first = source.changes(cal, &BTreeMap::new()).await.unwrap();
        assert_eq!(first.changed.len(), 2);
        let known: BTreeMap<String, String> = first
            .changed
            .iter()
            .map(|m| (m.href.clone(), m.etag.clone().unwrap()))
            .collect();
        let fetched = source.fetch(cal, &["ev-1".into(), "gone".into()]).await.unwrap();
        assert!(matches!(&fetched[0], FetchOutcome::Found(i) if i.body.contains("SUMMARY:One")));
        assert!(matches!(&fetched[1], FetchOutcome::Gone { .. }));

        std::fs::write(dir.path().join("cal.ics"), EVENTS.replace("SUMMARY:One", "SUMMARY:Uno")).unwrap();
        // A new source object (a new run) reads the file again.
        let source = FilesSource::new(dir.path().to_path_buf(), "ada@example.org");
        let second = source.changes(cal, &known).await.unwrap();
        assert_eq!(
            second.changed.iter().map(|m| m.href.as_str()).collect::<Vec<_>>(),
            vec!["ev-1"]
        );
        assert!(second.removed.is_empty());
    }
}
