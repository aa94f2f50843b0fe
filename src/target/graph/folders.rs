//! Mail folders: a source folder's place in the target, found or made.
//!
//! INBOX and role folders map to Exchange's well-known folders (`inbox`,
//! `sentitems`, `drafts`, `deleteditems`, `junkemail`, `archive`); roles
//! Exchange has no folder for get a top-level folder of their own. Other
//! folders are found by listing children (Graph has no documented name
//! filter on folders), compared ignoring case as Exchange does, and created
//! level by level; a create that races another session's ends with the
//! folder that session made. The reference the checkpoint keeps is the
//! Graph folder id, or the well-known name.
//!
//! A folder deleted in Exchange during the run is made again once, and its
//! new reference used for the rest of the run by every session of the
//! mailbox.
//!
//! A folder renamed or moved on the source is renamed (`PATCH` of its
//! `displayName`) and moved to its new parent (`POST .../move`) in place,
//! with what it holds; Exchange's well-known folders are neither renamed
//! nor moved (Exchange refuses both: "Cannot move distinguished folder").

use reqwest::Method;

use super::api::{Folder, FolderPage, FolderRename, MoveTo, NewFolder};
use super::client::{Body, Call};
use super::{GraphSession, parse, seg};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{FolderRole, TargetFolder};

/// Folders listed per page.
const FOLDER_PAGE: u32 = 100;

/// The Exchange folder for a role, by well-known name.
fn well_known(role: FolderRole) -> Option<&'static str> {
    Some(match role {
        FolderRole::Inbox => "inbox",
        FolderRole::Sent => "sentitems",
        FolderRole::Drafts => "drafts",
        FolderRole::Trash => "deleteditems",
        FolderRole::Junk => "junkemail",
        FolderRole::Archive | FolderRole::All => "archive",
        FolderRole::Flagged | FolderRole::Important => return None,
    })
}

/// Exchange's well-known folder names (learn.microsoft.com/graph/api/resources/mailfolder).
const WELL_KNOWN_NAMES: [&str; 17] = [
    "archive",
    "clutter",
    "conflicts",
    "conversationhistory",
    "deleteditems",
    "drafts",
    "inbox",
    "junkemail",
    "localfailures",
    "msgfolderroot",
    "outbox",
    "recoverableitemsdeletions",
    "scheduled",
    "searchfolders",
    "sentitems",
    "serverfailures",
    "syncissues",
];

fn is_well_known(reference: &str) -> bool {
    WELL_KNOWN_NAMES.iter().any(|n| n.eq_ignore_ascii_case(reference))
}

/// A top-level folder for roles Exchange has no folder for.
fn role_folder_name(role: FolderRole) -> &'static str {
    match role {
        FolderRole::Flagged => "Starred",
        FolderRole::Important => "Important",
        _ => "Archive",
    }
}

/// Where resolving a target folder starts (a well-known folder, or the
/// root when `None`) and the names to walk down from there.
fn start_of(folder: &TargetFolder) -> (Option<String>, Vec<String>) {
    let mut path: Vec<String> = folder.path.clone();
    let mut parent = None;
    if let Some(role) = folder.anchor {
        match well_known(role) {
            Some(name) => parent = Some(name.to_owned()),
            None => path.insert(0, role_folder_name(role).to_owned()),
        }
    }
    (parent, path)
}

impl GraphSession {
    /// `ensure_folder`: the reference the checkpoint knows, else the folder
    /// found or made; either way remembered, should it have to be made
    /// again.
    pub(super) async fn ensure(&mut self, folder: &TargetFolder, known: Option<&str>) -> Result<String> {
        let reference = match known {
            Some(k) => k.to_owned(),
            None => self.resolve(folder).await?,
        };
        self.remember_folder(&reference, folder);
        Ok(reference)
    }

    /// The reference for a target folder, creating what is missing.
    pub(super) async fn resolve(&mut self, folder: &TargetFolder) -> Result<String> {
        let (mut parent, path) = start_of(folder);
        // For messages: the path as the admin knows it, from the anchor.
        let anchor = parent.clone();
        for (depth, name) in path.iter().enumerate() {
            let below = path[..=depth].join("/");
            let display = match &anchor {
                Some(a) => format!("{a}/{below}"),
                None => below,
            };
            parent = Some(self.child(parent.as_deref(), name, &display).await?);
        }
        parent.ok_or_else(|| Error::fatal(format!("target folder {} has no name", folder.display())))
    }

    /// The id of folder `name` under `parent` (the root when `None`),
    /// created if missing.
    async fn child(&mut self, parent: Option<&str>, name: &str, display: &str) -> Result<String> {
        if name.trim().is_empty() {
            return Err(Error::refused(format!(
                "folder {display} has an empty name, which Exchange does not allow; its messages are skipped"
            )));
        }
        let key = (parent.unwrap_or("").to_owned(), name.to_lowercase());
        if let Some(id) = self.children.get(&key) {
            return Ok(id.clone());
        }
        let collection = match parent {
            Some(p) => format!("{}/mailFolders/{}/childFolders", self.users, seg(p)),
            None => format!("{}/mailFolders", self.users),
        };
        if let Some(id) = self.list_children(parent, &collection, name).await? {
            return Ok(id);
        }
        let body = serde_json::to_vec(&NewFolder {
            display_name: name,
            is_hidden: false,
        })
        .expect("serializes");
        let what = format!("create folder {display}");
        let call = Call {
            method: Method::POST,
            url: collection.clone(),
            body: Body::Json(body.into()),
            what: &what,
            authorized: true,
            idempotent: false,
        };
        let mut attempt = 0;
        loop {
            match self.send(&call).await {
                Ok(reply) => {
                    let folder: Folder = parse(&reply.body, &what)?;
                    self.children.insert(key, folder.id.clone());
                    return Ok(folder.id);
                }
                // Another session (or an earlier, interrupted attempt)
                // created it meanwhile.
                Err(f) if f.status == Some(409) || f.code == "ErrorFolderExists" => {
                    return self.list_children(parent, &collection, name).await?.ok_or_else(|| {
                        Error::transient(format!(
                            "{what}: Exchange says it exists but does not list it; retrying"
                        ))
                    });
                }
                Err(f) if f.maybe_applied && f.error.is_retryable() => {
                    if let Some(id) = self.list_children(parent, &collection, name).await? {
                        return Ok(id);
                    }
                    attempt += 1;
                    match self.inner.http.retry.delay(attempt, &f.error) {
                        Some(d) if !matches!(f.error.kind, ErrorKind::Throttled(_)) => tokio::time::sleep(d).await,
                        Some(_) => {}
                        None => return Err(f.error),
                    }
                }
                Err(f) if f.error.kind == ErrorKind::Item => {
                    return Err(Error::refused(format!(
                        "Exchange refused to create folder {display} ({}); its messages are skipped: rename the source folder or exclude it",
                        f.error.message.trim_start_matches(&format!("{what}: ")),
                    )));
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    /// The reference of a target folder that already exists, without
    /// creating anything: `None` when some level of it is missing.
    pub(super) async fn existing(&mut self, folder: &TargetFolder) -> Result<Option<String>> {
        let (mut parent, path) = start_of(folder);
        for name in &path {
            let key = (parent.clone().unwrap_or_default(), name.to_lowercase());
            if let Some(id) = self.children.get(&key) {
                parent = Some(id.clone());
                continue;
            }
            let collection = match &parent {
                Some(p) => format!("{}/mailFolders/{}/childFolders", self.users, seg(p)),
                None => format!("{}/mailFolders", self.users),
            };
            match self.list_children(parent.as_deref(), &collection, name).await? {
                Some(id) => parent = Some(id),
                None => return Ok(None),
            }
        }
        Ok(parent)
    }

    /// Lists the children of `parent` page by page (caching them all) and
    /// returns the one called `name`, compared as Exchange does, ignoring
    /// case.
    async fn list_children(&mut self, parent: Option<&str>, collection: &str, name: &str) -> Result<Option<String>> {
        let wanted = name.to_lowercase();
        let parent_key = parent.unwrap_or("").to_owned();
        let mut url = format!("{collection}?$top={FOLDER_PAGE}&$select=id,displayName");
        let mut found = None;
        loop {
            let reply = self.send(&Call::get(url, "list folders")).await?;
            let page: FolderPage = parse(&reply.body, "list folders")?;
            for f in page.value {
                let lower = f.display_name.to_lowercase();
                if lower == wanted && found.is_none() {
                    found = Some(f.id.clone());
                }
                self.children.insert((parent_key.clone(), lower), f.id);
            }
            match page.next_link {
                Some(next) if found.is_none() => url = self.same_origin(next)?,
                _ => return Ok(found),
            }
        }
    }
    /// The folder reference to use now for `folder` (it may have been made
    /// again during the run).
    pub(super) fn current_folder(&self, folder: &str) -> String {
        let moved = self.mailbox.moved.lock().unwrap_or_else(|p| p.into_inner());
        moved.get(folder).cloned().unwrap_or_else(|| folder.to_owned())
    }

    pub(super) fn remember_folder(&self, reference: &str, folder: &TargetFolder) {
        let mut paths = self.mailbox.paths.lock().unwrap_or_else(|p| p.into_inner());
        paths.insert(reference.to_owned(), folder.clone());
    }

    /// Whether the folder a reference names exists.
    pub(super) async fn folder_exists(&self, reference: &str) -> Result<bool> {
        Ok(self.folder(reference, "id").await?.is_some())
    }

    /// The folder a reference names, with the properties `select` asks for;
    /// `None` when it does not exist.
    async fn folder(&self, reference: &str, select: &str) -> Result<Option<Folder>> {
        let url = format!("{}/mailFolders/{}?$select={select}", self.users, seg(reference));
        match self.send(&Call::get(url, "read folder")).await {
            Ok(reply) => Ok(Some(parse(&reply.body, "read folder")?)),
            Err(f) if f.code == "ErrorItemNotFound" => Ok(None),
            Err(f) => Err(f.error),
        }
    }

    /// `rename_folder`: the folder `known` names gets the last name of
    /// `to`'s path (PATCH `displayName`) and, where its parent differs, is
    /// moved below the folder the rest of the path names (made where
    /// missing). Its id, what it holds and its subfolders' ids stay as they
    /// are in Exchange; the id the move answers with is returned all the
    /// same. Checked before anything changes: a well-known folder, a folder
    /// that is gone, a destination inside the folder itself and another
    /// folder of that name at the destination are item errors.
    pub(super) async fn rename(&mut self, known: &str, to: &TargetFolder) -> Result<String> {
        let known = self.current_folder(known);
        let refuse = |why: &str| Error::item(format!("target folder cannot be renamed to {}: {why}", to.display()));
        if is_well_known(&known) {
            return Err(refuse(&format!(
                "{known} is one of Exchange's well-known folders, which are neither renamed nor moved"
            )));
        }
        let (start, path) = start_of(to);
        let Some((name, parents)) = path.split_last() else {
            return Err(refuse("that is one of Exchange's well-known folders"));
        };
        if name.trim().is_empty() {
            return Err(refuse("an empty name, which Exchange does not allow"));
        }
        let Some(current) = self.folder(&known, "id,displayName,parentFolderId").await? else {
            return Err(refuse("it no longer exists in the mailbox"));
        };
        // The new parent, made where missing; never the folder itself or
        // one below it.
        let mut parent = start.clone();
        for (depth, level) in parents.iter().enumerate() {
            let display = std::iter::once(start.clone().unwrap_or_default())
                .chain(parents[..=depth].iter().cloned())
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join("/");
            let id = self.child(parent.as_deref(), level, &display).await?;
            if id == current.id {
                return Err(refuse("a folder cannot be moved into itself"));
            }
            parent = Some(id);
        }
        let destination = parent.clone().unwrap_or_else(|| "msgfolderroot".to_owned());
        let destination_id = if is_well_known(&destination) {
            match self.folder(&destination, "id").await? {
                Some(f) => f.id,
                None => return Err(refuse(&format!("the mailbox has no {destination} folder"))),
            }
        } else {
            destination.clone()
        };
        let collection = match &parent {
            Some(p) => format!("{}/mailFolders/{}/childFolders", self.users, seg(p)),
            None => format!("{}/mailFolders", self.users),
        };
        if let Some(other) = self.list_children(parent.as_deref(), &collection, name).await?
            && other != current.id
        {
            return Err(refuse("a folder of that name exists there already"));
        }

        let failed = |f: super::failure::Failure| {
            if f.status == Some(409) || f.code == "ErrorFolderExists" {
                refuse("a folder of that name exists there already")
            } else if f.error.kind == ErrorKind::Item {
                refuse(&f.error.message)
            } else {
                f.error
            }
        };
        if current.display_name != *name {
            let body = serde_json::to_vec(&FolderRename { display_name: name }).expect("serializes");
            let call = Call {
                method: Method::PATCH,
                url: format!("{}/mailFolders/{}", self.users, seg(&current.id)),
                body: Body::Json(body.into()),
                what: "rename folder",
                authorized: true,
                idempotent: true,
            };
            self.send(&call).await.map_err(failed)?;
        }
        let mut id = current.id.clone();
        if current.parent_folder_id.as_deref() != Some(destination_id.as_str()) {
            let body = serde_json::to_vec(&MoveTo {
                destination_id: &destination,
            })
            .expect("serializes");
            // Safe to repeat: a folder moved already is moved to where it is.
            let call = Call {
                method: Method::POST,
                url: format!("{}/mailFolders/{}/move", self.users, seg(&current.id)),
                body: Body::Json(body.into()),
                what: "move folder",
                authorized: true,
                idempotent: true,
            };
            let reply = self.send(&call).await.map_err(failed)?;
            id = parse::<Folder>(&reply.body, "move folder")?.id;
        }
        self.forget_folder(&known, &current.id, &id, to);
        self.children
            .insert((parent.unwrap_or_default(), name.to_lowercase()), id.clone());
        Ok(id)
    }

    /// After a rename: this session's and the mailbox's records of the
    /// folder (and of those below it) follow it to its new place.
    fn forget_folder(&mut self, reference: &str, old_id: &str, new_id: &str, to: &TargetFolder) {
        self.children
            .retain(|(parent, _), id| id != old_id && id != reference && (old_id == new_id || parent != old_id));
        let mut paths = self.mailbox.paths.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = paths.remove(reference) {
            for folder in paths.values_mut() {
                if folder.anchor == old.anchor
                    && folder.path.starts_with(&old.path)
                    && folder.path.len() > old.path.len()
                {
                    let rest = folder.path.split_off(old.path.len());
                    *folder = TargetFolder {
                        anchor: to.anchor,
                        path: to.path.iter().cloned().chain(rest).collect(),
                    };
                }
            }
        }
        paths.insert(new_id.to_owned(), to.clone());
        drop(paths);
        if new_id != reference {
            self.mailbox
                .moved
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(reference.to_owned(), new_id.to_owned());
        }
    }

    /// The folder behind `reference` is gone from Exchange: make it again
    /// and use the new one for the rest of the run.
    pub(super) async fn recreate_folder(&mut self, reference: &str) -> Result<Option<String>> {
        let known = {
            let paths = self.mailbox.paths.lock().unwrap_or_else(|p| p.into_inner());
            paths.get(reference).cloned()
        };
        let Some(folder) = known else { return Ok(None) };
        self.children.retain(|_, id| id != reference);
        let fresh = self.resolve(&folder).await?;
        if fresh == reference {
            return Ok(None);
        }
        tracing::warn!(user = %self.email, folder = %folder.display(), "the target folder was deleted in Exchange during the run; created it again");
        self.remember_folder(&fresh, &folder);
        self.mailbox
            .moved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(reference.to_owned(), fresh.clone());
        Ok(Some(fresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_map_to_well_known_folders() {
        assert_eq!(well_known(FolderRole::Inbox), Some("inbox"));
        assert_eq!(well_known(FolderRole::Sent), Some("sentitems"));
        assert_eq!(well_known(FolderRole::Drafts), Some("drafts"));
        assert_eq!(well_known(FolderRole::Trash), Some("deleteditems"));
        assert_eq!(well_known(FolderRole::Junk), Some("junkemail"));
        assert_eq!(well_known(FolderRole::Archive), Some("archive"));
        assert_eq!(well_known(FolderRole::Flagged), None);
    }
}
