//! The Maildir target: one Maildir++ tree per mailbox under the configured
//! path, one file per message with its flags in the name and its
//! INTERNALDATE as mtime. File names derive from the message's stable key,
//! so storing a message twice overwrites rather than duplicates.

use std::path::{Path, PathBuf};

use futures::FutureExt;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::imap::utf7;
use crate::model::message_id_from_header;
use crate::model::{FolderRole, TargetFolder, Upload};
use crate::roster::UserJob;
use crate::target::{Inventoried, Target, TargetSession};
use crate::transform::maildir_flags;

pub struct MaildirTarget {
    root: PathBuf,
}

impl MaildirTarget {
    pub fn new(root: PathBuf) -> MaildirTarget {
        MaildirTarget { root }
    }
}

impl Target for MaildirTarget {
    fn open<'a>(&'a self, user: &'a UserJob) -> BoxFuture<'a, Result<Box<dyn TargetSession>>> {
        async move {
            if user.email.contains(['/', '\0']) || user.email.starts_with('.') {
                return Err(Error::fatal(format!(
                    "{} cannot be used as a directory name",
                    user.email
                )));
            }
            let session: Box<dyn TargetSession> = Box::new(MaildirSession {
                base: self.root.join(&user.email),
            });
            Ok(session)
        }
        .boxed()
    }

    fn describe(&self) -> String {
        format!("Maildir {}", self.root.display())
    }
}

struct MaildirSession {
    base: PathBuf,
}

/// Maildir++ folder directory name: ".Sent", ".Archive.2023"; the inbox is
/// the base itself. '.' inside a name becomes '_' (it is the separator).
fn folder_dir(folder: &TargetFolder) -> String {
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
    parts.extend(folder.path.iter().map(|p| utf7::encode(&p.replace(['.', '/'], "_"))));
    if parts.is_empty() {
        String::new()
    } else {
        format!(".{}", parts.join("."))
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    let msg = format!("{what} {}: {e}", path.display());
    if e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) {
        Error::fatal(format!("{msg} (disk full: free space and run again)"))
    } else {
        Error::fatal(msg)
    }
}

fn unique_name(message: &Upload) -> String {
    let digest = Sha256::digest(message.key.as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}.{hex}.cutover", message.internal_date.max(0))
}

impl TargetSession for MaildirSession {
    fn ensure_folder<'a>(
        &'a mut self,
        folder: &'a TargetFolder,
        _known: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String>> {
        async move {
            let dir = folder_dir(folder);
            let path = self.base.join(&dir);
            for sub in ["cur", "new", "tmp"] {
                let p = path.join(sub);
                tokio::fs::create_dir_all(&p)
                    .await
                    .map_err(|e| io("cannot create", &p, e))?;
            }
            if !dir.is_empty() {
                let marker = path.join("maildirfolder");
                tokio::fs::write(&marker, b"")
                    .await
                    .map_err(|e| io("cannot create", &marker, e))?;
            }
            Ok(dir)
        }
        .boxed()
    }

    fn upload<'a>(&'a mut self, folder: &'a str, message: &'a Upload) -> BoxFuture<'a, Result<String>> {
        async move {
            let dir = self.base.join(folder);
            let unique = unique_name(message);
            let name = format!("{unique}:2,{}", maildir_flags(&message.flags));
            let tmp = dir.join("tmp").join(&unique);
            let dest = dir.join("cur").join(&name);
            let raw = message.raw.clone();
            let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(message.internal_date.max(0) as u64);
            let (tmp2, dest2) = (tmp.clone(), dest.clone());
            tokio::task::spawn_blocking(move || -> std::result::Result<(), (String, PathBuf, std::io::Error)> {
                let file = std::fs::File::create(&tmp2).map_err(|e| ("cannot create".to_owned(), tmp2.clone(), e))?;
                use std::io::Write;
                let mut w = std::io::BufWriter::new(&file);
                w.write_all(&raw)
                    .map_err(|e| ("cannot write".to_owned(), tmp2.clone(), e))?;
                w.flush().map_err(|e| ("cannot write".to_owned(), tmp2.clone(), e))?;
                drop(w);
                file.set_modified(mtime)
                    .map_err(|e| ("cannot set the date of".to_owned(), tmp2.clone(), e))?;
                std::fs::rename(&tmp2, &dest2).map_err(|e| ("cannot move".to_owned(), dest2.clone(), e))?;
                Ok(())
            })
            .await
            .map_err(|e| Error::fatal(format!("writing a message failed: {e}")))?
            .map_err(|(what, path, e)| io(&what, &path, e))?;
            Ok(name)
        }
        .boxed()
    }

    fn find<'a>(&'a mut self, folder: &'a str, message: &'a Upload) -> BoxFuture<'a, Result<Option<String>>> {
        async move {
            let cur = self.base.join(folder).join("cur");
            let prefix = format!("{}:", unique_name(message));
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

    fn inventory<'a>(
        &'a mut self,
        folder: &'a TargetFolder,
        known: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Inventoried>>> {
        async move {
            let dir = self.base.join(known.map_or_else(|| folder_dir(folder), str::to_owned));
            tokio::task::spawn_blocking(move || read_inventory(&dir))
                .await
                .map_err(|e| Error::fatal(format!("reading a Maildir failed: {e}")))?
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
            let end = find_header_end(&head).unwrap_or(head.len());
            out.push(Inventoried {
                message_id: message_id_from_header(&head[..end]),
                size: meta.len(),
            });
        }
    }
    Ok(out)
}

/// Where the header section ends (the first empty line), CRLF or LF.
fn find_header_end(data: &[u8]) -> Option<usize> {
    let crlf = data.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 2);
    let lf = data.windows(2).position(|w| w == b"\n\n").map(|p| p + 1);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
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
        assert_eq!(folder_dir(&tf(Some(FolderRole::Inbox), &[])), "");
        assert_eq!(folder_dir(&tf(Some(FolderRole::Sent), &[])), ".Sent");
        assert_eq!(folder_dir(&tf(None, &["Archive", "2023"])), ".Archive.2023");
        assert_eq!(folder_dir(&tf(None, &["v1.2", "Écoles"])), ".v1_2.&AMk-coles");
        assert_eq!(folder_dir(&tf(Some(FolderRole::Inbox), &["Lists"])), ".Lists");
    }

    #[test]
    fn inventory_reads_sizes_and_message_ids_of_cur_and_new() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(
            dir.path().join("cur/1:2,S"),
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
                    size: 19
                },
                Inventoried {
                    message_id: Some("<a@x>".into()),
                    size: 43
                },
            ]
        );
        assert!(read_inventory(&dir.path().join("missing")).unwrap().is_empty());
    }
}
