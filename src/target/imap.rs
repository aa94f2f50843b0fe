//! The IMAP target: APPEND with the source's flags and INTERNALDATE, the
//! bytes untouched. Role folders map to the target's own Sent, Drafts,
//! Trash, Junk and Archive (found by SPECIAL-USE, else by name, else
//! created), other folders are created with the target's delimiter. A
//! resync's flag changes are a `UID STORE ... FLAGS` on the copy, by the
//! UID its APPENDUID gave; a copy filed elsewhere is moved with `UID MOVE`
//! (or `UID COPY` and a `UID EXPUNGE` of that UID alone), its new UID read
//! from COPYUID; a copy deleted on the source is expunged by UID; a
//! renamed folder is a `RENAME`.

use std::collections::HashMap;
use std::sync::Arc;

use async_imap::imap_proto::{AttributeValue, MailboxDatum, Response, ResponseCode};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio_rustls::rustls;

use crate::error::{Error, ErrorKind, Result};
use crate::imap::{
    Conn, Endpoint, Personal, format_internal_date, parse_internal_date, quote, says_nonexistent as nonexistent,
};
use crate::model::TargetLogin;
use crate::model::role_from_name;
use crate::model::{Flags, FolderRole, TargetFolder, Upload};
use crate::oauth::TokenSource;
use crate::secret::Secret;
use crate::target::{Inventoried, Pending, Target, TargetSession};
use crate::transform::{append_flags, escape_separator};
use crate::utf7;

pub struct ImapTarget {
    endpoint: Endpoint,
    tls: Arc<rustls::ClientConfig>,
    login: Option<String>,
    password: Option<Secret>,
    /// `auth = "xoauth2"`: SASL XOAUTH2 with these tokens.
    tokens: Option<TokenSource>,
}

impl ImapTarget {
    /// Logs in with OAuth tokens (SASL XOAUTH2) as `login` (default: the
    /// user's EmailAddress) instead of a password.
    pub fn with_tokens(mut self, tokens: TokenSource) -> ImapTarget {
        self.tokens = Some(tokens);
        self
    }

    pub fn new(endpoint: Endpoint, login: Option<String>, password: Option<Secret>) -> Result<ImapTarget> {
        let tls = crate::imap::tls_config(endpoint.ca_file.as_ref())?;
        Ok(ImapTarget {
            endpoint,
            tls,
            login,
            password,
            tokens: None,
        })
    }

    fn credentials(&self, user: &TargetLogin) -> Result<(String, Secret)> {
        match (&self.login, &self.password) {
            (Some(template), Some(password)) => Ok((template.replace("{email}", &user.email), password.clone())),
            _ => match (&user.login, &user.secret) {
                (Some(u), Some(p)) => Ok((u.clone(), p.clone())),
                _ => Err(Error::fatal(format!(
                    "no target login for {} (users file line {}): fill TargetUserName and TargetPassword, or set [target] login and password_env",
                    user.email, user.users_file_line
                ))),
            },
        }
    }
}

impl Target for ImapTarget {
    fn open<'a>(&'a self, user: &'a TargetLogin) -> Pending<'a, Box<dyn TargetSession>> {
        async move {
            let mut conn = match &self.tokens {
                Some(tokens) => {
                    let login = match &self.login {
                        Some(template) => template.replace("{email}", &user.email),
                        None => user.login.clone().unwrap_or_else(|| user.email.clone()),
                    };
                    let token = tokens.token(&login).await.map_err(|e| e.context("target"))?;
                    let conn = Conn::login_xoauth2(&self.endpoint, &self.tls, &login, &token).await;
                    if conn.is_err() {
                        tokens.reject(&login, &token).await;
                    }
                    conn.map_err(|e| e.context("target"))?
                }
                None => {
                    let (login, password) = self.credentials(user)?;
                    Conn::login(&self.endpoint, &self.tls, &login, &password)
                        .await
                        .map_err(|e| e.context("target"))?
                }
            };
            let listed = conn.list().await?;
            // Folders go where a mail client looks for them: below the
            // personal namespace's prefix (`INBOX.` on Courier, Cyrus with
            // Debian's config, cPanel), with its separator.
            let announced = conn
                .namespace()
                .await
                .map_err(|e| e.context("target: reading NAMESPACE"))?;
            let personal = Personal::new(announced.as_ref(), &listed);
            let delimiter = personal.delimiter.unwrap_or('/');
            let mut roles: HashMap<FolderRole, Vec<String>> = HashMap::new();
            let mut existing = std::collections::HashSet::new();
            let own: Vec<(&crate::imap::ListedFolder, Vec<String>)> = listed
                .iter()
                .filter_map(|f| {
                    let path = personal.relative_path(&f.wire_name, Some(&delimiter.to_string()))?;
                    Some((f, path))
                })
                .collect();
            for f in &listed {
                existing.insert(f.wire_name.clone());
            }
            for (f, path) in &own {
                let role = f.attributes.iter().find_map(|a| match a.as_str() {
                    "\\sent" => Some(FolderRole::Sent),
                    "\\drafts" => Some(FolderRole::Drafts),
                    "\\trash" => Some(FolderRole::Trash),
                    "\\junk" => Some(FolderRole::Junk),
                    "\\archive" => Some(FolderRole::Archive),
                    _ => None,
                });
                if let Some(role) = role {
                    roles.entry(role).or_insert_with(|| path.clone());
                }
            }
            // Servers without SPECIAL-USE: recognise the usual names at the
            // top of the personal namespace.
            for (_, path) in &own {
                if let Some(role) = role_from_name(path) {
                    roles.entry(role).or_insert_with(|| path.clone());
                }
            }
            let session: Box<dyn TargetSession> = Box::new(ImapTargetSession {
                conn,
                personal,
                delimiter,
                roles,
                existing,
                selected: None,
                selected_validity: 0,
                selected_permanent: None,
                examined: None,
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
        format!("IMAP {}:{}", self.endpoint.host, self.endpoint.port)
    }
}

struct ImapTargetSession {
    conn: Conn,
    /// The personal namespace: where this mailbox's folders are created.
    personal: Personal,
    delimiter: char,
    /// The target's own folder for each role, relative to the personal
    /// namespace.
    roles: HashMap<FolderRole, Vec<String>>,
    existing: std::collections::HashSet<String>,
    selected: Option<String>,
    /// UIDVALIDITY of the selected folder: ids are `UIDVALIDITY:UID`, as
    /// APPENDUID gives them.
    selected_validity: u32,
    /// What the selected folder's PERMANENTFLAGS allow (`None`: no folder
    /// selected yet).
    selected_permanent: Option<Permanent>,
    /// The folder `inventory` opened read-only (EXAMINE), which
    /// `compare_content` reads from; cleared when `find` selects another.
    examined: Option<String>,
}

fn default_role_name(role: FolderRole) -> &'static str {
    match role {
        FolderRole::Inbox => "INBOX",
        FolderRole::Sent => "Sent",
        FolderRole::Drafts => "Drafts",
        FolderRole::Trash => "Trash",
        FolderRole::Junk => "Junk",
        FolderRole::Archive | FolderRole::All => "Archive",
        FolderRole::Flagged => "Starred",
        FolderRole::Important => "Important",
    }
}

impl ImapTargetSession {
    /// The wire name a target folder gets on this server: below the
    /// personal namespace, role folders at the target's own folder for
    /// that role.
    fn wire_name(&self, folder: &TargetFolder) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(role) = folder.anchor {
            match (role, self.roles.get(&role)) {
                (FolderRole::Inbox, _) => parts.push("INBOX".to_owned()),
                (_, Some(path)) => parts.extend(path.iter().cloned()),
                (_, None) => parts.push(default_role_name(role).to_owned()),
            }
        }
        parts.extend(folder.path.iter().map(|p| escape_separator(p, self.delimiter)));
        self.personal.wire_name(&parts)
    }

    /// The refusal of a message larger than the server's APPENDLIMIT.
    fn over_append_limit(&self, message: &Upload) -> Option<Error> {
        let limit = self.conn.append_limit()?;
        let size = message.raw.len() as u64;
        (size > limit).then(|| {
            Error::refused(format!(
                "target refused the message size: {size} bytes is over the server's APPENDLIMIT of {limit}; raise the target's message size limit and run again to copy it"
            ))
        })
    }

    async fn create_with_parents(&mut self, wire: &str) -> Result<()> {
        let decoded = utf7::decode(wire);
        let parts: Vec<&str> = decoded.split(self.delimiter).collect();
        for depth in 1..=parts.len() {
            let name = utf7::encode(&parts[..depth].join(&self.delimiter.to_string()));
            // INBOX, and the namespace's own root (`INBOX.` is INBOX),
            // are there already.
            let namespace_root = self.personal.prefix.trim_end_matches(self.delimiter);
            if self.existing.contains(&name) || name.eq_ignore_ascii_case("INBOX") || name == namespace_root {
                continue;
            }
            match self.conn.command(&format!("CREATE {}", quote(&name))).await {
                Ok(_) => {}
                // Created meanwhile by another session, or it already existed.
                Err(e) if e.kind == ErrorKind::Item && already_exists(&e.message) => {}
                // A folder the server will not create (a reserved name,
                // no permission, a name it cannot hold) costs that folder,
                // not the mailbox: its messages fail with this reason and
                // are tried again on every run.
                Err(e) if e.kind == ErrorKind::Item => {
                    let advice = if reserved_name(&e.message) {
                        "the name is reserved on the target"
                    } else {
                        "check the target login's rights and the server's folder namespace"
                    };
                    return Err(Error::refused(format!(
                        "target refused to create folder {}: {} ({advice})",
                        utf7::decode(&name),
                        e.message
                    )));
                }
                Err(e) => return Err(e),
            }
            self.existing.insert(name);
        }
        Ok(())
    }
}

impl ImapTargetSession {
    /// SELECTs `folder` read-write, unless it is selected and its
    /// PERMANENTFLAGS are known: `update_flags` needs both the UIDVALIDITY
    /// and what flags the folder keeps, which `Conn::select` does not
    /// report, so the SELECT's answers are read here.
    async fn select_for_store(&mut self, folder: &str) -> Result<()> {
        if self.selected.as_deref() == Some(folder) && self.selected_permanent.is_some() {
            return Ok(());
        }
        self.selected = None;
        self.examined = None;
        let state = self
            .conn
            .select(folder)
            .await
            .map_err(|e| e.context(format!("opening target folder {}", utf7::decode(folder))))?;
        self.selected = Some(folder.to_owned());
        self.selected_validity = state.uid_validity;
        self.selected_permanent = Some(Permanent::of(state.permanent_flags.as_deref()));
        Ok(())
    }
}

impl ImapTargetSession {
    /// The copy an id names in `folder`, selected read-write: its UID, once
    /// the folder's UIDVALIDITY is known to be the id's. `what` starts the
    /// error messages ("the copy cannot be moved").
    async fn select_copy(&mut self, folder: &str, id: &str, what: &str) -> Result<u32> {
        let Some((validity, uid)) = parse_id(id) else {
            return Err(Error::item(if id.is_empty() {
                format!(
                    "{what}: the target server gave no UID for it when it was stored (no APPENDUID), so it cannot be addressed"
                )
            } else {
                format!("{what}: {id:?} is not an IMAP id (UIDVALIDITY:UID)")
            }));
        };
        self.select_for_store(folder).await?;
        if self.selected_validity != validity {
            return Err(Error::item(format!(
                "{what}: target folder {} has UIDVALIDITY {} now, not {validity} as when the copy was stored, so the copy can no longer be addressed by its UID",
                utf7::decode(folder),
                self.selected_validity
            )));
        }
        Ok(uid)
    }

    /// Runs a command that names `to` as its destination (`UID MOVE`, `UID
    /// COPY`), making `to` again once when the server answers [TRYCREATE]
    /// (deleted on the target since it was made), as `upload` does.
    async fn command_to_folder(&mut self, command: &str, to: &str) -> Result<Vec<Response<'static>>> {
        match self.conn.command(command).await {
            Err(e) if e.kind == ErrorKind::Item && e.message.to_ascii_uppercase().contains("[TRYCREATE]") => {
                self.existing.remove(to);
                self.create_with_parents(to).await?;
                self.conn.command(command).await
            }
            r => r,
        }
    }

    /// `move_message`: `UID MOVE` where the server offers MOVE, else `UID
    /// COPY`, `UID STORE +FLAGS.SILENT (\Deleted)` and `UID EXPUNGE` of
    /// the one UID (UIDPLUS). The new UID comes from COPYUID, which the
    /// server sends in an untagged OK before the EXPUNGE answers of a MOVE,
    /// and in the tagged OK of a COPY.
    async fn move_copy(&mut self, from: &str, id: &str, to: &str) -> Result<String> {
        const WHAT: &str = "the copy cannot be moved";
        let can_move = self.conn.has_capability("MOVE");
        let uidplus = self.conn.has_capability("UIDPLUS");
        if !can_move && !uidplus {
            // COPY then a plain EXPUNGE would also remove every message
            // another client marked \Deleted in the folder.
            return Err(Error::item(format!(
                "{WHAT}: the target server offers neither MOVE (RFC 6851) nor UIDPLUS (RFC 4315), so it cannot remove the copy from {} without expunging other messages",
                utf7::decode(from)
            )));
        }
        let uid = self.select_copy(from, id, WHAT).await?;
        if from == to {
            return Ok(id.to_owned());
        }
        let gone = || {
            Error::item(format!(
                "{WHAT}: target folder {} no longer holds it (UID {uid} was expunged)",
                utf7::decode(from)
            ))
        };
        if can_move {
            let answers = self
                .command_to_folder(&format!("UID MOVE {uid} {}", quote(to)), to)
                .await
                .map_err(|e| e.context(format!("moving a copy to target folder {}", utf7::decode(to))))?;
            if let Some((validity, new)) = copy_uid(&answers, uid) {
                return Ok(format!("{validity}:{new}"));
            }
            // No COPYUID: moved without saying where (a server without
            // UIDPLUS), or nothing was there to move (a UID set naming no
            // message is not an error).
            return if answers.iter().any(|r| matches!(r, Response::Expunge(_))) {
                Ok(String::new())
            } else {
                Err(gone())
            };
        }
        let answers = self
            .command_to_folder(&format!("UID COPY {uid} {}", quote(to)), to)
            .await
            .map_err(|e| e.context(format!("copying a copy to target folder {}", utf7::decode(to))))?;
        // UIDPLUS answers every COPY that copied something with COPYUID.
        let Some((validity, new)) = copy_uid(&answers, uid) else {
            return Err(gone());
        };
        self.expunge_uid(uid).await.map_err(|e| {
            e.context(format!(
                "the copy was copied to target folder {} but not removed from {}; it is in both until the next run",
                utf7::decode(to),
                utf7::decode(from)
            ))
        })?;
        Ok(format!("{validity}:{new}"))
    }

    /// Marks one UID of the selected folder \Deleted and expunges that UID
    /// alone (`UID EXPUNGE`, UIDPLUS): messages other clients marked
    /// \Deleted stay. A UID that is gone is no error.
    async fn expunge_uid(&mut self, uid: u32) -> Result<()> {
        self.conn
            .command(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"))
            .await?;
        self.conn.command(&format!("UID EXPUNGE {uid}")).await?;
        Ok(())
    }

    /// `delete_message`: the one UID expunged (UIDPLUS); a folder or UID
    /// that is gone is no error.
    async fn delete_copy(&mut self, folder: &str, id: &str) -> Result<()> {
        const WHAT: &str = "the copy cannot be deleted";
        if !self.conn.has_capability("UIDPLUS") {
            return Err(Error::item(format!(
                "{WHAT}: the target server does not offer UIDPLUS (RFC 4315), so it cannot expunge the copy from {} without expunging every other message marked \\Deleted there",
                utf7::decode(folder)
            )));
        }
        let uid = match self.select_copy(folder, id, WHAT).await {
            Ok(uid) => uid,
            // The folder is gone, and the copy with it.
            Err(e) if e.kind == ErrorKind::Item && nonexistent(&e.message) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.expunge_uid(uid)
            .await
            .map_err(|e| e.context(format!("deleting a copy in target folder {}", utf7::decode(folder))))
    }

    /// `rename_folder`: missing parents of the new name created, then
    /// `RENAME`; the server renames the subfolders with it, and so are the
    /// session's own records of folders (existing, roles, selected).
    async fn rename(&mut self, known: &str, to: &TargetFolder) -> Result<String> {
        let new = self.wire_name(to);
        if new == known {
            return Ok(new);
        }
        let shown = utf7::decode(known);
        let namespace_root = self.personal.prefix.trim_end_matches(self.delimiter).to_owned();
        for name in [known, new.as_str()] {
            if name.eq_ignore_ascii_case("INBOX") || (!namespace_root.is_empty() && name == namespace_root) {
                return Err(Error::item(format!(
                    "target folder {shown} cannot be renamed to {}: the inbox is neither renamed nor replaced",
                    utf7::decode(&new)
                )));
            }
        }
        if below(&new, known, self.delimiter) {
            return Err(Error::item(format!(
                "target folder {shown} cannot be moved into itself ({})",
                utf7::decode(&new)
            )));
        }
        if let Some((parent, _)) = new.rsplit_once(self.delimiter) {
            self.create_with_parents(parent).await?;
        }
        // The renamed folder (or one below it) must not stay selected.
        let affected = |f: &Option<String>| {
            f.as_deref()
                .is_some_and(|f| f == known || below(f, known, self.delimiter))
        };
        if affected(&self.selected) || affected(&self.examined) {
            if self.conn.has_capability("UNSELECT") {
                self.conn.command("UNSELECT").await?;
            }
            self.selected = None;
            self.selected_permanent = None;
            self.examined = None;
        }
        if let Err(e) = self
            .conn
            .command(&format!("RENAME {} {}", quote(known), quote(&new)))
            .await
        {
            if e.kind != ErrorKind::Item {
                return Err(e);
            }
            let why = if already_exists(&e.message) {
                format!("a folder {} exists already", utf7::decode(&new))
            } else if nonexistent(&e.message) {
                format!("it no longer exists ({})", e.message)
            } else {
                e.message
            };
            return Err(Error::item(format!(
                "target folder {shown} cannot be renamed to {}: {why}",
                utf7::decode(&new)
            )));
        }
        self.existing = self
            .existing
            .drain()
            .map(|name| renamed(&name, known, &new, self.delimiter).unwrap_or(name))
            .collect();
        self.existing.insert(new.clone());
        let delimiter = self.delimiter.to_string();
        if let (Some(old_path), Some(new_path)) = (
            self.personal.relative_path(known, Some(&delimiter)),
            self.personal.relative_path(&new, Some(&delimiter)),
        ) {
            for path in self.roles.values_mut() {
                if path.starts_with(&old_path) {
                    let rest = path.split_off(old_path.len());
                    *path = new_path.iter().cloned().chain(rest).collect();
                }
            }
        }
        Ok(new)
    }
}

/// The new UID of `uid` in a COPYUID answer (RFC 4315: `COPYUID
/// uidvalidity source-set destination-set`, the sets in the same order),
/// with the destination's UIDVALIDITY; an untagged OK (after `UID MOVE`)
/// or the tagged OK (after `UID COPY`).
fn copy_uid(answers: &[Response<'_>], uid: u32) -> Option<(u32, u32)> {
    use async_imap::imap_proto::rfc4315::UidSetMember;
    let expand = |set: &[UidSetMember]| -> Vec<u32> {
        set.iter()
            .flat_map(|m| match m {
                UidSetMember::Uid(u) => *u..=*u,
                UidSetMember::UidRange(r) => r.clone(),
            })
            .take(100_000)
            .collect()
    };
    answers.iter().find_map(|r| {
        let outcome = match r {
            Response::Data { outcome, .. } | Response::Done { outcome, .. } => outcome,
            _ => return None,
        };
        let Some(ResponseCode::CopyUid(validity, source, destination)) = &outcome.code else {
            return None;
        };
        let (source, destination) = (expand(source), expand(destination));
        let at = source.iter().position(|u| *u == uid)?;
        destination.get(at).map(|new| (*validity, *new))
    })
}

/// Whether wire name `name` is below folder `parent` (a subfolder at any
/// depth).
fn below(name: &str, parent: &str, delimiter: char) -> bool {
    name.strip_prefix(parent)
        .is_some_and(|rest| rest.starts_with(delimiter))
}

/// `name` after `old` was renamed to `new`: the folder itself or one below
/// it gets the new prefix (wire names: modified UTF-7 ends a run of
/// encoded characters at the ASCII separator, so levels encode alike);
/// `None` for any other folder.
fn renamed(name: &str, old: &str, new: &str, delimiter: char) -> Option<String> {
    if name == old {
        return Some(new.to_owned());
    }
    below(name, old, delimiter).then(|| format!("{new}{}", &name[old.len()..]))
}

/// What a folder's PERMANENTFLAGS say it keeps across sessions (RFC 3501
/// 7.1): a flag not listed is kept for the session at most, or ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Permanent {
    /// No PERMANENTFLAGS in the SELECT answer: every flag is kept.
    All,
    /// The listed flags, and any keyword when `\*` is among them.
    Listed { flags: Vec<String>, any_keyword: bool },
}

impl Permanent {
    /// From a SELECT's PERMANENTFLAGS (`None`: not sent).
    fn of(listed: Option<&[String]>) -> Permanent {
        match listed {
            None => Permanent::All,
            Some(listed) => Permanent::Listed {
                flags: listed.iter().filter(|f| *f != "\\*").cloned().collect(),
                any_keyword: listed.iter().any(|f| f == "\\*"),
            },
        }
    }

    fn keeps(&self, flag: &str) -> bool {
        match self {
            Permanent::All => true,
            Permanent::Listed { flags, any_keyword } => {
                flags.iter().any(|f| f.eq_ignore_ascii_case(flag)) || (*any_keyword && !flag.starts_with('\\'))
            }
        }
    }
}

/// The flag list a `UID STORE ... FLAGS` sets: what an APPEND of the
/// message carries ([`append_flags`]: no `\Recent`, labels as keywords),
/// less what the folder cannot keep. APPEND sends its list whole and lets
/// the server drop what it does not keep; a STORE of a flag the folder
/// cannot keep may instead hold for this session only or be refused, so it
/// is left out here: the copy ends with what an upload would have left.
fn store_flags(flags: &Flags, labels: &[String], permanent: &Permanent) -> String {
    let all = append_flags(flags, labels);
    all.split_ascii_whitespace()
        .filter(|f| permanent.keeps(f))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A target id as `upload` and `find` give it: `UIDVALIDITY:UID`.
fn parse_id(id: &str) -> Option<(u32, u32)> {
    let (validity, uid) = id.split_once(':')?;
    Some((validity.parse().ok()?, uid.parse().ok().filter(|u| *u != 0)?))
}

fn already_exists(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("[alreadyexists]") || m.contains("already exists")
}

/// Exchange reserves some names ("NO Folder name is reserved" for "Files").
fn reserved_name(message: &str) -> bool {
    message.to_ascii_lowercase().contains("reserved")
}

/// Exchange: "Maximum size of appendable message has been exceeded";
/// RFC 7889 / RFC 5530: [TOOBIG]; Dovecot: "[LIMIT] Mail size is larger
/// than ...".
fn too_big(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("maximum size of appendable message")
        || m.contains("[toobig]")
        || m.contains("message too large")
        || (m.contains("[limit]") && m.contains("size"))
}

/// At most this many look-up candidates are compared (a folder with more
/// copies of one Message-ID on one day than this is not a crash's doing).
const FIND_CANDIDATES: usize = 50;

/// The sizes a stored copy of a `size`-byte upload may be reported at: a
/// server that stores bare LF as CRLF adds a byte a line (about 2% for
/// text, 1.3% for base64), Exchange estimates; 10% and 2 KiB either way.
fn size_window(size: u64) -> (u64, u64) {
    let slack = size / 10 + 2048;
    (size.saturating_sub(slack), size + slack)
}

/// One look-up candidate as the target reports it.
#[derive(Debug, Default)]
struct Stored {
    uid: u32,
    internal_date: Option<i64>,
    size: u64,
    header: Vec<u8>,
}

/// Which stored message is the upload: the same INTERNALDATE and the same
/// header block (line ends aside), the closest size first. `None` when no
/// candidate is the same message, so a different message that shares the
/// Message-ID is never adopted.
fn pick(stored: &[Stored], internal_date: i64, size: u64, header: &[u8]) -> Option<u32> {
    let plain = |h: &[u8]| -> Vec<u8> {
        let mut v: Vec<u8> = h.iter().copied().filter(|&b| b != b'\r').collect();
        while v.last() == Some(&b'\n') {
            v.pop();
        }
        v
    };
    let want = plain(header);
    stored
        .iter()
        .filter(|c| c.internal_date == Some(internal_date) && plain(&c.header) == want)
        .min_by_key(|c| (c.size.abs_diff(size), c.uid))
        .map(|c| c.uid)
}

impl TargetSession for ImapTargetSession {
    /// Creates a scratch folder where migrate creates its top-level folders
    /// (below the personal namespace) and deletes it at once: a server that
    /// refuses (Cyrus with Debian's config refuses top-level names outside
    /// `INBOX.` for a server without NAMESPACE; a login without the create
    /// right) is caught before a migrate.
    fn rehearse_folders(&mut self) -> Pending<'_, Option<String>> {
        async move {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let scratch = self.personal.wire_name(&[format!("cutover-check-{stamp:x}")]);
            let shown = utf7::decode(&scratch);
            if let Err(e) = self.conn.command(&format!("CREATE {}", quote(&scratch))).await {
                return Err(Error::refused(format!(
                    "the target refused to create a folder where migrate puts them ({shown}): {}; give the target login the right to create folders in its mailbox (and room in any folder-count quota), or check the server's folder namespace ({})",
                    e.message,
                    self.personal.describe()
                )));
            }
            if let Err(e) = self.conn.command(&format!("DELETE {}", quote(&scratch))).await {
                return Ok(Some(format!(
                    "folders can be created ({}), but the scratch folder {shown} could not be deleted: {}; delete it by hand",
                    self.personal.describe(),
                    e.message
                )));
            }
            Ok(Some(self.personal.describe()))
        }
        .boxed()
    }

    fn ensure_folder<'a>(&'a mut self, folder: &'a TargetFolder, known: Option<&'a str>) -> Pending<'a, String> {
        async move {
            if let Some(k) = known {
                return Ok(k.to_owned());
            }
            let wire = self.wire_name(folder);
            self.create_with_parents(&wire).await?;
            Ok(wire)
        }
        .boxed()
    }

    fn upload<'a>(&'a mut self, folder: &'a str, message: &'a Upload) -> Pending<'a, String> {
        async move {
            if let Some(refusal) = self.over_append_limit(message) {
                return Err(refusal);
            }
            let flags = append_flags(&message.flags, &message.labels);
            let date = format_internal_date(message.internal_date);
            let mut created = false;
            loop {
                match self.conn.append(folder, &flags, &date, &message.raw).await {
                    Ok(Some((validity, uid))) => return Ok(format!("{validity}:{uid}")),
                    Ok(None) => return Ok(String::new()),
                    Err(e)
                        if e.kind == ErrorKind::Item
                            && e.message.to_ascii_uppercase().contains("[TRYCREATE]")
                            && !created =>
                    {
                        // The folder was deleted on the target since it was
                        // created (or cached by an earlier run).
                        self.existing.remove(folder);
                        self.create_with_parents(folder).await?;
                        created = true;
                    }
                    Err(e) if e.kind == ErrorKind::Item && too_big(&e.message) => {
                        return Err(Error::refused(format!(
                            "target refused the message size: {}; raise the target's message size limit and run again to copy it",
                            e.message
                        )));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        .boxed()
    }

    fn upload_many<'a>(&'a mut self, folder: &'a str, messages: &'a [Upload]) -> BoxFuture<'a, Vec<Result<String>>> {
        async move {
            // A message over the server's APPENDLIMIT is refused here, on
            // its own: sent, it would end the session (Cyrus answers BYE
            // [TOOBIG]) and take the rest of the batch with it.
            if messages.iter().any(|m| self.over_append_limit(m).is_some()) {
                let mut out = Vec::with_capacity(messages.len());
                for m in messages {
                    let r = match self.over_append_limit(m) {
                        Some(refusal) => Err(refusal),
                        None => self.upload(folder, m).await,
                    };
                    let stop = matches!(&r, Err(e) if e.is_retryable() || e.kind == ErrorKind::Fatal);
                    out.push(r);
                    if stop {
                        break;
                    }
                }
                return out;
            }
            let prepared: Vec<(String, String, &[u8])> = messages
                .iter()
                .map(|m| {
                    (
                        append_flags(&m.flags, &m.labels),
                        format_internal_date(m.internal_date),
                        m.raw.as_ref(),
                    )
                })
                .collect();
            let answers = match self.conn.append_many(folder, &prepared).await {
                Ok(a) => a,
                Err(e) => return vec![Err(e)],
            };
            let mut out = Vec::with_capacity(answers.len());
            for (answer, message) in answers.into_iter().zip(messages) {
                out.push(match answer {
                    Ok(Some((validity, uid))) => Ok(format!("{validity}:{uid}")),
                    Ok(None) => Ok(String::new()),
                    // The rare cases (folder gone, size refusal) go through
                    // the single-message path, which handles them.
                    Err(e) if e.kind == ErrorKind::Item => self.upload(folder, message).await,
                    Err(e) => Err(e),
                });
            }
            out
        }
        .boxed()
    }

    fn find<'a>(&'a mut self, folder: &'a str, message: &'a Upload) -> Pending<'a, Option<String>> {
        async move {
            if self.selected.as_deref() != Some(folder) {
                let state = self.conn.select(folder).await?;
                self.examined = None;
                self.selected = Some(folder.to_owned());
                self.selected_validity = state.uid_validity;
                self.selected_permanent = Some(Permanent::of(state.permanent_flags.as_deref()));
            }
            // INTERNALDATE within a day either way (SEARCH dates ignore time
            // and zone), the Message-ID when there is a usable one, and a
            // size near the upload's: servers that normalise line ends
            // (Exchange, bare LF stored as CRLF) report another size than
            // the bytes sent. Then `pick` decides on the exact INTERNALDATE
            // and the header block, which keeps two different messages that
            // share a Message-ID apart.
            let size = message.raw.len() as u64;
            let (low, high) = size_window(size);
            let day = |offset: i64| {
                chrono::DateTime::from_timestamp(message.internal_date + offset * 86_400, 0)
                    .unwrap_or_default()
                    .format("%d-%b-%Y")
                    .to_string()
            };
            let mut query = format!("UID SEARCH SINCE {} BEFORE {} NOT LARGER {high}", day(-1), day(2));
            if low > 0 {
                query.push_str(&format!(" LARGER {}", low - 1));
            }
            if let Some(id) = message.message_id.as_deref()
                && id.is_ascii()
                && !id.contains(['"', '\\', '\r', '\n'])
            {
                query.push_str(&format!(" HEADER Message-ID {}", quote(id)));
            }
            let mut candidates = Vec::new();
            for r in self.conn.command(&query).await? {
                if let Response::MailboxData(MailboxDatum::Search(uids)) = r {
                    candidates.extend(uids);
                }
            }
            if candidates.is_empty() {
                return Ok(None);
            }
            candidates.sort_unstable();
            candidates.truncate(FIND_CANDIDATES);
            let set: Vec<String> = candidates.iter().map(u32::to_string).collect();
            let mut stored = Vec::new();
            self.conn
                .fetch_each(
                    &format!(
                        "UID FETCH {} (UID INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER])",
                        set.join(",")
                    ),
                    |resp| {
                        if let Response::Fetch(_, attrs) = resp {
                            let mut c = Stored::default();
                            for a in attrs {
                                match a {
                                    AttributeValue::Uid(u) => c.uid = *u,
                                    AttributeValue::InternalDate(d) => c.internal_date = parse_internal_date(d),
                                    AttributeValue::Rfc822Size(n) => c.size = u64::from(*n),
                                    AttributeValue::BodySection { data: Some(d), .. } => c.header = d.to_vec(),
                                    _ => {}
                                }
                            }
                            if c.uid != 0 {
                                stored.push(c);
                            }
                        }
                        Ok(())
                    },
                )
                .await?;
            let found = pick(
                &stored,
                message.internal_date,
                size,
                crate::headers::block(&message.raw),
            );
            // The same form of id an upload returns.
            Ok(found.map(|uid| format!("{}:{uid}", self.selected_validity)))
        }
        .boxed()
    }

    /// `UID STORE uid FLAGS (...)` in the copy's folder, selected read-write.
    /// The id's UIDVALIDITY must still be the folder's: after a change the
    /// UID names another message, or none.
    fn update_flags<'a>(
        &'a mut self,
        folder: &'a str,
        id: &'a str,
        flags: &'a Flags,
        labels: &'a [String],
    ) -> Pending<'a, String> {
        async move {
            let Some((validity, uid)) = parse_id(id) else {
                return Err(Error::item(if id.is_empty() {
                    "the copy's flags cannot be changed: the target server gave no UID for it when it was stored (no APPENDUID), so it cannot be addressed".to_owned()
                } else {
                    format!("the copy's flags cannot be changed: {id:?} is not an IMAP id (UIDVALIDITY:UID)")
                }));
            };
            self.select_for_store(folder).await?;
            if self.selected_validity != validity {
                return Err(Error::item(format!(
                    "the copy's flags cannot be changed: target folder {} has UIDVALIDITY {} now, not {validity} as when the copy was stored, so the copy can no longer be addressed by its UID",
                    utf7::decode(folder),
                    self.selected_validity
                )));
            }
            let permanent = self.selected_permanent.clone().unwrap_or(Permanent::All);
            let list = store_flags(flags, labels, &permanent);
            let answers = self.conn.command(&format!("UID STORE {uid} FLAGS ({list})")).await?;
            let is_copy = |r: &Response<'_>| {
                matches!(r, Response::Fetch(_, attrs) if attrs.iter().any(|a| matches!(a, AttributeValue::Uid(u) if *u == uid)))
            };
            // The server answers a STORE with the message's new flags; one
            // that does not for flags that did not change, or a UID that
            // is gone (a UID set naming no message is not an error), is
            // asked whether the copy is there.
            let mut there = answers.iter().any(is_copy);
            if !there {
                self.conn
                    .fetch_each(&format!("UID FETCH {uid} (UID)"), |r| {
                        there |= is_copy(r);
                        Ok(())
                    })
                    .await?;
            }
            if !there {
                return Err(Error::item(format!(
                    "the copy's flags cannot be changed: target folder {} no longer holds it (UID {uid} was expunged)",
                    utf7::decode(folder)
                )));
            }
            Ok(id.to_owned())
        }
        .boxed()
    }

    fn move_message<'a>(&'a mut self, from: &'a str, id: &'a str, to: &'a str) -> Pending<'a, String> {
        self.move_copy(from, id, to).boxed()
    }

    fn delete_message<'a>(&'a mut self, folder: &'a str, id: &'a str) -> Pending<'a, ()> {
        self.delete_copy(folder, id).boxed()
    }

    fn rename_folder<'a>(&'a mut self, known: &'a str, to: &'a TargetFolder) -> Pending<'a, String> {
        self.rename(known, to).boxed()
    }

    fn inventory<'a>(&'a mut self, folder: &'a TargetFolder, known: Option<&'a str>) -> Pending<'a, Vec<Inventoried>> {
        async move {
            let wire = match known {
                Some(k) => k.to_owned(),
                None => self.wire_name(folder),
            };
            // LIST at login is the truth about what exists: a folder nobody
            // created yet holds nothing, and EXAMINE must not be asked to
            // open it (some servers log that as an error).
            if !wire.eq_ignore_ascii_case("INBOX") && !self.existing.contains(&wire) {
                return Ok(Vec::new());
            }
            // EXAMINE is read-only; a later `find` selects again.
            self.selected = None;
            self.examined = None;
            let state = self
                .conn
                .examine(&wire)
                .await
                .map_err(|e| e.context(format!("opening target folder {}", utf7::decode(&wire))))?;
            self.examined = Some(wire.clone());
            let mut out = Vec::with_capacity(state.exists as usize);
            if state.exists == 0 {
                return Ok(out);
            }
            self.conn
                .fetch_each(
                    "UID FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
                    |resp| {
                        if let Response::Fetch(_, attrs) = resp {
                            let mut item = Inventoried {
                                message_id: None,
                                size: 0,
                                id: String::new(),
                                flags: Flags::default(),
                            };
                            for a in attrs {
                                match a {
                                    AttributeValue::Uid(u) => item.id = u.to_string(),
                                    AttributeValue::Rfc822Size(s) => item.size = u64::from(*s),
                                    // \Recent is the session's, not the copy's.
                                    AttributeValue::Flags(f) => {
                                        item.flags = Flags(
                                            f.iter()
                                                .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                                                .map(|f| f.to_string())
                                                .collect(),
                                        );
                                    }
                                    AttributeValue::BodySection { data: Some(d), .. } => {
                                        item.message_id = crate::headers::message_id(d);
                                    }
                                    _ => {}
                                }
                            }
                            out.push(item);
                        }
                        Ok(())
                    },
                )
                .await?;
            Ok(out)
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
            let wire = match known {
                Some(k) => k.to_owned(),
                None => self.wire_name(folder),
            };
            if self.examined.as_deref() != Some(wire.as_str()) {
                self.selected = None;
                self.conn
                    .examine(&wire)
                    .await
                    .map_err(|e| e.context(format!("opening target folder {}", utf7::decode(&wire))))?;
                self.examined = Some(wire);
            }
            let uid: u32 = item
                .id
                .parse()
                .map_err(|_| Error::fatal(format!("not an IMAP UID: {:?}", item.id)))?;
            let mut body: Option<Vec<u8>> = None;
            self.conn
                .fetch_each(&format!("UID FETCH {uid} (UID BODY.PEEK[])"), |resp| {
                    if let Response::Fetch(_, attrs) = resp
                        && attrs.iter().any(|a| matches!(a, AttributeValue::Uid(u) if *u == uid))
                    {
                        for a in attrs {
                            if let AttributeValue::BodySection { data, .. } = a {
                                body = Some(data.as_deref().unwrap_or_default().to_vec());
                            }
                        }
                    }
                    Ok(())
                })
                .await?;
            Ok(match body {
                Some(bytes) => crate::target::compare_bytes(source, &bytes),
                None => Some("the target no longer has the copy (expunged since it was listed?)".to_owned()),
            })
        }
        .boxed()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        async move { self.conn.logout().await }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(uid: u32, date: i64, size: u64, header: &str) -> Stored {
        Stored {
            uid,
            internal_date: Some(date),
            size,
            header: header.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_copy_is_found_by_date_and_header_whatever_size_the_server_reports() {
        let header = b"Message-ID: <a@x>\nSubject: one\n\n";
        // Stored with CRLF line ends: another size, the same message.
        let crlf = stored(7, 100, 1_040, "Message-ID: <a@x>\r\nSubject: one\r\n\r\n");
        assert_eq!(pick(&[crlf], 100, 1_000, header), Some(7));
        // Another message sharing the Message-ID and date is never adopted.
        let other = stored(8, 100, 1_000, "Message-ID: <a@x>\r\nSubject: two\r\n\r\n");
        assert_eq!(pick(&[other], 100, 1_000, header), None);
        // Nor one of another date.
        let later = stored(9, 101, 1_000, "Message-ID: <a@x>\nSubject: one\n\n");
        assert_eq!(pick(&[later], 100, 1_000, header), None);
        // Of two copies, the closest size.
        let a = stored(3, 100, 1_100, "Message-ID: <a@x>\nSubject: one\n\n");
        let b = stored(4, 100, 1_001, "Message-ID: <a@x>\nSubject: one\n\n");
        assert_eq!(pick(&[a, b], 100, 1_000, header), Some(4));
    }

    fn answers(lines: &[&str]) -> Vec<Response<'static>> {
        lines
            .iter()
            .map(|l| Response::parse(l.as_bytes()).unwrap().1.into_owned())
            .collect()
    }

    #[test]
    fn a_store_sets_what_an_append_carries_that_the_folder_keeps() {
        let flags = Flags::from_wire("\\Seen \\Recent Work $Forwarded \\Flagged");
        let labels = vec!["Family".to_owned()];
        // No PERMANENTFLAGS, or `\*`: the APPEND list as it is.
        assert_eq!(
            store_flags(&flags, &labels, &Permanent::All),
            append_flags(&flags, &labels)
        );
        assert_eq!(
            store_flags(&flags, &labels, &Permanent::All),
            "\\Seen Work $Forwarded \\Flagged Family"
        );
        let listed = |flags: &[&str]| Permanent::of(Some(&flags.iter().map(|f| f.to_string()).collect::<Vec<_>>()));
        let dovecot = listed(&["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\*"]);
        assert_eq!(
            store_flags(&flags, &labels, &dovecot),
            "\\Seen Work $Forwarded \\Flagged Family"
        );
        // Keywords the folder cannot take (no `\*`) are left out, listed
        // ones kept; so is a system flag it does not keep.
        let full = listed(&["\\Seen", "\\Deleted", "work"]);
        assert_eq!(store_flags(&flags, &labels, &full), "\\Seen Work");
        assert_eq!(Permanent::of(None), Permanent::All);
    }

    /// COPYUID is read where servers send it: in an untagged OK before the
    /// EXPUNGE of a `UID MOVE` (RFC 6851), in the tagged OK of a `UID
    /// COPY`; the new UID is the one at the source UID's place in the sets.
    #[test]
    fn the_new_uid_comes_from_copyuid() {
        let moved = answers(&[
            "* OK [COPYUID 1700000002 7 31] Moved UIDs.\r\n",
            "* 3 EXPUNGE\r\n",
            "T5 OK Move completed.\r\n",
        ]);
        assert_eq!(copy_uid(&moved, 7), Some((1_700_000_002, 31)));
        assert!(moved.iter().any(|r| matches!(r, Response::Expunge(3))));
        let copied = answers(&["T6 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n"]);
        assert_eq!(copy_uid(&copied, 304), Some((38_505, 3956)));
        assert_eq!(copy_uid(&copied, 320), Some((38_505, 3958)));
        assert_eq!(copy_uid(&copied, 305), None, "not among the UIDs copied");
        // A UID set naming no message: OK without COPYUID.
        assert_eq!(copy_uid(&answers(&["T7 OK No messages found.\r\n"]), 7), None);
    }

    #[test]
    fn a_rename_renames_the_folder_and_those_below_it() {
        assert_eq!(renamed("A/B", "A/B", "C", '/').as_deref(), Some("C"));
        assert_eq!(renamed("A/B/x/y", "A/B", "C", '/').as_deref(), Some("C/x/y"));
        assert_eq!(
            renamed("A/Bc", "A/B", "C", '/'),
            None,
            "a sibling sharing the start of the name"
        );
        assert_eq!(renamed("A", "A/B", "C", '/'), None, "the parent");
        assert_eq!(
            renamed(
                "INBOX.&AMk-coles.2024",
                "INBOX.&AMk-coles",
                "INBOX.Archiv.&AMk-coles",
                '.'
            )
            .as_deref(),
            Some("INBOX.Archiv.&AMk-coles.2024")
        );
        assert!(below("A/B/C", "A", '/') && !below("A", "A", '/') && !below("AB/C", "A", '/'));
        assert!(nonexistent("SELECT answered NO [NONEXISTENT] Mailbox doesn't exist: X"));
        assert!(nonexistent("SELECT answered NO Mailbox does not exist"));
        assert!(!nonexistent("SELECT answered NO [NOPERM] Permission denied"));
    }

    /// A scripted IMAP server on loopback offering `capabilities` beside
    /// IMAP4rev1: LOGIN, CAPABILITY and LOGOUT answered as a server does,
    /// any other command by `answer` (untagged lines, then the tagged
    /// status). Returns a session logged in to it and every command line
    /// the client sent (tags stripped).
    async fn scripted(
        capabilities: &'static str,
        answer: fn(&str) -> (Vec<&'static str>, String),
    ) -> (ImapTargetSession, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = sent.clone();
        tokio::spawn(async move {
            let (peer, _) = listener.accept().await.unwrap();
            let (read, mut write) = peer.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"* OK scripted server ready\r\n").await.unwrap();
            while let Ok(Some(line)) = lines.next_line().await {
                let (tag, command) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                log.lock().unwrap().push(command.to_owned());
                let verb = command.split(' ').next().unwrap_or("").to_ascii_uppercase();
                let (untagged, status): (Vec<String>, String) = match verb.as_str() {
                    "LOGIN" => (Vec::new(), "OK Logged in".into()),
                    "CAPABILITY" => (
                        vec![format!("* CAPABILITY IMAP4rev1 {capabilities}")],
                        "OK Capability completed".into(),
                    ),
                    "LOGOUT" => (vec!["* BYE Logging out".into()], "OK Logout completed".into()),
                    _ => {
                        let (untagged, status) = answer(command);
                        (untagged.into_iter().map(str::to_owned).collect(), status)
                    }
                };
                let mut out = String::new();
                for u in untagged {
                    out.push_str(&u);
                    out.push_str("\r\n");
                }
                out.push_str(&format!("{tag} {status}\r\n"));
                write.write_all(out.as_bytes()).await.unwrap();
                if verb == "LOGOUT" {
                    break;
                }
            }
        });
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port,
            security: crate::imap::Security::Plain,
            ca_file: None,
            timeout: std::time::Duration::from_secs(10),
            compress: crate::imap::Compression::Never,
        };
        let tls = crate::imap::tls_config(None).unwrap();
        let conn = Conn::login(&endpoint, &tls, "user", &Secret::new("pw")).await.unwrap();
        let session = ImapTargetSession {
            conn,
            personal: Personal::flat('/'),
            delimiter: '/',
            roles: HashMap::new(),
            existing: std::collections::HashSet::new(),
            selected: None,
            selected_validity: 0,
            selected_permanent: None,
            examined: None,
        };
        (session, sent)
    }

    /// Answers of a server with UIDPLUS: folder "A" (UIDVALIDITY 5) holds
    /// UID 3; "B" (UIDVALIDITY 9) is where it goes, as UID 40 (41 by MOVE).
    fn uidplus_server(command: &str) -> (Vec<&'static str>, String) {
        match command {
            "SELECT \"A\"" => (
                vec!["* 1 EXISTS", "* OK [UIDVALIDITY 5] UIDs valid"],
                "OK [READ-WRITE] Select completed".into(),
            ),
            "SELECT \"B\"" => (
                vec!["* 1 EXISTS", "* OK [UIDVALIDITY 9] UIDs valid"],
                "OK [READ-WRITE] Select completed".into(),
            ),
            "UID COPY 3 \"B\"" => (Vec::new(), "OK [COPYUID 9 3 40] Copy completed".into()),
            "UID MOVE 3 \"B\"" => (
                vec!["* OK [COPYUID 9 3 41] Moved UIDs.", "* 1 EXPUNGE"],
                "OK Move completed".into(),
            ),
            "UID EXPUNGE 3" | "UID EXPUNGE 40" => (vec!["* 1 EXPUNGE"], "OK Expunge completed".into()),
            c if c.starts_with("UID STORE ") || c.starts_with("UID EXPUNGE ") => (Vec::new(), "OK Completed".into()),
            // A UID naming no message: OK, nothing copied or moved.
            c if c.starts_with("UID COPY ") || c.starts_with("UID MOVE ") => {
                (Vec::new(), "OK No messages found".into())
            }
            _ => (Vec::new(), "BAD Unexpected command".into()),
        }
    }

    /// Without MOVE: `UID COPY`, the UID marked \Deleted and expunged by
    /// UID alone, never a plain EXPUNGE; the new UID from the COPY's
    /// COPYUID. A UID that is gone is an item error with nothing done.
    /// With MOVE: one `UID MOVE`, its COPYUID read from the untagged OK.
    #[tokio::test]
    async fn a_move_without_move_copies_then_expunges_that_uid_alone() {
        let (mut s, sent) = scripted("UIDPLUS", uidplus_server).await;
        assert_eq!(s.move_copy("A", "5:3", "B").await.unwrap(), "9:40");
        let e = s.move_copy("A", "5:4", "B").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Item, "{e:?}");
        let e = s.move_copy("A", "6:3", "B").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Item, "another UIDVALIDITY: {e:?}");
        s.delete_copy("B", "9:40").await.unwrap();
        Box::new(s).close().await;
        let sent = sent.lock().unwrap().clone();
        assert_eq!(
            sent[2..],
            [
                "SELECT \"A\"",
                "UID COPY 3 \"B\"",
                "UID STORE 3 +FLAGS.SILENT (\\Deleted)",
                "UID EXPUNGE 3",
                "UID COPY 4 \"B\"",
                "SELECT \"B\"",
                "UID STORE 40 +FLAGS.SILENT (\\Deleted)",
                "UID EXPUNGE 40",
                "LOGOUT",
            ],
            "{sent:#?}"
        );

        let (mut s, sent) = scripted("MOVE UIDPLUS", uidplus_server).await;
        assert_eq!(s.move_copy("A", "5:3", "B").await.unwrap(), "9:41");
        let e = s.move_copy("A", "5:4", "B").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Item, "gone: {e:?}");
        Box::new(s).close().await;
        assert_eq!(
            sent.lock().unwrap()[2..],
            ["SELECT \"A\"", "UID MOVE 3 \"B\"", "UID MOVE 4 \"B\"", "LOGOUT"]
        );
    }

    /// A server with neither MOVE nor UIDPLUS: moving or deleting a copy
    /// would take a plain EXPUNGE, which removes every message another
    /// client marked \Deleted; both are item errors and nothing is sent.
    #[tokio::test]
    async fn without_uidplus_nothing_is_expunged() {
        let (mut s, sent) = scripted("IDLE", uidplus_server).await;
        for e in [
            s.move_copy("A", "5:3", "B").await.unwrap_err(),
            s.delete_copy("A", "5:3").await.unwrap_err(),
        ] {
            assert_eq!(e.kind, ErrorKind::Item, "{e:?}");
            assert!(e.message.contains("UIDPLUS"), "{e}");
        }
        Box::new(s).close().await;
        assert_eq!(sent.lock().unwrap()[2..], ["LOGOUT"]);
    }

    /// The one-way sync's operations are declared: the run moves, re-flags,
    /// deletes and renames on an IMAP target (a server that cannot do one
    /// safely makes that message's operation an item error).
    #[test]
    fn the_sync_operations_are_declared() {
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port: 143,
            security: crate::imap::Security::Plain,
            ca_file: None,
            timeout: std::time::Duration::from_secs(10),
            compress: crate::imap::Compression::Never,
        };
        let caps = ImapTarget::new(endpoint, None, None).unwrap().capabilities();
        assert!(caps.list && caps.move_messages && caps.update_flags && caps.delete && caps.rename_folders);
    }

    #[test]
    fn ids_are_uidvalidity_and_uid() {
        assert_eq!(parse_id("1700000000:42"), Some((1_700_000_000, 42)));
        for bad in ["", "42", "1700000000:", ":42", "1:0", "a:1", "1:2:3"] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_size_window_allows_line_end_normalisation() {
        assert_eq!(size_window(0), (0, 2048));
        let (low, high) = size_window(100_000);
        assert!(low <= 100_000 && high >= 100_000 + 2_000, "{low}..{high}");
    }
}
