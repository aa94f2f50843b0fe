//! Outlook's master category list: `/users/{id}/outlook/masterCategories`
//! (outlookuser-list-mastercategories, outlookuser-post-mastercategories,
//! outlookcategory-get, outlookcategory-delete).
//!
//! Documented rules enforced here:
//!
//! - Listing and reading need the application permission
//!   MailboxSettings.Read, creating and deleting MailboxSettings.ReadWrite
//!   (`--mailbox-settings none|read|read-write`, default read-write, and
//!   `POST /_emulator/permissions` to grant or withdraw it later);
//!   without it the answer is `403 ErrorAccessDenied`, as for every other
//!   permission the emulator withholds.
//! - A category is `displayName` and `color`; `displayName` is unique in the
//!   mailbox's list and cannot be changed after creation; `color` is one of
//!   the categoryColor constants `none`, `preset0` … `preset24`.
//! - A new mailbox holds the six categories the documentation's list
//!   example shows (Red category preset0, Orange preset1, Yellow preset3,
//!   Green preset4, Blue preset7, Purple preset8).
//!
//! Choices where the documentation is silent:
//!
//! - A create without `displayName` (or with an empty one) is 400
//!   ErrorInvalidParameter; without `color` the category gets `none`.
//! - A `displayName` the list holds already, compared ignoring case as
//!   Exchange compares names, is `409 Conflict` with code
//!   `ErrorDuplicateMasterCategory` (Graph documents uniqueness, not the
//!   answer). Clients should not depend on the code: read the list again.
//! - `color` values are case-sensitive (`preset9`, not `Preset9`); any
//!   other value is 400 RequestBodyRead. Unknown properties are 400
//!   RequestBodyRead; `id` in a create body is ignored.
//! - The list is in creation order, 10 a page unless `$top` says otherwise
//!   (`$filter=displayName eq '…'` and `$select` work as for contacts).
//! - A category id is a GUID; one the list does not hold is 404
//!   ErrorItemNotFound.

use hyper::Method;
use serde_json::{Value, json};

use crate::App;
use crate::config::MailboxSettings;
use crate::graph::Ctx;
use crate::http::{Req, Resp, bad_value, graph_error, json_object, method_not_allowed, unknown_property};
use crate::pim::{by_seq, context, entity, matches, page, read_with_query, shape};

/// Every categoryColor value (resources/outlookcategory).
pub const COLORS: [&str; 26] = [
    "none", "preset0", "preset1", "preset2", "preset3", "preset4", "preset5", "preset6", "preset7", "preset8",
    "preset9", "preset10", "preset11", "preset12", "preset13", "preset14", "preset15", "preset16", "preset17",
    "preset18", "preset19", "preset20", "preset21", "preset22", "preset23", "preset24",
];

/// What a new Exchange Online mailbox's list holds (the documentation's
/// List example).
const DEFAULTS: [(&str, &str); 6] = [
    ("Red category", "preset0"),
    ("Orange category", "preset1"),
    ("Yellow category", "preset3"),
    ("Green category", "preset4"),
    ("Blue category", "preset7"),
    ("Purple category", "preset8"),
];

const PROPS: &[&str] = &["id", "displayName", "color"];
const TYPE: &str = "microsoft.graph.outlookCategory";

/// One entry of a mailbox's master category list.
#[derive(Debug, Clone)]
pub struct Category {
    pub id: String,
    pub display_name: String,
    pub color: String,
    pub seq: u64,
}

impl Category {
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "displayName": self.display_name, "color": self.color})
    }
}

/// The master category list of a new mailbox. Its ids come from a
/// generator of their own (seeded by the mailbox serial), so the ids a
/// seeded run issues elsewhere are as they were before the list existed.
pub fn defaults(serial: u32) -> Vec<Category> {
    let mut own = fastrand::Rng::with_seed(0xca7e_9041_u64 ^ u64::from(serial));
    DEFAULTS
        .iter()
        .enumerate()
        .map(|(i, (name, color))| Category {
            id: crate::http::guid(&mut own),
            display_name: (*name).to_owned(),
            color: (*color).to_owned(),
            seq: i as u64,
        })
        .collect()
}

/// The resource a path under `/users/{user}/outlook` addresses.
#[derive(Debug, Clone)]
pub enum CategoryTarget {
    List,
    One(String),
}

/// Parses the segments after `outlook`; `Err` carries the segment Graph's
/// router would not know (or that this emulator does not implement).
pub fn parse(rest: &[String]) -> Result<CategoryTarget, String> {
    match rest {
        [s] if s.eq_ignore_ascii_case("masterCategories") => Ok(CategoryTarget::List),
        [s, id] if s.eq_ignore_ascii_case("masterCategories") => Ok(CategoryTarget::One(id.clone())),
        [] => Err("outlook".into()),
        [s, ..] if !s.eq_ignore_ascii_case("masterCategories") => Err(s.clone()),
        _ => Err(rest.last().cloned().unwrap_or_default()),
    }
}

/// Stats label of a request.
pub fn kind(t: &CategoryTarget, m: &Method) -> &'static str {
    match (t, m.as_str()) {
        (CategoryTarget::List, "POST") => "masterCategories.create",
        (CategoryTarget::List, _) => "masterCategories.list",
        (CategoryTarget::One(_), "DELETE") => "masterCategories.delete",
        (CategoryTarget::One(_), _) => "masterCategories.get",
    }
}

fn access_denied(req: &Req) -> Resp {
    graph_error(
        req,
        403,
        "ErrorAccessDenied",
        "Access is denied. Check credentials and try again.",
    )
}

fn not_found(req: &Req) -> Resp {
    graph_error(
        req,
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

pub fn dispatch(app: &App, req: &Req, ctx: &Ctx, t: &CategoryTarget) -> Resp {
    let granted = *app.mailbox_settings.lock().unwrap();
    let write = !matches!(req.method, Method::GET);
    let allowed = match granted {
        MailboxSettings::ReadWrite => true,
        MailboxSettings::Read => !write,
        MailboxSettings::None => false,
    };
    match (t, &req.method) {
        (CategoryTarget::List, &Method::GET)
        | (CategoryTarget::List, &Method::POST)
        | (CategoryTarget::One(_), &Method::GET)
        | (CategoryTarget::One(_), &Method::DELETE) => {}
        _ => return method_not_allowed(req),
    }
    if !allowed {
        return access_denied(req);
    }
    match (t, &req.method) {
        (CategoryTarget::List, &Method::GET) => list(app, req, ctx),
        (CategoryTarget::List, _) => create(app, req, ctx),
        (CategoryTarget::One(id), &Method::GET) => get(app, req, ctx, id),
        (CategoryTarget::One(id), _) => delete(app, req, ctx, id),
    }
}

fn list(app: &App, req: &Req, ctx: &Ctx) -> Resp {
    read_with_query(app, req, ctx, PROPS, TYPE, Some("displayName"), |mb, q| {
        let cats = mb
            .categories
            .iter()
            .filter(|c| matches(&q.filter, &c.display_name, &[]));
        let items = by_seq(cats, |c: &Category| c.seq, |c| shape(c.to_json(), &q, &[]));
        Ok(page(
            app,
            req,
            &context(app, ctx, "outlook/masterCategories"),
            items,
            &q,
        ))
    })
}

fn get(app: &App, req: &Req, ctx: &Ctx, id: &str) -> Resp {
    read_with_query(app, req, ctx, PROPS, TYPE, None, |mb, q| {
        let c = mb
            .categories
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| not_found(req))?;
        entity(
            app,
            ctx,
            shape(c.to_json(), &q, &[]),
            "outlook/masterCategories/$entity",
        )
    })
}

/// `POST …/outlook/masterCategories`: 201 with the category.
fn create(app: &App, req: &Req, ctx: &Ctx) -> Resp {
    let body = match json_object(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut name = None;
    let mut color = "none".to_owned();
    for (k, v) in &body {
        match k.as_str() {
            "displayName" => match v.as_str() {
                Some(s) => name = Some(s.to_owned()),
                None => return bad_value(req, k, "Edm.String"),
            },
            "color" => match v.as_str().filter(|s| COLORS.contains(s)) {
                Some(s) => color = s.to_owned(),
                None => return bad_value(req, k, "microsoft.graph.categoryColor"),
            },
            "id" | "@odata.type" => {}
            _ => return unknown_property(req, k, TYPE),
        }
    }
    let name = match crate::folders::required_name(req, name, "displayName") {
        Ok(n) => n,
        Err(r) => return r,
    };
    let mut store = app.store.lock().unwrap();
    let mut rng = app.rng.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    let lower = name.to_lowercase();
    if mb.categories.iter().any(|c| c.display_name.to_lowercase() == lower) {
        return graph_error(
            req,
            409,
            "ErrorDuplicateMasterCategory",
            &format!("A category named '{name}' already exists in the master category list."),
        );
    }
    let seq = mb.categories.iter().map(|c| c.seq + 1).max().unwrap_or(0);
    let category = Category {
        id: crate::http::guid(&mut rng),
        display_name: name,
        color,
        seq,
    };
    let mut v = category.to_json();
    v["@odata.context"] = json!(context(app, ctx, "outlook/masterCategories/$entity"));
    mb.categories.push(category);
    Resp::json(201, &v)
}

/// `DELETE …/outlook/masterCategories/{id}`: 204.
fn delete(app: &App, req: &Req, ctx: &Ctx, id: &str) -> Resp {
    let mut store = app.store.lock().unwrap();
    let Some(mb) = store.checked_mut(ctx.mailbox, &ctx.mailbox_id) else {
        return crate::graph::mailbox_gone(req);
    };
    let before = mb.categories.len();
    mb.categories.retain(|c| c.id != id);
    if mb.categories.len() == before {
        return not_found(req);
    }
    Resp::new(204)
}

/// The permission's name on the emulator's command line and admin API.
pub fn permission_name(p: MailboxSettings) -> &'static str {
    match p {
        MailboxSettings::None => "none",
        MailboxSettings::Read => "read",
        MailboxSettings::ReadWrite => "read-write",
    }
}

/// The permission a name on the admin API stands for.
pub fn permission_named(name: &str) -> Option<MailboxSettings> {
    [MailboxSettings::None, MailboxSettings::Read, MailboxSettings::ReadWrite]
        .into_iter()
        .find(|p| permission_name(*p) == name)
}

/// A mailbox's list for `/_emulator/mailboxes/{user}`, in creation order.
pub fn dump(categories: &[Category]) -> Value {
    Value::Array(by_seq(categories.iter(), |c| c.seq, Category::to_json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_outlook() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches!(parse(&s(&["masterCategories"])), Ok(CategoryTarget::List)));
        assert!(matches!(parse(&s(&["MasterCategories", "x"])), Ok(CategoryTarget::One(id)) if id == "x"));
        assert_eq!(parse(&s(&["supportedLanguages"])).unwrap_err(), "supportedLanguages");
        assert_eq!(parse(&s(&[])).unwrap_err(), "outlook");
        assert_eq!(parse(&s(&["masterCategories", "x", "y"])).unwrap_err(), "y");
    }

    #[test]
    fn colours_are_the_documented_constants() {
        assert_eq!(COLORS.len(), 26);
        for i in 0..25 {
            assert!(COLORS.contains(&format!("preset{i}").as_str()));
        }
        assert!(!COLORS.contains(&"preset25") && !COLORS.contains(&"Preset1"));
    }

    #[test]
    fn a_new_mailbox_has_the_six_default_categories() {
        let d = defaults(3);
        let names: Vec<&str> = d.iter().map(|c| c.display_name.as_str()).collect();
        assert_eq!(names[0], "Red category");
        assert_eq!(d.len(), 6);
        assert!(d.iter().all(|c| COLORS.contains(&c.color.as_str())));
        // Stable per mailbox, distinct ids.
        assert_eq!(defaults(3)[0].id, d[0].id);
        assert_ne!(d[0].id, d[1].id);
    }
}
