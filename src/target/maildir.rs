//! The Maildir target: one Maildir++ tree per mailbox under the configured
//! path, one file per message with its flags in the name and its
//! INTERNALDATE as mtime. File names derive from the message's stable key,
//! so storing a message twice overwrites rather than duplicates; a flag
//! change renames the file to its new info letters, keeping that key; a
//! move renames it into another folder under the same name, a delete
//! unlinks it, and a folder rename renames its directory and those of its
//! subfolders (Maildir++ keeps them side by side: `.A`, `.A.B`).
//!
//! Folder directories spell non-ASCII names in modified UTF-7 (Dovecot's
//! Maildir++ convention) or in UTF-8 (Courier 5's), as `[target]
//! folder_names` says ([`FolderNames`]).

use std::path::{Path, PathBuf};

use futures::FutureExt;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::TargetLogin;
use crate::model::{Flags, FolderRole, TargetFolder, Upload};
use crate::target::{Inventoried, Pending, Target, TargetSession};
use crate::transform::maildir_flags;
use crate::utf7;

/// How the Maildir++ folder directories spell non-ASCII folder names
/// (`[target] folder_names`). A Maildir is read back with the names it
/// was written with, so the setting must stay the same for every run into
/// the same tree: the other spelling would be other folders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FolderNames {
    /// Modified UTF-7, as Dovecot stores them: `.Projets.&AMk-coles`.
    #[default]
    Utf7,
    /// UTF-8, as Courier 5 stores them: `.Projets.Écoles`.
    Utf8,
}

impl FolderNames {
    /// Every value, the default first.
    pub const ALL: [FolderNames; 2] = [FolderNames::Utf7, FolderNames::Utf8];

    /// The value as `[target] folder_names` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FolderNames::Utf7 => "utf7",
            FolderNames::Utf8 => "utf8",
        }
    }
}

pub struct MaildirTarget {
    root: PathBuf,
    names: FolderNames,
}

impl MaildirTarget {
    pub fn new(root: PathBuf, names: FolderNames) -> MaildirTarget {
        MaildirTarget { root, names }
    }
}

impl Target for MaildirTarget {
    fn open<'a>(&'a self, user: &'a TargetLogin) -> Pending<'a, Box<dyn TargetSession>> {
        async move {
            if user.email.contains(['/', '\0']) || user.email.starts_with('.') {
                return Err(Error::fatal(format!(
                    "{} cannot be used as a directory name",
                    user.email
                )));
            }
            let session: Box<dyn TargetSession> = Box::new(MaildirSession {
                base: self.root.join(&user.email),
                names: self.names,
            });
            Ok(session)
        }
        .boxed()
    }

    fn capabilities(&self) -> crate::target::Capabilities {
        crate::target::Capabilities {
            move_messages: true,
            update_flags: true,
            delete: true,
            rename_folders: true,
            listed_flags: &["\\Seen", "\\Flagged", "\\Answered"],
            ..crate::target::Capabilities::MAIL_APPEND_ONLY
        }
    }

    fn describe(&self) -> String {
        match self.names {
            FolderNames::Utf7 => format!("Maildir {}", self.root.display()),
            FolderNames::Utf8 => format!("Maildir {} (UTF-8 folder names)", self.root.display()),
        }
    }
}

struct MaildirSession {
    base: PathBuf,
    names: FolderNames,
}

/// Maildir++ folder directory name: ".Sent", ".Archive.2023"; the inbox is
/// the base itself. '.' inside a name becomes '_' (it is the separator),
/// and so does '/'. Non-ASCII names are spelled as `names` says; in
/// modified UTF-7 '&' is `&-`, in UTF-8 it stays '&' (and a NUL, which no
/// file name can hold, becomes '_').
fn folder_dir(folder: &TargetFolder, names: FolderNames) -> String {
    let mut parts: Vec<String> = Vec::new();
    match folder.anchor {
        Some(FolderRole::Inbox) | None => {}
        Some(role) => parts.push(
            match role {
                FolderRole::Sent => "Sent",
                FolderRole::Drafts => "Drafts",
                FolderRole::Trash => "Trash",
                FolderRole::Junk => "Junk",
                FolderRole::Flagged => "Starred",
                FolderRole::Important => "Important",
                _ => "Archive",
            }
            .to_owned(),
        ),
    }
    parts.extend(folder.path.iter().map(|p| match names {
        FolderNames::Utf7 => utf7::encode(&p.replace(['.', '/'], "_")),
        FolderNames::Utf8 => p.replace(['.', '/', '\0'], "_"),
    }));
    if parts.is_empty() {
        return String::new();
    }
    fit(format!(".{}", parts.join(".")))
}

/// A folder directory name made to fit one directory entry.
fn fit(name: String) -> String {
    if name.len() <= MAX_DIR_NAME {
        return name;
    }
    // Too long for one directory entry (modified UTF-7 makes non-ASCII
    // names about 2.7 times longer, UTF-8 takes 2 to 4 bytes a character):
    // the start of the name, then a hash of all of it, so the folder is
    // kept, always under the same name. The cut never splits a UTF-8
    // character (modified UTF-7 is ASCII: there it is the byte count).
    let digest = Sha256::digest(name.as_bytes());
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let cut = name.floor_char_boundary(MAX_DIR_NAME - 1 - hash.len());
    format!("{}~{hash}", &name[..cut])
}

/// The longest directory name Linux file systems take (bytes).
const MAX_DIR_NAME: usize = 255;

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    let msg = format!("{what} {}: {e}", path.display());
    if e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) {
        Error::fatal(format!("{msg} (disk full: free space and run again)"))
    } else {
        Error::fatal(msg)
    }
}

/// The deterministic part of a message's file name: INTERNALDATE and the
/// first 12 bytes of SHA-256 of its key. `find` looks a message up by it
/// after a crash, so it must never change between versions.
fn unique_name(message: &Upload) -> String {
    use std::fmt::Write;
    let digest = Sha256::digest(message.key.to_string().as_bytes());
    let mut name = String::with_capacity(48);
    let _ = write!(name, "{}.", message.internal_date.max(0));
    for b in &digest[..12] {
        let _ = write!(name, "{b:02x}");
    }
    name.push_str(".cutover");
    name
}

/// What writing one message's file needs, owned so it can move to a
/// blocking thread.
struct MessageFile {
    unique: String,
    flags: String,
    raw: bytes::Bytes,
    internal_date: i64,
}

impl MessageFile {
    fn of(message: &Upload) -> MessageFile {
        MessageFile {
            unique: unique_name(message),
            flags: maildir_flags(&message.flags),
            raw: message.raw.clone(),
            internal_date: message.internal_date,
        }
    }
}

/// Writes each message into `dir/tmp`, dates it, and renames it into
/// `dir/cur` (the rename is what makes it delivered, so a message is only
/// reported stored once it is in `cur/`). One result per message, in order;
/// on the first failure it stops, so a shorter list means the rest were
/// not written (every write failure is fatal: disk full, permissions).
///
/// Mail is private to its owner (files 0600) and durable before it is
/// reported stored, since the checkpoint then records it as copied: every
/// file's data is synced before its rename, and the directory after the
/// renames. The syncs come after all the batch's writes, so the first one
/// carries most of the batch to disk and the rest are cheap.
fn write_files(dir: &Path, files: &[MessageFile]) -> Vec<Result<String>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp_dir = dir.join("tmp");
    let cur_dir = dir.join("cur");
    let mut written = Vec::with_capacity(files.len());
    let mut failure = None;
    for f in files {
        let tmp = tmp_dir.join(&f.unique);
        let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(f.internal_date.max(0) as u64);
        let file = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| io("cannot create", &tmp, e))?;
            file.write_all(&f.raw).map_err(|e| io("cannot write", &tmp, e))?;
            file.set_modified(mtime)
                .map_err(|e| io("cannot set the date of", &tmp, e))?;
            Ok(file)
        })();
        match file {
            Ok(file) => written.push((file, tmp, f)),
            Err(e) => {
                // A half-written file in tmp/ is never read, but on a full
                // disk its space is worth giving back.
                let _ = std::fs::remove_file(&tmp);
                failure = Some(e);
                break;
            }
        }
    }
    let mut names = Vec::with_capacity(written.len());
    let mut pending = written.into_iter();
    for (file, tmp, f) in pending.by_ref() {
        let name = format!("{}:2,{}", f.unique, f.flags);
        let dest = cur_dir.join(&name);
        let delivered = file
            .sync_all()
            .map_err(|e| io("cannot sync", &tmp, e))
            .and_then(|()| std::fs::rename(&tmp, &dest).map_err(|e| io("cannot move", &dest, e)));
        if let Err(e) = delivered {
            let _ = std::fs::remove_file(&tmp);
            failure = Some(e);
            break;
        }
        names.push(name);
    }
    for (_, tmp, _) in pending {
        let _ = std::fs::remove_file(&tmp);
    }
    let mut out: Vec<Result<String>> = Vec::with_capacity(files.len());
    if !names.is_empty() {
        // The renames themselves are durable once the directory is synced;
        // until then a crash could lose them, so none counts as stored.
        match std::fs::File::open(&cur_dir).and_then(|d| d.sync_all()) {
            Ok(()) => out.extend(names.into_iter().map(Ok)),
            Err(e) => {
                out.push(Err(io("cannot sync", &cur_dir, e)));
                return out;
            }
        }
    }
    if let Some(e) = failure {
        out.push(Err(e));
    }
    out
}

/// Where a message file an id names sits: `cur/` or `new/`, and its name.
/// Ids are what `upload` and `find` return (a name in `cur/`) or what
/// `inventory` lists (`cur/NAME`, `new/NAME`); anything else, a path that
/// would leave the folder included, is not an id of this target.
fn locate(id: &str) -> Option<(&'static str, &str)> {
    let (sub, name) = match id.split_once('/') {
        None => ("cur", id),
        Some(("cur", name)) => ("cur", name),
        Some(("new", name)) => ("new", name),
        Some(_) => return None,
    };
    (!name.is_empty() && !name.contains('/') && name != "." && name != "..").then_some((sub, name))
}

/// The unique part of a message file's name: all before the info (`:2,...`).
fn unique_part(name: &str) -> &str {
    name.split_once(':').map_or(name, |(unique, _)| unique)
}

/// The flags a message file's name carries in its info (`:2,FRS`), in
/// IMAP spelling; none for a file without info (delivered to `new/`, not
/// seen by a client yet) or with experimental info (`:1,...`).
fn info_flags(name: &str) -> Flags {
    let Some((_, info)) = name.split_once(':') else {
        return Flags::default();
    };
    let Some(letters) = info.strip_prefix("2,") else {
        return Flags::default();
    };
    let mut flags = Flags::default();
    for (letter, flag) in [
        ('D', "\\Draft"),
        ('F', "\\Flagged"),
        ('R', "\\Answered"),
        ('S', "\\Seen"),
        ('T', "\\Deleted"),
    ] {
        if letters.contains(letter) {
            flags.0.push(flag.to_owned());
        }
    }
    flags
}

/// Renames the message file `id` names in `dir` to carry `letters` as its
/// info (in `cur/`, where a file with info belongs) and syncs the
/// directories, so the new name is durable before it is reported. A file
/// no longer under that name (a mail client changed its flags, moving it
/// from `new/` to `cur/` or renaming it) is looked for by its unique part.
/// Returns the new id, in the form `id` had.
fn rename_flags(dir: &Path, id: &str, letters: &str) -> Result<String> {
    let Some((sub, name)) = locate(id) else {
        return Err(Error::item(format!(
            "the copy's flags cannot be changed: {id:?} is not a Maildir message file of this folder"
        )));
    };
    let unique = unique_part(name).to_owned();
    let new_name = format!("{unique}:2,{letters}");
    let cur = dir.join("cur");
    let mut from = dir.join(sub).join(name);
    if !std::fs::symlink_metadata(&from).is_ok_and(|m| m.is_file()) {
        let prefix = format!("{unique}:");
        let found = ["cur", "new"].iter().find_map(|sub| {
            std::fs::read_dir(dir.join(sub)).ok()?.flatten().find_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                (n == unique || n.starts_with(&prefix)).then(|| e.path())
            })
        });
        match found {
            Some(path) => from = path,
            None => {
                return Err(Error::item(format!(
                    "the copy's flags cannot be changed: {} is gone from the target folder (deleted or moved since it was stored)",
                    dir.join(sub).join(name).display()
                )));
            }
        }
    }
    let to = cur.join(&new_name);
    if from != to {
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::item(format!(
                    "the copy's flags cannot be changed: {} is gone from the target folder (deleted or moved meanwhile)",
                    from.display()
                )));
            }
            Err(e) => return Err(io("cannot rename", &from, e)),
        }
        // The rename is durable once both directories are synced.
        let mut synced = vec![cur.clone()];
        if let Some(parent) = from.parent().filter(|p| *p != cur) {
            synced.push(parent.to_path_buf());
        }
        for d in synced {
            std::fs::File::open(&d)
                .and_then(|f| f.sync_all())
                .map_err(|e| io("cannot sync", &d, e))?;
        }
    }
    Ok(if id.contains('/') {
        format!("cur/{new_name}")
    } else {
        new_name
    })
}

/// Finds the message file an id names in folder `dir`: under its name, or
/// (a mail client changed its flags since, moving it from `new/` to `cur/`
/// or renaming it) by its unique part. `None` when it is gone.
fn find_file(dir: &Path, sub: &str, name: &str) -> Option<PathBuf> {
    let path = dir.join(sub).join(name);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        return Some(path);
    }
    let unique = unique_part(name);
    let prefix = format!("{unique}:");
    ["cur", "new"].iter().find_map(|sub| {
        std::fs::read_dir(dir.join(sub)).ok()?.flatten().find_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            (n == unique || n.starts_with(&prefix)).then(|| e.path())
        })
    })
}

/// Syncs directories, so renames and unlinks in them are durable before
/// they are reported.
fn sync_dirs(dirs: &[&Path]) -> Result<()> {
    for d in dirs {
        std::fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(|e| io("cannot sync", d, e))?;
    }
    Ok(())
}

/// Moves the message file `id` names from folder directory `from` into
/// `to`'s `cur/`, under the same name. A file already moved there (the
/// same unique part in `to`, and none left in `from`) is that move done:
/// a second call does not make the message fail. Returns the id in `to`,
/// in the form `id` had.
fn move_file(from: &Path, id: &str, to: &Path) -> Result<String> {
    let Some((sub, name)) = locate(id) else {
        return Err(Error::item(format!(
            "the copy cannot be moved: {id:?} is not a Maildir message file of this folder"
        )));
    };
    let in_form = |name: &str| {
        if id.contains('/') {
            format!("cur/{name}")
        } else {
            name.to_owned()
        }
    };
    let dest_cur = to.join("cur");
    if !dest_cur.is_dir() {
        return Err(Error::item(format!(
            "the copy cannot be moved: target folder {} does not exist (deleted since it was made?)",
            to.display()
        )));
    }
    let Some(source) = find_file(from, sub, name) else {
        if let Some(there) = find_file(to, "cur", name) {
            let name = there
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Ok(in_form(&name));
        }
        return Err(Error::item(format!(
            "the copy cannot be moved: {} is gone from the target folder (deleted or moved since it was stored)",
            from.join(sub).join(name).display()
        )));
    };
    let file_name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dest = dest_cur.join(&file_name);
    if source == dest {
        return Ok(in_form(&file_name));
    }
    match std::fs::rename(&source, &dest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !source.exists() => {
            return Err(Error::item(format!(
                "the copy cannot be moved: {} is gone from the target folder (deleted or moved meanwhile)",
                source.display()
            )));
        }
        Err(e) => return Err(io("cannot move", &source, e)),
    }
    let left = source.parent().unwrap_or(from);
    sync_dirs(&[dest_cur.as_path(), left])?;
    Ok(in_form(&file_name))
}

/// Unlinks the message file `id` names in folder directory `dir`; a file
/// that is gone is no error.
fn delete_file(dir: &Path, id: &str) -> Result<()> {
    let Some((sub, name)) = locate(id) else {
        return Err(Error::item(format!(
            "the copy cannot be deleted: {id:?} is not a Maildir message file of this folder"
        )));
    };
    let Some(path) = find_file(dir, sub, name) else {
        return Ok(());
    };
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("cannot delete", &path, e)),
    }
    sync_dirs(&[path.parent().unwrap_or(dir)])
}

/// Renames folder directory `old` (with every `old.Child` directory, its
/// subfolders) to `new` under `base`. Everything is checked before the
/// first rename: a folder already at `new` (or at a child's new name) is
/// an item error and nothing changes. A rename cut short
/// (the folder renamed, some children not yet) is finished by calling it
/// again. Returns `new`.
fn rename_dirs(base: &Path, old: &str, new: &str) -> Result<String> {
    let refuse = |why: String| Error::item(format!("target folder {old:?} cannot be renamed to {new:?}: {why}"));
    if old == new {
        return Ok(new.to_owned());
    }
    if old.is_empty() || new.is_empty() {
        return Err(refuse("the inbox is neither renamed nor replaced".into()));
    }
    // References are `.Folder` directory names; anything else would leave
    // the mailbox's directory.
    if !old.starts_with('.') || old.contains('/') || old == "." || old == ".." {
        return Err(refuse("it is not a folder directory of this Maildir".into()));
    }
    if new.starts_with(&format!("{old}.")) {
        return Err(refuse("a folder cannot be moved into itself".into()));
    }
    let child_prefix = format!("{old}.");
    let children: Vec<String> = match std::fs::read_dir(base) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&child_prefix))
            .collect(),
        Err(e) => return Err(io("cannot read", base, e)),
    };
    let exists = |name: &str| std::fs::symlink_metadata(base.join(name)).is_ok();
    let mut renames: Vec<(String, String)> = Vec::new();
    match (exists(old), exists(new)) {
        (true, true) => return Err(refuse(format!("a folder {new:?} exists already"))),
        (true, false) => renames.push((old.to_owned(), new.to_owned())),
        // Renamed already; children left behind by a rename cut short.
        (false, true) if !children.is_empty() => {}
        (false, _) => return Err(refuse("it no longer exists".into())),
    }
    for child in children {
        // Shortened as `folder_dir` shortens the subfolder's new name.
        let moved = fit(format!("{new}{}", &child[old.len()..]));
        if exists(&moved) {
            return Err(refuse(format!("a folder {moved:?} exists already")));
        }
        renames.push((child, moved));
    }
    for (from, to) in &renames {
        std::fs::rename(base.join(from), base.join(to)).map_err(|e| io("cannot rename", &base.join(from), e))?;
    }
    sync_dirs(&[base])?;
    Ok(new.to_owned())
}

/// Creates `path` and its missing parents, private to their owner (0700).
async fn create_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&owned))
        .await
        .map_err(|e| Error::fatal(format!("cannot create {}: {e}", path.display())))?
        .map_err(|e| io("cannot create", path, e))
}

impl TargetSession for MaildirSession {
    fn ensure_folder<'a>(&'a mut self, folder: &'a TargetFolder, _known: Option<&'a str>) -> Pending<'a, String> {
        async move {
            let dir = folder_dir(folder, self.names);
            let path = self.base.join(&dir);
            for sub in ["cur", "new", "tmp"] {
                create_private_dir(&path.join(sub)).await?;
            }
            if !dir.is_empty() {
                let marker = path.join("maildirfolder");
                let created = {
                    use std::os::unix::fs::OpenOptionsExt;
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&marker)
                };
                created.map_err(|e| io("cannot create", &marker, e))?;
            }
            Ok(dir)
        }
        .boxed()
    }

    fn upload<'a>(&'a mut self, folder: &'a str, message: &'a Upload) -> Pending<'a, String> {
        async move {
            let mut results = self.upload_many(folder, std::slice::from_ref(message)).await;
            results
                .pop()
                .unwrap_or_else(|| Err(Error::fatal("writing a message failed: no result")))
        }
        .boxed()
    }

    /// The whole batch in one blocking task: a thread hand-off per message
    /// costs more than writing a typical message's file.
    fn upload_many<'a>(&'a mut self, folder: &'a str, messages: &'a [Upload]) -> BoxFuture<'a, Vec<Result<String>>> {
        async move {
            if messages.is_empty() {
                return Vec::new();
            }
            let dir = self.base.join(folder);
            // Owned copies for the blocking task: `Bytes` clones share the body.
            let files: Vec<MessageFile> = messages.iter().map(MessageFile::of).collect();
            match tokio::task::spawn_blocking(move || write_files(&dir, &files)).await {
                Ok(results) => results,
                Err(e) => vec![Err(Error::fatal(format!("writing messages failed: {e}")))],
            }
        }
        .boxed()
    }

    fn find<'a>(&'a mut self, folder: &'a str, message: &'a Upload) -> Pending<'a, Option<String>> {
        async move {
            let cur = self.base.join(folder).join("cur");
            let unique = unique_name(message);
            // Most likely under the name it was written with; a mail client
            // may since have changed its flags, hence the scan below.
            let written = format!("{unique}:2,{}", maildir_flags(&message.flags));
            if tokio::fs::symlink_metadata(cur.join(&written))
                .await
                .is_ok_and(|m| m.is_file())
            {
                return Ok(Some(written));
            }
            let prefix = format!("{unique}:");
            let mut entries = match tokio::fs::read_dir(&cur).await {
                Ok(e) => e,
                Err(_) => return Ok(None),
            };
            while let Ok(Some(entry)) = entries.next_entry().await {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) {
                    return Ok(Some(name));
                }
            }
            Ok(None)
        }
        .boxed()
    }

    /// Renames the file to the info letters an upload with these flags
    /// writes. Keywords and labels are left out, as an upload leaves them
    /// out: Maildir keeps them in Dovecot's `dovecot-keywords` file, which
    /// this target does not write.
    fn update_flags<'a>(
        &'a mut self,
        folder: &'a str,
        id: &'a str,
        flags: &'a Flags,
        _labels: &'a [String],
    ) -> Pending<'a, String> {
        async move {
            let dir = self.base.join(folder);
            let letters = maildir_flags(flags);
            let id = id.to_owned();
            tokio::task::spawn_blocking(move || rename_flags(&dir, &id, &letters))
                .await
                .map_err(|e| Error::fatal(format!("renaming a message file failed: {e}")))?
        }
        .boxed()
    }

    /// The file renamed into the other folder's `cur/`, under the same name.
    fn move_message<'a>(&'a mut self, from: &'a str, id: &'a str, to: &'a str) -> Pending<'a, String> {
        async move {
            let (from, to) = (self.base.join(from), self.base.join(to));
            let id = id.to_owned();
            tokio::task::spawn_blocking(move || move_file(&from, &id, &to))
                .await
                .map_err(|e| Error::fatal(format!("moving a message file failed: {e}")))?
        }
        .boxed()
    }

    fn delete_message<'a>(&'a mut self, folder: &'a str, id: &'a str) -> Pending<'a, ()> {
        async move {
            let dir = self.base.join(folder);
            let id = id.to_owned();
            tokio::task::spawn_blocking(move || delete_file(&dir, &id))
                .await
                .map_err(|e| Error::fatal(format!("deleting a message file failed: {e}")))?
        }
        .boxed()
    }

    /// The folder's directory and its subfolders' renamed to the names
    /// `to` gets with this target's `folder_names`.
    fn rename_folder<'a>(&'a mut self, known: &'a str, to: &'a TargetFolder) -> Pending<'a, String> {
        async move {
            let base = self.base.clone();
            let (old, new) = (known.to_owned(), folder_dir(to, self.names));
            tokio::task::spawn_blocking(move || rename_dirs(&base, &old, &new))
                .await
                .map_err(|e| Error::fatal(format!("renaming a folder failed: {e}")))?
        }
        .boxed()
    }

    fn inventory<'a>(&'a mut self, folder: &'a TargetFolder, known: Option<&'a str>) -> Pending<'a, Vec<Inventoried>> {
        async move {
            let dir = self
                .base
                .join(known.map_or_else(|| folder_dir(folder, self.names), str::to_owned));
            tokio::task::spawn_blocking(move || read_inventory(&dir))
                .await
                .map_err(|e| Error::fatal(format!("reading a Maildir failed: {e}")))?
        }
        .boxed()
    }

    fn compare_content<'a>(
        &'a mut self,
        folder: &'a TargetFolder,
        known: Option<&'a str>,
        item: &'a Inventoried,
        source: &'a [u8],
    ) -> Pending<'a, Option<String>> {
        async move {
            let dir = self
                .base
                .join(known.map_or_else(|| folder_dir(folder, self.names), str::to_owned));
            let path = dir.join(&item.id);
            match tokio::fs::read(&path).await {
                Ok(bytes) => Ok(crate::target::compare_bytes(source, &bytes)),
                // A mail client moves new/ to cur/ and renames on a flag change.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(
                    "the target no longer has the copy (moved or deleted since it was listed?)".to_owned(),
                )),
                Err(e) => Err(io("cannot read", &path, e)),
            }
        }
        .boxed()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        async {}.boxed()
    }
}

/// Every message file of a Maildir folder (`cur/` and `new/`), with its
/// size and the Message-ID from its header section. A folder that does not
/// exist holds nothing.
fn read_inventory(dir: &Path) -> Result<Vec<Inventoried>> {
    use std::io::Read;
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        let path = dir.join(sub);
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("cannot read", &path, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io("cannot read", &path, e))?;
            let meta = entry.metadata().map_err(|e| io("cannot read", &entry.path(), e))?;
            if !meta.is_file() {
                continue;
            }
            // The header section is all that is needed; 64 KiB holds any
            // sane one without reading attachments.
            let mut head = Vec::with_capacity(8192);
            std::fs::File::open(entry.path())
                .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
                .map_err(|e| io("cannot read", &entry.path(), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            out.push(Inventoried {
                message_id: crate::headers::message_id(crate::headers::block(&head)),
                size: meta.len(),
                flags: info_flags(&name),
                id: format!("{sub}/{name}"),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maildir_plus_plus_names() {
        let tf = |anchor, path: &[&str]| TargetFolder {
            anchor,
            path: path.iter().map(|s| s.to_string()).collect(),
        };
        for names in [FolderNames::Utf7, FolderNames::Utf8] {
            assert_eq!(folder_dir(&tf(Some(FolderRole::Inbox), &[]), names), "");
            assert_eq!(folder_dir(&tf(Some(FolderRole::Sent), &[]), names), ".Sent");
            assert_eq!(folder_dir(&tf(None, &["Archive", "2023"]), names), ".Archive.2023");
            assert_eq!(folder_dir(&tf(Some(FolderRole::Inbox), &["Lists"]), names), ".Lists");
            assert_eq!(folder_dir(&tf(None, &["a/b", "c.d"]), names), ".a_b.c_d");
        }
        let utf7 = |path: &[&str]| folder_dir(&tf(None, path), FolderNames::Utf7);
        let utf8 = |path: &[&str]| folder_dir(&tf(None, path), FolderNames::Utf8);
        assert_eq!(utf7(&["v1.2", "Écoles"]), ".v1_2.&AMk-coles");
        assert_eq!(utf8(&["v1.2", "Écoles"]), ".v1_2.Écoles");
        assert_eq!(
            folder_dir(&tf(Some(FolderRole::Sent), &["Reçus"]), FolderNames::Utf8),
            ".Sent.Reçus"
        );
        // '&' starts a modified UTF-7 run, so it is "&-" there; in UTF-8
        // it is itself, and a name that looks encoded stays that name.
        assert_eq!(utf7(&["R&D"]), ".R&-D");
        assert_eq!(utf8(&["R&D"]), ".R&D");
        assert_eq!(utf8(&["&AMk-coles"]), ".&AMk-coles");
        assert_ne!(utf8(&["&AMk-coles"]), utf8(&["Écoles"]));
        assert_eq!(utf8(&["nul\0here"]), ".nul_here");
    }

    /// A folder lands on disk spelled as `[target] folder_names` says, and
    /// inventory, find and compare_content read it back by path and by
    /// reference.
    #[tokio::test]
    async fn folder_names_are_spelled_as_configured_and_read_back() {
        let folder = TargetFolder {
            anchor: None,
            path: vec!["Projets".into(), "Écoles".into()],
        };
        for (names, on_disk, not_on_disk) in [
            (FolderNames::Utf8, ".Projets.Écoles", ".Projets.&AMk-coles"),
            (FolderNames::Utf7, ".Projets.&AMk-coles", ".Projets.Écoles"),
        ] {
            let root = tempfile::tempdir().unwrap();
            let target = MaildirTarget::new(root.path().to_path_buf(), names);
            let user = TargetLogin {
                email: "user@example.test".into(),
                login: None,
                secret: None,
                users_file_line: 2,
            };
            let mailbox = root.path().join("user@example.test");
            let mut s = target.open(&user).await.unwrap();
            let dir = s.ensure_folder(&folder, None).await.unwrap();
            assert_eq!(dir, on_disk, "{names:?}");
            assert!(mailbox.join(on_disk).join("cur").is_dir(), "{names:?}");
            assert!(mailbox.join(on_disk).join("maildirfolder").is_file(), "{names:?}");
            assert!(!mailbox.join(not_on_disk).exists(), "{names:?}");
            let m = message(7, "\\Seen", "Message-ID: <e@x>\r\n\r\nbody");
            let name = s.upload(&dir, &m).await.unwrap();
            assert!(mailbox.join(on_disk).join("cur").join(&name).is_file());
            s.close().await;

            // A fresh session, as the next run: the same folder by its path.
            let mut s = target.open(&user).await.unwrap();
            assert_eq!(s.ensure_folder(&folder, None).await.unwrap(), on_disk);
            let by_path = s.inventory(&folder, None).await.unwrap();
            let by_ref = s.inventory(&folder, Some(&dir)).await.unwrap();
            assert_eq!(by_path, by_ref, "{names:?}");
            assert_eq!(by_path.len(), 1, "{names:?}: {by_path:?}");
            assert_eq!(by_path[0].message_id.as_deref(), Some("<e@x>"));
            assert_eq!(by_path[0].id, format!("cur/{name}"));
            assert_eq!(s.find(&dir, &m).await.unwrap(), Some(name));
            assert_eq!(
                s.compare_content(&folder, None, &by_path[0], &m.raw).await.unwrap(),
                None,
                "{names:?}"
            );
            let entries: Vec<String> = std::fs::read_dir(&mailbox)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.starts_with('.'))
                .collect();
            assert_eq!(entries, [on_disk], "{names:?}: one folder, nothing else");
        }
    }

    fn message(uid: u32, flags: &str, body: &str) -> Upload {
        Upload {
            raw: bytes::Bytes::from(body.to_owned()),
            flags: crate::model::Flags::from_wire(flags),
            internal_date: 1_600_000_000 + i64::from(uid),
            message_id: None,
            key: crate::model::MessageKey {
                user: "user@example.test".into(),
                folder: "INBOX".into(),
                uid_validity: 1_700_000_000,
                uid,
            },
            labels: Vec::new(),
            source_size: body.len() as u64,
        }
    }

    fn session(dir: &Path) -> MaildirSession {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        MaildirSession {
            base: dir.to_path_buf(),
            names: FolderNames::Utf7,
        }
    }

    #[test]
    fn file_names_stay_what_earlier_versions_wrote() {
        // `find` recovers an interrupted run by this name: it must not change.
        // sha256("user@example.test/INBOX/1700000000/42") starts 9de96cd04962402e3a2952c5.
        assert_eq!(
            unique_name(&message(42, "", "x")),
            "1600000042.9de96cd04962402e3a2952c5.cutover"
        );
        let mut m = message(42, "", "x");
        m.internal_date = -5;
        assert_eq!(unique_name(&m), "0.9de96cd04962402e3a2952c5.cutover");
    }

    #[tokio::test]
    async fn upload_many_writes_every_file_into_cur_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = session(dir.path());
        let messages = vec![
            message(1, "\\Seen", "Subject: one\r\n\r\nfirst"),
            message(2, "\\Flagged \\Answered", "Subject: two\r\n\r\nsecond"),
            message(3, "", "Subject: three\r\n\r\nthird"),
        ];
        let results = s.upload_many("", &messages).await;
        let names: Vec<String> = results.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(names.len(), 3);
        for (name, m) in names.iter().zip(&messages) {
            assert_eq!(name, &format!("{}:2,{}", unique_name(m), maildir_flags(&m.flags)));
            let path = dir.path().join("cur").join(name);
            assert_eq!(std::fs::read(&path).unwrap(), m.raw.as_ref());
            let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
            let secs = mtime.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            assert_eq!(secs as i64, m.internal_date);
        }
        assert!(names[0].ends_with(":2,S"));
        assert!(names[1].ends_with(":2,FR"));
        assert!(names[2].ends_with(":2,"));
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        // Found again by key, as after a crash, also once a mail client
        // changed its flags (and so its name).
        assert_eq!(s.find("", &messages[1]).await.unwrap(), Some(names[1].clone()));
        let cur = dir.path().join("cur");
        let renamed = format!("{}:2,FRS", unique_name(&messages[1]));
        std::fs::rename(cur.join(&names[1]), cur.join(&renamed)).unwrap();
        assert_eq!(s.find("", &messages[1]).await.unwrap(), Some(renamed.clone()));
        std::fs::rename(cur.join(&renamed), cur.join(&names[1])).unwrap();
        // A single upload takes the same path and overwrites, not duplicates.
        assert_eq!(s.upload("", &messages[0]).await.unwrap(), names[0]);
        assert_eq!(std::fs::read_dir(dir.path().join("cur")).unwrap().count(), 3);
    }

    /// A flag change renames the file to the letters an upload with the
    /// new flags writes, keeping its unique part, bytes and date; the id
    /// comes back in the form it was given (as `upload` returns it, or as
    /// `inventory` lists it).
    #[tokio::test]
    async fn update_flags_renames_the_file_to_the_new_letters() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = session(dir.path());
        let cur = dir.path().join("cur");
        let m = message(5, "\\Flagged \\Answered Work", "Subject: five\r\n\r\nbody");
        let unique = unique_name(&m);
        let id = s.upload("", &m).await.unwrap();
        assert_eq!(id, format!("{unique}:2,FR"));
        let names = || -> Vec<String> {
            let mut v: Vec<String> = ["cur", "new"]
                .iter()
                .flat_map(|sub| {
                    std::fs::read_dir(dir.path().join(sub))
                        .unwrap()
                        .map(move |e| format!("{sub}/{}", e.unwrap().file_name().to_string_lossy()))
                })
                .collect();
            v.sort();
            v
        };

        // \Seen added, \Flagged taken away; keywords and labels have no
        // place in a Maildir file name, as in an upload.
        let seen = Flags::from_wire("\\Seen \\Answered Clients");
        let id = s.update_flags("", &id, &seen, &["Label".into()]).await.unwrap();
        assert_eq!(id, format!("{unique}:2,RS"));
        assert_eq!(names(), [format!("cur/{id}")]);
        let path = cur.join(&id);
        assert_eq!(std::fs::read(&path).unwrap(), m.raw.as_ref(), "the bytes stay");
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let secs = mtime.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs as i64, m.internal_date, "the date stays");
        assert_eq!(
            s.find("", &m).await.unwrap(),
            Some(id.clone()),
            "found by its key still"
        );

        // The id as inventory lists it; the same flags again change nothing.
        let listed = read_inventory(dir.path()).unwrap();
        assert_eq!(listed[0].id, format!("cur/{id}"));
        let same = s.update_flags("", &listed[0].id, &seen, &[]).await.unwrap();
        assert_eq!(same, listed[0].id);
        let none = s.update_flags("", &same, &Flags::default(), &[]).await.unwrap();
        assert_eq!(none, format!("cur/{unique}:2,"));
        assert_eq!(names(), [none.as_str()]);

        // A mail client renamed it since: found by its unique part.
        std::fs::rename(cur.join(format!("{unique}:2,")), cur.join(format!("{unique}:2,ST"))).unwrap();
        let flagged = s
            .update_flags("", &none, &Flags::from_wire("\\Flagged \\Draft"), &[])
            .await
            .unwrap();
        assert_eq!(flagged, format!("cur/{unique}:2,DF"));
        assert_eq!(names(), [flagged.as_str()]);

        // A file in new/ (no info yet) moves to cur/ with its letters.
        std::fs::write(
            dir.path().join("new/1700000000.delivered.host"),
            b"Subject: new\r\n\r\n",
        )
        .unwrap();
        let moved = s
            .update_flags("", "new/1700000000.delivered.host", &Flags::from_wire("\\Seen"), &[])
            .await
            .unwrap();
        assert_eq!(moved, "cur/1700000000.delivered.host:2,S");
        assert_eq!(names(), [flagged.as_str(), moved.as_str()]);

        // Gone: this message's failure, not the run's.
        std::fs::remove_file(cur.join("1700000000.delivered.host:2,S")).unwrap();
        let e = s
            .update_flags("", &moved, &Flags::from_wire("\\Flagged"), &[])
            .await
            .unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Item, "{e:?}");
        assert!(e.message.contains("gone"), "{}", e.message);
        // Not an id of this folder's files.
        for bad in ["../cur/x:2,S", "tmp/x", "cur/", "cur/a/b", ""] {
            let e = s.update_flags("", bad, &Flags::default(), &[]).await.unwrap_err();
            assert_eq!(e.kind, crate::error::ErrorKind::Item, "{bad:?}: {e:?}");
        }
        assert_eq!(names(), [flagged.as_str()]);
        assert!(target_caps().update_flags);
    }

    /// Maildir-only cases beside the conformance suite's: a move that was
    /// done already (the file in the other folder, none left here) is that
    /// move, not a failure; a rename cut short after the folder's own
    /// directory is finished by a second call; a subfolder whose new name
    /// is too long for a directory is shortened as `folder_dir` shortens it;
    /// references that are not folder directories are refused.
    #[tokio::test]
    async fn moves_and_renames_survive_being_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = session(dir.path());
        let tf = |path: &[&str]| TargetFolder {
            anchor: None,
            path: path.iter().map(|p| p.to_string()).collect(),
        };
        let a = s.ensure_folder(&tf(&["A"]), None).await.unwrap();
        let b = s.ensure_folder(&tf(&["B"]), None).await.unwrap();
        let m = message(9, "\\Seen", "Subject: nine\r\n\r\nbody");
        let id = s.upload(&a, &m).await.unwrap();
        let moved = s.move_message(&a, &id, &b).await.unwrap();
        assert_eq!(moved, id);
        assert!(dir.path().join(&b).join("cur").join(&id).is_file());
        assert_eq!(s.move_message(&a, &id, &b).await.unwrap(), id, "done already");
        let listed = format!("cur/{id}");
        assert_eq!(
            s.move_message(&b, &listed, &a).await.unwrap(),
            listed,
            "the id's form kept"
        );
        s.delete_message(&a, &listed).await.unwrap();
        s.delete_message(&a, &listed).await.unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join(&a).join("cur")).unwrap().count(), 0);
        let e = s.move_message(&a, &id, &b).await.unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Item, "gone from both: {e:?}");

        // The folder's own directory renamed, its subfolder's not yet.
        s.ensure_folder(&tf(&["A", "Sub"]), None).await.unwrap();
        std::fs::rename(dir.path().join(".A"), dir.path().join(".C")).unwrap();
        assert_eq!(s.rename_folder(".A", &tf(&["C"])).await.unwrap(), ".C");
        assert!(dir.path().join(".C.Sub/cur").is_dir() && !dir.path().join(".A.Sub").exists());
        let e = s.rename_folder(".A", &tf(&["D"])).await.unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Item, "nothing left to rename: {e:?}");

        // A subfolder's new name too long for one directory entry.
        let long = "L".repeat(200);
        s.ensure_folder(&tf(&["C", "Sub", &"S".repeat(60)]), None)
            .await
            .unwrap();
        let new = s.rename_folder(".C", &tf(&[&long])).await.unwrap();
        let child = folder_dir(&tf(&[&long, "Sub", &"S".repeat(60)]), FolderNames::Utf7);
        assert!(child.len() <= MAX_DIR_NAME && child.contains('~'), "{child}");
        assert!(dir.path().join(&child).join("cur").is_dir(), "{child}");
        assert!(dir.path().join(&new).join("cur").is_dir());
        for bad in ["../x", "x", ".", ".a/b"] {
            let e = s.rename_folder(bad, &tf(&["E"])).await.unwrap_err();
            assert_eq!(e.kind, crate::error::ErrorKind::Item, "{bad:?}: {e:?}");
        }
        assert!(target_caps().move_messages && target_caps().delete && target_caps().rename_folders);
    }

    fn target_caps() -> crate::target::Capabilities {
        MaildirTarget::new(PathBuf::from("/nonexistent"), FolderNames::Utf7).capabilities()
    }

    #[tokio::test]
    async fn a_folder_name_too_long_for_a_directory_is_shortened_not_refused() {
        let root = tempfile::tempdir().unwrap();
        let mut s = MaildirSession {
            base: root.path().to_path_buf(),
            names: FolderNames::Utf7,
        };
        // 120 non-ASCII characters: over 255 bytes in modified UTF-7.
        let long = |last: char| TargetFolder {
            anchor: None,
            path: vec!["Projekte".into(), format!("{}{last}", "Ü".repeat(119))],
        };
        let a = s.ensure_folder(&long('a'), None).await.unwrap();
        let b = s.ensure_folder(&long('b'), None).await.unwrap();
        assert!(a.len() <= MAX_DIR_NAME && b.len() <= MAX_DIR_NAME, "{a}");
        assert_ne!(a, b, "two long names stay two folders");
        assert_eq!(folder_dir(&long('a'), FolderNames::Utf7), a, "always the same name");
        let name = s.upload(&a, &message(1, "", "Subject: x\r\n\r\nbody")).await.unwrap();
        assert!(root.path().join(&a).join("cur").join(name).is_file());
    }

    #[tokio::test]
    async fn a_utf8_folder_name_is_shortened_by_bytes_and_never_mid_character() {
        let root = tempfile::tempdir().unwrap();
        let mut s = MaildirSession {
            base: root.path().to_path_buf(),
            names: FolderNames::Utf8,
        };
        // 100 characters of 3 bytes: 300 bytes in UTF-8. ".Projekt." is 9
        // bytes, so the byte cut (238) falls inside a character.
        let long = |last: char| TargetFolder {
            anchor: None,
            path: vec!["Projekt".into(), format!("{}{last}", "日".repeat(99))],
        };
        // 120 two-byte characters fit in UTF-8 (241 bytes): kept whole.
        let fits = TargetFolder {
            anchor: None,
            path: vec!["Projekte".into(), "Ü".repeat(119) + "a"],
        };
        let whole = s.ensure_folder(&fits, None).await.unwrap();
        assert_eq!(whole, format!(".Projekte.{}a", "Ü".repeat(119)));
        let a = s.ensure_folder(&long('a'), None).await.unwrap();
        let b = s.ensure_folder(&long('b'), None).await.unwrap();
        assert!(a.len() <= MAX_DIR_NAME && b.len() <= MAX_DIR_NAME, "{a}");
        assert!(a.starts_with(".Projekt.日日日") && a.contains('~'), "{a}");
        assert_ne!(a, b, "two long names stay two folders");
        assert_eq!(folder_dir(&long('a'), FolderNames::Utf8), a, "always the same name");
        assert_eq!(s.ensure_folder(&long('a'), None).await.unwrap(), a);
        let name = s.upload(&a, &message(1, "", "Subject: x\r\n\r\nbody")).await.unwrap();
        assert!(root.path().join(&a).join("cur").join(name).is_file());
        assert_eq!(s.inventory(&long('a'), None).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn mail_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let mut s = MaildirSession {
            base: root.path().join("user@example.test"),
            names: FolderNames::Utf7,
        };
        let folder = TargetFolder {
            anchor: None,
            path: vec!["Projects".into()],
        };
        let dir = s.ensure_folder(&folder, None).await.unwrap();
        let name = s
            .upload(&dir, &message(1, "", "Subject: private\r\n\r\nbody"))
            .await
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let mailbox = root.path().join("user@example.test");
        assert_eq!(mode(&mailbox), 0o700, "the mailbox");
        for sub in ["cur", "new", "tmp"] {
            assert_eq!(mode(&mailbox.join(&dir).join(sub)), 0o700, "{sub}/");
        }
        assert_eq!(mode(&mailbox.join(&dir).join("maildirfolder")), 0o600);
        assert_eq!(mode(&mailbox.join(&dir).join("cur").join(&name)), 0o600, "the message");
    }

    #[tokio::test]
    async fn upload_many_stops_at_the_first_failure_and_reports_it_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = session(dir.path());
        let messages = vec![message(1, "", "one"), message(2, "", "two"), message(3, "", "three")];
        // The second message's tmp file cannot be created.
        std::fs::create_dir(dir.path().join("tmp").join(unique_name(&messages[1]))).unwrap();
        let results = s.upload_many("", &messages).await;
        assert_eq!(results.len(), 2, "the third is unsettled: {results:?}");
        let first = results[0].as_ref().unwrap();
        assert!(dir.path().join("cur").join(first).is_file());
        let e = results[1].as_ref().unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Fatal);
        assert!(e.message.contains("cannot create"), "{}", e.message);
        assert!(e.message.contains(&unique_name(&messages[1])), "{}", e.message);
        // Nothing of the second or third reached cur/.
        assert_eq!(s.find("", &messages[1]).await.unwrap(), None);
        assert_eq!(s.find("", &messages[2]).await.unwrap(), None);
        assert!(s.upload_many("", &[]).await.is_empty());
    }

    #[test]
    fn inventory_reads_sizes_message_ids_and_flags_of_cur_and_new() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(
            dir.path().join("cur/1:2,FS"),
            b"Message-ID: <a@x>\r\n\r\nMessage-ID: <body@x>\r\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("new/2"), b"Subject: none\n\nbody").unwrap();
        std::fs::write(dir.path().join("tmp/3"), b"Message-ID: <half-written@x>\r\n").unwrap();
        let mut items = read_inventory(dir.path()).unwrap();
        items.sort_by_key(|i| i.size);
        assert_eq!(
            items,
            vec![
                Inventoried {
                    message_id: None,
                    size: 19,
                    id: "new/2".into(),
                    flags: Flags::default(),
                },
                Inventoried {
                    message_id: Some("<a@x>".into()),
                    size: 43,
                    id: "cur/1:2,FS".into(),
                    flags: Flags::from_wire("\\Flagged \\Seen"),
                },
            ]
        );
        assert!(read_inventory(&dir.path().join("missing")).unwrap().is_empty());
    }

    #[test]
    fn info_letters_are_flags_and_keyword_letters_are_not() {
        assert_eq!(
            info_flags("1700.M1P2.host,S=120,W=124:2,DFRSTab"),
            Flags::from_wire("\\Draft \\Flagged \\Answered \\Seen \\Deleted")
        );
        assert_eq!(info_flags("1700.x:2,"), Flags::default());
        assert_eq!(info_flags("1700.x"), Flags::default(), "new/: no info");
        assert_eq!(info_flags("1700.x:1,S"), Flags::default(), "experimental info");
    }
}
