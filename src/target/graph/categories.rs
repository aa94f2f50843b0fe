//! Outlook's master category list: where a label-based source's labels
//! (Gmail's) must be for Outlook to show them.
//!
//! A message's `categories` are plain strings: Exchange stores whatever a
//! copy is given, but Outlook lists, colours and filters by a category only
//! when the mailbox's master category list holds it
//! (learn.microsoft.com/graph/api/resources/outlookcategory). So before a
//! mailbox's messages are copied, once per mailbox per run and only when
//! labels become categories, the list is read (`GET
//! /users/{id}/outlook/masterCategories`, application permission
//! MailboxSettings.Read) and each label missing from it is added (`POST`
//! with `displayName` and `color`, MailboxSettings.ReadWrite):
//!
//! - The name is the very string the messages carry as a category: the
//!   labels go through [`json::categories`] exactly as an upload's do, so
//!   "Travel/Übersee" is one category named so, as on the messages.
//! - Names compare as Exchange compares them, ignoring case: a category
//!   the user already has ("work" for the label "Work") is left alone, and
//!   so is its colour. Nothing in the list is ever changed or removed.
//! - A new category's colour is stable per label: FNV-1a (32-bit) of the
//!   lower-cased name, modulo 25, picks `preset0` … `preset24`. Gmail's own
//!   label colours are not available over IMAP (nor in a Takeout export),
//!   so the same label gets the same colour in every mailbox and every run.
//! - The requests spend the mailbox's budget like any other
//!   ([`super::client::Http::send`]) and are classified the same way. A
//!   create is safe to repeat (the list refuses a second category of the
//!   same name), so it is retried like a GET; a create Exchange refuses is
//!   checked against a fresh read of the list, since a refusal may only say
//!   that the category exists (another session, an answer lost).
//! - Without the permission (403) mail is copied all the same, with the
//!   labels as categories on the messages; the admin is told once per run
//!   which permission to grant, and the next run adds the labels.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use reqwest::Method;

use super::api::{CategoryPage, NewCategory};
use super::client::{Body, Call};
use super::failure::Failure;
use super::{Inner, Mailbox, json, parse, seg};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Flags;

/// The categoryColor a new category for `name` gets: `preset0` …
/// `preset24`, from FNV-1a (32-bit) of the lower-cased name.
pub fn colour_of(name: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for b in name.to_lowercase().bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("preset{}", hash % 25)
}

/// The categories messages carrying `labels` get, made as an upload makes
/// them: the same strings, deduplicated ignoring case.
pub fn of_labels(labels: &[String]) -> Vec<String> {
    json::categories(&crate::transform::flags_with_labels(&Flags::default(), labels))
}

/// Whether a failure means the app may not read or change the list.
fn denied(f: &Failure) -> bool {
    f.status == Some(403) && !f.code.starts_with("ErrorQuotaExceeded")
}

/// What the admin is told when the app lacks the permission.
fn notice(email: &str, f: &Failure, writing: bool) -> String {
    let code = if f.code.is_empty() {
        String::new()
    } else {
        format!(" {}", f.code)
    };
    format!(
        "Gmail labels cannot be added to Outlook's category list: the app lacks the Microsoft Graph application permission MailboxSettings.ReadWrite ({} the list of {email} was refused: HTTP 403{code}). Mail is copied all the same and the messages carry their labels as categories, but Outlook shows a label in its category list (colour, filter, search) only once the list holds it. Grant the app MailboxSettings.ReadWrite (application permission, with admin consent; where RBAC for Applications or an application access policy limits the app, allow it there too) and run again: the next run adds the labels to each mailbox's category list",
        if writing { "adding to" } else { "reading" }
    )
}

impl Inner {
    /// `Target::register_labels` for Graph: the categories `labels` become
    /// are added to the mailbox's master category list where missing; with
    /// no labels the list is only read. `Ok(Some(note))` when the app may
    /// not do so (logged once per run when there were labels to add).
    pub(super) async fn register_labels(&self, email: &str, labels: &[String]) -> Result<Option<String>> {
        let email = email.trim();
        let mailbox = self.mailbox(email);
        let users = format!("{}/v1.0/users/{}", self.settings.endpoint, seg(email));
        let wanted = of_labels(labels);
        let result = self.add_missing(&mailbox, &users, &wanted).await;
        match result {
            Ok(created) => {
                if created > 0 {
                    tracing::info!(user = %email, created, "added labels to the mailbox's Outlook category list");
                }
                Ok(None)
            }
            Err(Refusal::Denied(f, writing)) => {
                let note = notice(email, &f, writing);
                if !wanted.is_empty() {
                    if !self.warned_categories.swap(true, Ordering::SeqCst) {
                        tracing::warn!("{note}");
                    } else {
                        tracing::info!(user = %email, "labels not added to the Outlook category list: the app lacks MailboxSettings.ReadWrite (see the warning above)");
                    }
                }
                Ok(Some(note))
            }
            Err(Refusal::Failed(e)) => Err(e),
        }
    }

    /// Reads the list once per mailbox per run, then creates what `wanted`
    /// names and the list lacks; how many were created.
    async fn add_missing(
        &self,
        mailbox: &Mailbox,
        users: &str,
        wanted: &[String],
    ) -> std::result::Result<usize, Refusal> {
        let collection = format!("{users}/outlook/masterCategories");
        // Held across the requests: two sessions of one mailbox do not both
        // create the same category.
        let mut known = mailbox.categories.lock().await;
        if known.is_none() {
            *known = Some(self.read_list(mailbox, &collection).await?);
        }
        let Some(known) = known.as_mut() else {
            return Ok(0);
        };
        let mut created = 0;
        for name in wanted {
            if known.contains(&name.to_lowercase()) {
                continue;
            }
            let colour = colour_of(name);
            let body = serde_json::to_vec(&NewCategory {
                display_name: name,
                color: &colour,
            })
            .expect("serializes");
            let what = format!("add category {name} to the Outlook category list");
            // Safe to repeat: the list takes a name once.
            let call = Call {
                method: Method::POST,
                url: collection.clone(),
                body: Body::Json(body.into()),
                what: &what,
                authorized: true,
                idempotent: true,
            };
            match self.http.send(&mailbox.limits, &call).await {
                Ok(_) => {
                    known.insert(name.to_lowercase());
                    created += 1;
                }
                Err(f) if denied(&f) => return Err(Refusal::Denied(f, true)),
                // Refused: most likely because it exists (made meanwhile, or
                // an answer lost before a retry); the list says.
                Err(f) if f.error.kind == ErrorKind::Item => {
                    *known = self.read_list(mailbox, &collection).await?;
                    if !known.contains(&name.to_lowercase()) {
                        tracing::warn!(
                            "{}; the messages carry the category all the same, but Outlook does not list it: add it in Outlook (Categorize > Manage categories) or rename the label",
                            f.error
                        );
                    }
                }
                Err(f) => return Err(Refusal::Failed(f.error)),
            }
        }
        Ok(created)
    }

    /// Every name in the mailbox's master category list, lower-cased.
    async fn read_list(&self, mailbox: &Mailbox, collection: &str) -> std::result::Result<HashSet<String>, Refusal> {
        let mut names = HashSet::new();
        let mut url = collection.to_owned();
        loop {
            let reply = match self
                .http
                .send(&mailbox.limits, &Call::get(url, "read the Outlook category list"))
                .await
            {
                Ok(r) => r,
                Err(f) if denied(&f) => return Err(Refusal::Denied(f, false)),
                Err(f) => return Err(Refusal::Failed(f.error)),
            };
            let page: CategoryPage = parse(&reply.body, "read the Outlook category list").map_err(Refusal::Failed)?;
            names.extend(page.value.into_iter().map(|c| c.display_name.to_lowercase()));
            match page.next_link {
                Some(next) => url = self.same_origin(next).map_err(Refusal::Failed)?,
                None => return Ok(names),
            }
        }
    }

    /// A paging link, refused unless it points back at the configured
    /// endpoint: the token must not go anywhere else.
    fn same_origin(&self, link: String) -> Result<String> {
        if link.starts_with(&format!("{}/", self.settings.endpoint)) {
            Ok(link)
        } else {
            Err(Error::fatal(format!(
                "Graph answered with a paging link outside {} ; refusing to send the app's token there (check [target] endpoint)",
                self.settings.endpoint
            )))
        }
    }
}

/// Why the list could not be brought up to date.
enum Refusal {
    /// 403: the app lacks MailboxSettings.Read (reading) or .ReadWrite.
    Denied(Failure, bool),
    Failed(Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_stable_presets_whatever_the_case() {
        for name in ["Work", "family", "Travel/Übersee", "Projects 2024", ""] {
            let c = colour_of(name);
            let n: u32 = c.strip_prefix("preset").unwrap().parse().unwrap();
            assert!(n < 25, "{c}");
            assert_eq!(colour_of(&name.to_uppercase()), c, "{name}");
        }
        // Pinned: a label's colour must not change between versions.
        // FNV-1a("a") = 0xe40c292c = 3826002220, and 3826002220 % 25 = 20.
        assert_eq!(colour_of("a"), "preset20");
        assert_eq!(colour_of("Work"), "preset9");
        assert_eq!(colour_of("Travel/Übersee"), "preset15");
        let spread: HashSet<String> = (0..200).map(|i| colour_of(&format!("label {i}"))).collect();
        assert!(spread.len() > 20, "{spread:?}");
    }

    #[test]
    fn category_names_are_the_messages_categories() {
        let labels: Vec<String> = ["Work", "Travel/Übersee", "work", "Projects 2024", "$Junk"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // What an upload carrying these labels sets (json::categories of the
        // flags with the labels), nested labels and spaces kept as they are.
        let upload = json::categories(&crate::transform::flags_with_labels(&Flags::default(), &labels));
        assert_eq!(of_labels(&labels), upload);
        assert_eq!(of_labels(&labels), ["Work", "Travel/Übersee", "Projects 2024"]);
    }

    #[test]
    fn the_notice_names_the_permission_and_the_next_run() {
        let f = super::super::failure::classify(
            403,
            None,
            br#"{"error":{"code":"ErrorAccessDenied","message":"Access is denied."}}"#,
            "x",
        );
        assert!(denied(&f));
        let n = notice("a@contoso.test", &f, true);
        assert!(
            n.contains("MailboxSettings.ReadWrite") && n.contains("admin consent"),
            "{n}"
        );
        assert!(n.contains("next run") && n.contains("a@contoso.test") && n.contains("ErrorAccessDenied"));
        // A full mailbox is not a missing permission.
        let full = super::super::failure::classify(403, None, br#"{"error":{"code":"ErrorQuotaExceeded"}}"#, "x");
        assert!(!denied(&full));
    }
}
