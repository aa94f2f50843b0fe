//! `mailFolders` and `childFolders`: listing, reading and creating folders,
//! plus `GET /users/{id}`.
//!
//! Folder creation enforces what the product depends on: only `displayName`
//! and `isHidden` are writable, and a duplicate name under the same parent is
//! `409 ErrorFolderExists`.
//!
//! Update (`PATCH`, 200) takes `displayName` alone (`isHidden` is set only at
//! creation); move (`POST …/move` with `destinationId`, 200) keeps the
//! folder's id, contents and subfolders. Exchange's distinguished
//! (well-known) folders are neither renamed nor moved (EWS: "Cannot move
//! distinguished folder"; renaming them is locked down since Exchange 2007);
//! a move into the folder itself or below it is refused, and so is a name
//! a sibling at the destination has.

use serde_json::{Value, json};

use crate::App;
use crate::graph::{Chain, Ctx};
use crate::http::{Req, Resp, bad_value, graph_error, json_object, unknown_property};
use crate::odata::{self, Entity, Filter};
use crate::store::{Lookup, Mailbox};

/// 404 for a folder that does not exist.
pub fn folder_not_found(req: &Req) -> Resp {
    graph_error(
        req,
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

/// 400 for an id this service could not have issued.
pub fn malformed_id(req: &Req) -> Resp {
    graph_error(req, 400, "ErrorInvalidIdMalformed", "Id is malformed.")
}

/// Resolves `mailFolders/{a}/childFolders/{b}/…` to the last folder's id.
/// Each child must really be a child of the folder before it.
pub fn resolve_chain(mb: &Mailbox, req: &Req, chain: &Chain) -> Result<String, Resp> {
    let mut current: Option<String> = None;
    for key in chain {
        let id = mb.resolve_folder(key).map_err(|e| match e {
            Lookup::Malformed => malformed_id(req),
            Lookup::NotFound => folder_not_found(req),
        })?;
        if let Some(parent) = &current
            && mb.folders[&id].parent_id != *parent
        {
            return Err(folder_not_found(req));
        }
        current = Some(id);
    }
    current.ok_or_else(|| folder_not_found(req))
}

fn context(app: &App, ctx: &Ctx, tail: &str) -> String {
    format!(
        "{}/{}/$metadata#users('{}')/{tail}",
        app.base_url, ctx.version, ctx.user
    )
}

pub fn get_user(app: &App, req: &Req, ctx: &Ctx) -> Resp {
    let store = app.store.lock().unwrap();
    let Some(mb) = store.checked(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    let local = mb.address.split('@').next().unwrap_or("");
    let body = json!({
        "@odata.context": format!("{}/{}/$metadata#users/$entity", app.base_url, ctx.version),
        "id": mb.id,
        "displayName": local,
        "mail": mb.address,
        "userPrincipalName": mb.address,
    });
    let _ = req;
    Resp::json(200, &body)
}

pub fn list(app: &App, req: &Req, ctx: &Ctx, chain: Option<&Chain>) -> Resp {
    let q = match odata::parse(req, Entity::Folder) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let store = app.store.lock().unwrap();
    let Some(mb) = store.checked(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    let parent = match chain {
        None => mb.root_id.clone(),
        Some(c) => match resolve_chain(mb, req, c) {
            Ok(id) => id,
            Err(r) => return r,
        },
    };
    let mut children: Vec<_> = mb.folders[&parent]
        .children
        .iter()
        .map(|c| &mb.folders[c])
        .filter(|f| q.include_hidden || !f.is_hidden)
        .filter(|f| match &q.filter {
            Some(Filter::DisplayName(n)) => f.display_name.to_lowercase() == n.to_lowercase(),
            _ => true,
        })
        .collect();
    // Graph returns folders in display-name order.
    children.sort_by(|a, b| {
        a.display_name
            .to_lowercase()
            .cmp(&b.display_name.to_lowercase())
            .then(a.id.cmp(&b.id))
    });
    let (skip, top) = odata::window(&q, app.cfg.page_size);
    let items: Vec<Value> = children
        .iter()
        .skip(skip)
        .take(top)
        .map(|f| odata::folder_json(mb, f, Some(&q)))
        .collect();
    let ctx_url = match chain {
        None => context(app, ctx, "mailFolders"),
        Some(_) => context(app, ctx, &format!("mailFolders('{parent}')/childFolders")),
    };
    Resp::json(
        200,
        &odata::page(
            &app.base_url,
            req,
            &ctx_url,
            items,
            children.len(),
            &q,
            app.cfg.page_size,
        ),
    )
}

pub fn get(app: &App, req: &Req, ctx: &Ctx, chain: &Chain) -> Resp {
    let q = match odata::parse(req, Entity::Folder) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let store = app.store.lock().unwrap();
    let Some(mb) = store.checked(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    let id = match resolve_chain(mb, req, chain) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let mut body = odata::folder_json(mb, &mb.folders[&id], Some(&q));
    body["@odata.context"] = json!(context(app, ctx, "mailFolders/$entity"));
    Resp::json(200, &body)
}

/// mailFolder properties a client may not set (read-only or navigation).
const FOLDER_READ_ONLY: &[&str] = &[
    "id",
    "parentFolderId",
    "childFolderCount",
    "unreadItemCount",
    "totalItemCount",
    "sizeInBytes",
    "wellKnownName",
    "childFolders",
    "messages",
    "messageRules",
    "multiValueExtendedProperties",
    "singleValueExtendedProperties",
];

pub fn create(app: &App, req: &Req, ctx: &Ctx, chain: Option<&Chain>) -> Resp {
    let body = match json_object(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut display_name = None;
    let mut is_hidden = false;
    for (k, v) in &body {
        match k.as_str() {
            "displayName" => match v.as_str() {
                Some(s) => display_name = Some(s.to_string()),
                None => return bad_value(req, k, "Edm.String"),
            },
            "isHidden" => match v.as_bool() {
                Some(b) => is_hidden = b,
                None => return bad_value(req, k, "Edm.Boolean"),
            },
            "@odata.type"
                if v.as_str()
                    .is_some_and(|t| t.trim_start_matches('#') == "microsoft.graph.mailFolder") => {}
            k if FOLDER_READ_ONLY.contains(&k) => {
                return graph_error(
                    req,
                    400,
                    "ErrorInvalidProperty",
                    &format!("The property '{k}' can't be set when creating a mail folder."),
                );
            }
            _ => return unknown_property(req, k, "microsoft.graph.mailFolder"),
        }
    }
    let name = match required_name(req, display_name, "displayName") {
        Ok(n) => n,
        Err(r) => return r,
    };
    let mut store = app.store.lock().unwrap();
    let mut rng = app.rng.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    let parent = match chain {
        None => mb.root_id.clone(),
        Some(c) => match resolve_chain(mb, req, c) {
            Ok(id) => id,
            Err(r) => return r,
        },
    };
    match mb.create_folder(&parent, &name, is_hidden, &mut rng) {
        Ok(id) => {
            let mut out = odata::folder_json(mb, &mb.folders[&id], None);
            out["@odata.context"] = json!(context(app, ctx, "mailFolders/$entity"));
            Resp::json(201, &out)
        }
        Err(()) => graph_error(
            req,
            409,
            "ErrorFolderExists",
            "A folder with the specified name already exists.",
        ),
    }
}

/// `destinationId` of a move request (messages and folders): the only
/// parameter the action takes.
pub fn destination_id(req: &Req, type_name: &str) -> Result<String, Resp> {
    let body = json_object(req)?;
    let mut destination = None;
    for (k, v) in &body {
        match k.as_str() {
            "destinationId" => match v.as_str() {
                Some(s) => destination = Some(s.to_string()),
                None => return Err(bad_value(req, k, "Edm.String")),
            },
            _ => return Err(unknown_property(req, k, type_name)),
        }
    }
    destination.filter(|d| !d.is_empty()).ok_or_else(|| {
        graph_error(
            req,
            400,
            "ErrorInvalidParameter",
            "The destinationId parameter is required and can't be empty.",
        )
    })
}

pub fn folder_exists(req: &Req) -> Resp {
    graph_error(
        req,
        409,
        "ErrorFolderExists",
        "A folder with the specified name already exists.",
    )
}

/// `PATCH /users/{u}/mailFolders/{id}`: `displayName`, the one property a
/// folder update takes; 200 with the folder.
pub fn update(app: &App, req: &Req, ctx: &Ctx, chain: &Chain) -> Resp {
    let body = match json_object(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut display_name = None;
    for (k, v) in &body {
        match k.as_str() {
            "displayName" => match v.as_str() {
                Some(s) => display_name = Some(s.to_string()),
                None => return bad_value(req, k, "Edm.String"),
            },
            "@odata.type"
                if v.as_str()
                    .is_some_and(|t| t.trim_start_matches('#') == "microsoft.graph.mailFolder") => {}
            "isHidden" => {
                return graph_error(
                    req,
                    400,
                    "ErrorInvalidProperty",
                    "The property 'isHidden' can only be set when the mail folder is created.",
                );
            }
            k if FOLDER_READ_ONLY.contains(&k) => {
                return graph_error(
                    req,
                    400,
                    "ErrorInvalidProperty",
                    &format!("The property '{k}' is read-only and can't be updated."),
                );
            }
            _ => return unknown_property(req, k, "microsoft.graph.mailFolder"),
        }
    }
    let mut store = app.store.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    let id = match resolve_chain(mb, req, chain) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if let Some(name) = display_name {
        if name.trim().is_empty() {
            return graph_error(
                req,
                400,
                "ErrorInvalidParameter",
                "The displayName property can't be empty.",
            );
        }
        if mb.folders[&id].well_known.is_some() {
            return graph_error(
                req,
                400,
                "ErrorInvalidRequest",
                "The display name of a distinguished folder can't be changed.",
            );
        }
        let parent = mb.folders[&id].parent_id.clone();
        if mb.name_taken(&parent, &name, &id) {
            return folder_exists(req);
        }
        if let Some(f) = mb.folders.get_mut(&id) {
            f.display_name = name;
        }
    }
    let mut out = odata::folder_json(mb, &mb.folders[&id], None);
    out["@odata.context"] = json!(context(app, ctx, "mailFolders/$entity"));
    Resp::json(200, &out)
}

/// `POST /users/{u}/mailFolders/{id}/move` with `destinationId` (a folder
/// id or a well-known name): 200 with the folder, below its new parent.
pub fn move_folder(app: &App, req: &Req, ctx: &Ctx, chain: &Chain) -> Resp {
    let destination = match destination_id(req, "microsoft.graph.mailFolder") {
        Ok(d) => d,
        Err(r) => return r,
    };
    let mut store = app.store.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    let id = match resolve_chain(mb, req, chain) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let parent = match mb.resolve_folder(&destination) {
        Ok(p) => p,
        Err(Lookup::Malformed) => return malformed_id(req),
        Err(Lookup::NotFound) => return folder_not_found(req),
    };
    if mb.folders[&id].well_known.is_some() || id == mb.root_id {
        return graph_error(
            req,
            400,
            "ErrorMoveDistinguishedFolder",
            "Cannot move distinguished folder.",
        );
    }
    if mb.is_within(&parent, &id) {
        return graph_error(
            req,
            400,
            "ErrorInvalidRequest",
            "A folder can't be moved into itself or one of its subfolders.",
        );
    }
    let name = mb.folders[&id].display_name.clone();
    if mb.folders[&id].parent_id != parent && mb.name_taken(&parent, &name, &id) {
        return folder_exists(req);
    }
    mb.move_folder(&id, &parent);
    let mut out = odata::folder_json(mb, &mb.folders[&id], None);
    out["@odata.context"] = json!(context(app, ctx, "mailFolders/$entity"));
    Resp::json(200, &out)
}

/// A name a create request must carry: 400 when `prop` is absent or blank.
pub fn required_name(req: &Req, name: Option<String>, prop: &str) -> Result<String, Resp> {
    name.filter(|n| !n.trim().is_empty()).ok_or_else(|| {
        graph_error(
            req,
            400,
            "ErrorInvalidParameter",
            &format!("The {prop} property is required and can't be empty."),
        )
    })
}
