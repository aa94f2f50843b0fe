//! Microsoft Graph v1.0 request bodies for calendar events and contacts,
//! built from the neutral models of [`crate::transform::event`] and
//! [`crate::transform::contact`]. Pure builders: no I/O, no async.
//!
//! # Time zones
//!
//! `dateTimeTimeZone.timeZone` takes "any of the time zones currently
//! supported by Windows, as well as the other time zones supported by the
//! calendar API" (a list of about a hundred IANA names), and Graph warns
//! that create and update may not support all of them
//! (learn.microsoft.com/graph/api/resources/datetimetimezone). Windows
//! names are the one form every method takes and the one Exchange stores,
//! so every time is written with the Windows name of its IANA zone
//! ([`event::windows_zone_name`]: CLDR's mapping, else the Windows zone
//! with the same offsets); `Europe/Amsterdam`, which is not on Graph's IANA
//! list, is written as `W. Europe Standard Time`. A zone no Windows zone
//! matches is written as UTC, its times converted. `recurrenceTimeZone`
//! is the start's Windows name too (Graph would otherwise use the event's
//! zone: the same, but explicit).
//!
//! # What the writer adds
//!
//! The bodies carry no `transactionId` and no extended properties (the
//! writer stamps those), do nothing about invitations (the writer creates
//! events so that none are sent), and leave attachments and contact photos
//! to separate requests ([`attachment_json`]; `PUT /contacts/{id}/photo/$value`).

use base64::Engine as _;
use chrono::{NaiveDate, NaiveDateTime};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

use crate::transform::contact::{Address, Contact, ContactKind, PartialDate, PhoneKind, Photo};
use crate::transform::event::{
    self, Attachment, AttachmentContent, AttendeeRole, Event, EventStatus, EventTime, PatternKind, RangeEnd,
    Recurrence, RecurrencePattern, RecurrenceRange, Response, Sensitivity, ShowAs,
};

/// Most e-mail addresses an Outlook contact holds (Email 1–3).
pub const CONTACT_EMAILS_MAX: usize = 3;
/// Most business and most home phone numbers (Business, Business 2; Home, Home 2).
pub const CONTACT_PHONES_MAX: usize = 2;
/// Most IM addresses (IM address 1–3).
pub const CONTACT_IM_MAX: usize = 3;
/// The year written for a birthday without one (Apple Contacts' placeholder).
pub const NO_YEAR: i32 = 1604;

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

/// The body of `POST /users/{id}/calendars/{id}/events` for `event`.
///
/// Subject, body (the description, HTML when the source had an HTML body,
/// and a footer naming the original organizer, each attendee's response,
/// the event's link and linked attachments: Graph makes the mailbox owner
/// the organizer and starts every response afresh), start and end,
/// isAllDay, location, attendees with their type, showAs, sensitivity,
/// importance, categories, the reminder, and the recurrence for a
/// [`Recurrence::Pattern`] series. A [`Recurrence::Expanded`] series gets no
/// recurrence: write [`Event::single_events`] instead. A cancelled event
/// (STATUS:CANCELLED) is written as Outlook keeps one: "Canceled: " before
/// the subject, shown as free.
pub fn event_json(event: &Event) -> Value {
    let mut body = event_fields(event);
    if let Some(Recurrence::Pattern { pattern, range }) = &event.recurrence {
        let start = body.get("start").cloned().unwrap_or(Value::Null);
        body.insert(
            "recurrence".into(),
            recurrence_json(pattern, range, &start, event.default_zone),
        );
    }
    Value::Object(body)
}

/// The body of `PATCH /users/{id}/events/{occurrence id}` for an override
/// ([`event::Override::event`]): the same fields as [`event_json`], without
/// recurrence.
pub fn occurrence_patch_json(occurrence: &Event) -> Value {
    let mut fields = event_fields(occurrence);
    // Whether the event is all-day belongs to the series: Graph refuses it
    // on one occurrence.
    fields.remove("isAllDay");
    Value::Object(fields)
}

/// A `fileAttachment` for `POST /events/{id}/attachments`, for an inline
/// attachment (`None` for a link, which is named in the body's footer).
/// Graph takes up to 3 MB this way; a larger one needs an upload session.
pub fn attachment_json(attachment: &Attachment) -> Option<Value> {
    let AttachmentContent::Inline { bytes } = &attachment.content else {
        return None;
    };
    Some(json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "name": attachment.name.clone().unwrap_or_else(|| "attachment".into()),
        "contentType": attachment.media_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
        "contentBytes": base64::engine::general_purpose::STANDARD.encode(bytes),
    }))
}

/// A `dateTimeTimeZone` for `t`: its wall-clock time and the Windows name
/// of its zone (floating times and dates in `default_zone`; a zone with no
/// Windows equivalent converted to UTC).
pub fn date_time_time_zone(t: &EventTime, default_zone: Tz) -> Value {
    let (local, zone) = graph_time(t, default_zone);
    json!({ "dateTime": fmt_local(&local), "timeZone": zone })
}

fn graph_time(t: &EventTime, default_zone: Tz) -> (NaiveDateTime, &'static str) {
    let zone = t.zone(default_zone);
    match (t, event::windows_zone_name(zone)) {
        (EventTime::Utc { at }, _) => (at.naive_utc(), "UTC"),
        (EventTime::Date { .. }, Some(w)) => (t.local(), w),
        // An all-day date stays at midnight whatever the zone.
        (EventTime::Date { .. }, None) => (t.local(), "UTC"),
        (_, Some(w)) => (t.local(), w),
        (_, None) => (t.to_utc(default_zone).naive_utc(), "UTC"),
    }
}

fn fmt_local(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn event_fields(event: &Event) -> Map<String, Value> {
    let mut m = Map::new();
    let cancelled = event.status == EventStatus::Cancelled;
    let subject = event.summary.clone().unwrap_or_default();
    m.insert(
        "subject".into(),
        json!(if cancelled {
            format!("Canceled: {subject}")
        } else {
            subject
        }),
    );
    if let Some(body) = body_json(event) {
        m.insert("body".into(), body);
    }
    let zone = event.default_zone;
    m.insert("start".into(), date_time_time_zone(&event.start, zone));
    m.insert("end".into(), date_time_time_zone(&event.end, zone));
    m.insert("isAllDay".into(), json!(event.is_all_day));
    if let Some(location) = event.location.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        m.insert("location".into(), json!({ "displayName": location }));
    }
    if !event.attendees.is_empty() {
        let attendees: Vec<Value> = event
            .attendees
            .iter()
            .map(|a| {
                let mut address = Map::new();
                address.insert("address".into(), json!(a.email));
                if let Some(name) = &a.name {
                    address.insert("name".into(), json!(name));
                }
                json!({
                    "emailAddress": address,
                    "type": match a.role {
                        AttendeeRole::Required => "required",
                        AttendeeRole::Optional => "optional",
                        AttendeeRole::Resource => "resource",
                    },
                })
            })
            .collect();
        m.insert("attendees".into(), Value::Array(attendees));
    }
    let show_as = if cancelled {
        "free"
    } else {
        match event.show_as {
            ShowAs::Free => "free",
            ShowAs::Tentative => "tentative",
            ShowAs::Busy => "busy",
            ShowAs::Oof => "oof",
            ShowAs::WorkingElsewhere => "workingElsewhere",
        }
    };
    m.insert("showAs".into(), json!(show_as));
    m.insert(
        "sensitivity".into(),
        json!(match event.sensitivity {
            Sensitivity::Normal => "normal",
            Sensitivity::Private => "private",
            Sensitivity::Confidential => "confidential",
        }),
    );
    m.insert(
        "importance".into(),
        json!(match event.priority {
            Some(1..=4) => "high",
            Some(6..=9) => "low",
            _ => "normal",
        }),
    );
    // The event's colour as the nearest of Outlook's colour categories,
    // beside its own categories.
    let mut categories = event.categories.clone();
    if let Some(category) = event.color.as_deref().and_then(crate::transform::event::color_category)
        && !categories.iter().any(|c| c.eq_ignore_ascii_case(category))
    {
        categories.push(category.to_owned());
    }
    if !categories.is_empty() {
        m.insert("categories".into(), json!(categories));
    }
    // Always said, so Outlook's default reminder is not added to an event
    // that had none.
    match event.reminder_minutes_before_start {
        Some(minutes) => {
            m.insert("isReminderOn".into(), json!(true));
            m.insert(
                "reminderMinutesBeforeStart".into(),
                json!(minutes.clamp(0, i32::MAX as i64)),
            );
        }
        None => {
            m.insert("isReminderOn".into(), json!(false));
        }
    }
    m
}

/// Graph's `patternedRecurrence`: only the properties the pattern's type
/// uses (Graph refuses the others), the range's start date the start's own
/// date as written (Graph requires them to agree).
fn recurrence_json(pattern: &RecurrencePattern, range: &RecurrenceRange, start: &Value, default_zone: Tz) -> Value {
    let mut p = Map::new();
    p.insert("type".into(), json!(pattern.kind.as_str()));
    p.insert("interval".into(), json!(pattern.interval.max(1)));
    let days = || json!(pattern.days_of_week.iter().map(|d| d.as_str()).collect::<Vec<_>>());
    match pattern.kind {
        PatternKind::Daily => {}
        PatternKind::Weekly => {
            p.insert("daysOfWeek".into(), days());
            p.insert("firstDayOfWeek".into(), json!(pattern.first_day_of_week.as_str()));
        }
        PatternKind::AbsoluteMonthly => {
            p.insert("dayOfMonth".into(), json!(pattern.day_of_month.unwrap_or(1)));
        }
        PatternKind::RelativeMonthly => {
            p.insert("daysOfWeek".into(), days());
            p.insert(
                "index".into(),
                json!(pattern.index.map(|i| i.as_str()).unwrap_or("first")),
            );
        }
        PatternKind::AbsoluteYearly => {
            p.insert("dayOfMonth".into(), json!(pattern.day_of_month.unwrap_or(1)));
            p.insert("month".into(), json!(pattern.month.unwrap_or(1)));
        }
        PatternKind::RelativeYearly => {
            p.insert("daysOfWeek".into(), days());
            p.insert(
                "index".into(),
                json!(pattern.index.map(|i| i.as_str()).unwrap_or("first")),
            );
            p.insert("month".into(), json!(pattern.month.unwrap_or(1)));
        }
    }
    let start_date = start
        .get("dateTime")
        .and_then(Value::as_str)
        .and_then(|s| s.get(..10))
        .map(str::to_string)
        .unwrap_or_else(|| range.start_date.format("%Y-%m-%d").to_string());
    let zone = start
        .get("timeZone")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| event::windows_zone_name(range.time_zone).map(str::to_string))
        .unwrap_or_else(|| event::windows_zone_name(default_zone).unwrap_or("UTC").to_string());
    let mut r = Map::new();
    match range.end {
        RangeEnd::EndDate { date } => {
            r.insert("type".into(), json!("endDate"));
            r.insert("startDate".into(), json!(start_date));
            let end = date.format("%Y-%m-%d").to_string();
            r.insert("endDate".into(), json!(end.max(start_date.clone())));
        }
        RangeEnd::NoEnd => {
            r.insert("type".into(), json!("noEnd"));
            r.insert("startDate".into(), json!(start_date));
        }
        RangeEnd::Numbered { count } => {
            r.insert("type".into(), json!("numbered"));
            r.insert("startDate".into(), json!(start_date));
            r.insert("numberOfOccurrences".into(), json!(count.clamp(1, i32::MAX as u32)));
        }
    }
    r.insert("recurrenceTimeZone".into(), json!(zone));
    json!({ "pattern": p, "range": r })
}

/// The event's body: its description (HTML when it has an HTML body) and
/// the footer, in the same form.
fn body_json(event: &Event) -> Option<Value> {
    let footer = footer_lines(event);
    let (text, html) = match &event.description {
        Some(d) => (d.text.trim_end().to_string(), d.html.clone()),
        None => (String::new(), None),
    };
    if text.is_empty() && html.is_none() && footer.is_empty() {
        return None;
    }
    Some(match html {
        Some(html) => {
            let content = if footer.is_empty() {
                html
            } else {
                insert_before_body_end(&html, &footer_html(&footer))
            };
            json!({ "contentType": "html", "content": content })
        }
        None => {
            let mut content = text;
            if !footer.is_empty() {
                if !content.is_empty() {
                    content.push_str("\n\n");
                }
                content.push_str("--\n");
                let lines: Vec<String> = footer.iter().map(|(k, v, _)| format!("{k}: {v}")).collect();
                content.push_str(&lines.join("\n"));
            }
            json!({ "contentType": "text", "content": content })
        }
    })
}

/// The footer's lines: `(label, text, link)`.
fn footer_lines(event: &Event) -> Vec<(&'static str, String, Option<String>)> {
    let mut out = Vec::new();
    if let Some(o) = &event.organizer {
        let who = match &o.name {
            Some(n) if !n.eq_ignore_ascii_case(&o.email) => format!("{n} <{}>", o.email),
            _ => o.email.clone(),
        };
        out.push(("Organizer", who, None));
    }
    for (label, response) in [
        ("Accepted", Response::Accepted),
        ("Tentative", Response::Tentative),
        ("Declined", Response::Declined),
        ("Delegated", Response::Delegated),
        ("No response", Response::None),
    ] {
        let names: Vec<&str> = event
            .attendees
            .iter()
            .filter(|a| a.response == response)
            .map(|a| a.name.as_deref().unwrap_or(&a.email))
            .collect();
        if !names.is_empty() {
            out.push((label, names.join(", "), None));
        }
    }
    if let Some(url) = &event.url {
        out.push(("Link", url.clone(), Some(url.clone())));
    }
    for a in &event.attachments {
        if let AttachmentContent::Uri { uri } = &a.content {
            let text = match &a.name {
                Some(n) => format!("{n} ({uri})"),
                None => uri.clone(),
            };
            out.push(("Attachment", text, Some(uri.clone())));
        }
    }
    out
}

fn footer_html(lines: &[(&'static str, String, Option<String>)]) -> String {
    let mut s = String::from(
        "<div style=\"margin-top:1em;padding-top:0.5em;border-top:1px solid #ccc;font-size:smaller;color:#555\">",
    );
    for (label, text, link) in lines {
        s.push_str("<div>");
        s.push_str(label);
        s.push_str(": ");
        match link {
            Some(href) if href.starts_with("http://") || href.starts_with("https://") => {
                s.push_str(&format!("<a href=\"{}\">{}</a>", escape_html(href), escape_html(text)));
            }
            _ => s.push_str(&escape_html(text)),
        }
        s.push_str("</div>");
    }
    s.push_str("</div>");
    s
}

fn insert_before_body_end(html: &str, footer: &str) -> String {
    match html.to_ascii_lowercase().rfind("</body>") {
        Some(at) => format!("{}{}{}", &html[..at], footer, &html[at..]),
        None => format!("{html}{footer}"),
    }
}

/// Body HTML leaves `'` as it is (the attribute values it writes are
/// double-quoted).
fn escape_html(s: &str) -> String {
    crate::report::escape_html(s, false)
}

// ---------------------------------------------------------------------------
// Contacts
// ---------------------------------------------------------------------------

/// The body of `POST /users/{id}/contactFolders/{id}/contacts` for
/// `contact`, and every loss the report should show.
///
/// Outlook holds three e-mail addresses, two business and two home phone
/// numbers, one mobile, three IM addresses, one home, one business and one
/// other address, one web page, and has no field (in Graph v1.0) for fax,
/// pager or other numbers, anniversaries or contact groups: what does not
/// fit goes into `personalNotes` under "Also in the original card", and a
/// line for each goes into the returned list. A birthday without a year is
/// written in the year 1604 (Apple Contacts' placeholder for "no year"),
/// and reported. Birthdays are written at 11:59 UTC, so the date is the
/// same in every zone from UTC−11 to UTC+12. A photo given as a link is
/// not fetched (reported); an inline photo is the writer's
/// `PUT /contacts/{id}/photo/$value`.
pub fn contact_json(contact: &Contact) -> (Value, Vec<String>) {
    let mut m = Map::new();
    let mut extra: Vec<String> = Vec::new();
    let mut losses: Vec<String> = Vec::new();
    let set = |m: &mut Map<String, Value>, key: &str, v: &Option<String>| {
        if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            m.insert(key.into(), json!(v));
        }
    };
    let n = &contact.name;
    set(&mut m, "givenName", &n.given);
    set(&mut m, "surname", &n.family);
    set(&mut m, "middleName", &n.middle);
    set(&mut m, "title", &n.prefix);
    set(&mut m, "generation", &n.suffix);
    let display = display_name(contact);
    if !display.is_empty() {
        m.insert("displayName".into(), json!(display));
    }
    set(&mut m, "nickName", &contact.nickname);
    set(&mut m, "companyName", &contact.organization);
    set(&mut m, "department", &contact.department);
    set(&mut m, "jobTitle", &contact.job_title);
    set(&mut m, "profession", &contact.role);
    set(&mut m, "spouseName", &contact.spouse);

    // E-mail addresses.
    let mut emails = Vec::new();
    for (i, e) in contact.emails.iter().enumerate() {
        if i < CONTACT_EMAILS_MAX {
            let mut address = Map::new();
            address.insert("address".into(), json!(e.address));
            if !display.is_empty() {
                address.insert("name".into(), json!(display));
            }
            emails.push(Value::Object(address));
        } else {
            extra.push(format!(
                "E-mail{}: {}",
                kind_suffix(e.kind, e.label.as_deref()),
                e.address
            ));
        }
    }
    if contact.emails.len() > CONTACT_EMAILS_MAX {
        let dropped: Vec<&str> = contact.emails[CONTACT_EMAILS_MAX..]
            .iter()
            .map(|e| e.address.as_str())
            .collect();
        losses.push(format!(
            "{} more e-mail address{} ({}) kept in the notes: Outlook contacts hold {CONTACT_EMAILS_MAX}",
            dropped.len(),
            if dropped.len() == 1 { "" } else { "es" },
            dropped.join(", ")
        ));
    }
    if !emails.is_empty() {
        m.insert("emailAddresses".into(), Value::Array(emails));
    }

    // Phones.
    let (mut business, mut home, mut mobile) = (Vec::new(), Vec::new(), None);
    for p in &contact.phones {
        let number = p.number.trim();
        if number.is_empty() {
            continue;
        }
        let (label, fits) = match p.kind {
            PhoneKind::Work if business.len() < CONTACT_PHONES_MAX => {
                business.push(number.to_string());
                continue;
            }
            PhoneKind::Home if home.len() < CONTACT_PHONES_MAX => {
                home.push(number.to_string());
                continue;
            }
            PhoneKind::Mobile if mobile.is_none() => {
                mobile = Some(number.to_string());
                continue;
            }
            PhoneKind::Work => ("Work phone", "a third work number"),
            PhoneKind::Home => ("Home phone", "a third home number"),
            PhoneKind::Mobile => ("Mobile", "a second mobile number"),
            PhoneKind::HomeFax => ("Home fax", "a home fax number"),
            PhoneKind::WorkFax => ("Work fax", "a work fax number"),
            PhoneKind::Fax => ("Fax", "a fax number"),
            PhoneKind::Pager => ("Pager", "a pager number"),
            PhoneKind::Other => ("Phone", "an other phone number"),
        };
        let label = match p.label.as_deref().filter(|l| !l.trim().is_empty()) {
            Some(l) => format!("{label} ({})", l.trim()),
            None => label.to_string(),
        };
        extra.push(format!("{label}: {number}"));
        losses.push(format!(
            "{fits} ({number}) kept in the notes: Outlook contacts have no field for it"
        ));
    }
    if !business.is_empty() {
        m.insert("businessPhones".into(), json!(business));
    }
    if !home.is_empty() {
        m.insert("homePhones".into(), json!(home));
    }
    if let Some(mobile) = mobile {
        m.insert("mobilePhone".into(), json!(mobile));
    }

    // Postal addresses.
    let mut taken = [false; 3];
    for a in &contact.addresses {
        let (slot, key) = match a.kind {
            ContactKind::Home => (0, "homeAddress"),
            ContactKind::Work => (1, "businessAddress"),
            ContactKind::Other => (2, "otherAddress"),
        };
        if !taken[slot] {
            taken[slot] = true;
            m.insert(key.into(), physical_address(a));
        } else {
            let text = one_line_address(a);
            extra.push(format!("Address{}: {text}", kind_suffix(a.kind, a.label.as_deref())));
            losses.push(format!(
                "a second {} address ({text}) kept in the notes: Outlook contacts hold one of each",
                match a.kind {
                    ContactKind::Home => "home",
                    ContactKind::Work => "work",
                    ContactKind::Other => "other",
                }
            ));
        }
    }

    // Dates.
    if let Some(b) = contact.birthday {
        match birthday_timestamp(b) {
            Some(ts) => {
                m.insert("birthday".into(), json!(ts));
                if b.year.is_none() {
                    losses.push(format!(
                        "the birthday ({:02}-{:02}) has no year; written in the year {NO_YEAR}",
                        b.month, b.day
                    ));
                }
            }
            None => {
                extra.push(format!("Birthday: {}", fmt_partial(b)));
                losses.push(format!(
                    "the birthday ({}) is not a valid date; kept in the notes",
                    fmt_partial(b)
                ));
            }
        }
    }
    if let Some(a) = contact.anniversary {
        extra.push(format!("Anniversary: {}", fmt_partial(a)));
        losses.push(format!(
            "the anniversary ({}) kept in the notes: Graph has no anniversary field",
            fmt_partial(a)
        ));
    }

    // IM and web.
    let im: Vec<&str> = contact
        .im_addresses
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if !im.is_empty() {
        m.insert(
            "imAddresses".into(),
            json!(im.iter().take(CONTACT_IM_MAX).collect::<Vec<_>>()),
        );
        for x in im.iter().skip(CONTACT_IM_MAX) {
            extra.push(format!("IM: {x}"));
        }
        if im.len() > CONTACT_IM_MAX {
            losses.push(format!(
                "{} more IM address(es) kept in the notes: Outlook contacts hold {CONTACT_IM_MAX}",
                im.len() - CONTACT_IM_MAX
            ));
        }
    }
    let urls: Vec<&str> = contact
        .urls
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some((first, rest)) = urls.split_first() {
        m.insert("businessHomePage".into(), json!(first));
        for u in rest {
            extra.push(format!("Web: {u}"));
        }
        if !rest.is_empty() {
            losses.push(format!(
                "{} more web address(es) kept in the notes: Outlook contacts hold one",
                rest.len()
            ));
        }
    }
    if let Some(Photo::Url { url }) = &contact.photo {
        extra.push(format!("Photo: {url}"));
        losses.push(format!("the photo is a link ({url}); it is not fetched or copied"));
    }

    // A group becomes a contact listing its members.
    if contact.is_group {
        for member in &contact.members {
            extra.push(format!("Member: {}", member_text(member)));
        }
        losses.push(format!(
            "\"{}\" is a contact group with {} member{}: Graph has no contact groups, so it is a contact whose notes list the members",
            if display.is_empty() { "(no name)" } else { &display },
            contact.members.len(),
            if contact.members.len() == 1 { "" } else { "s" }
        ));
    }

    if !contact.categories.is_empty() {
        m.insert("categories".into(), json!(contact.categories));
    }
    let mut notes = contact.notes.clone().unwrap_or_default().trim_end().to_string();
    if !extra.is_empty() {
        if !notes.is_empty() {
            notes.push_str("\n\n");
        }
        notes.push_str(NOTES_HEADING);
        notes.push('\n');
        notes.push_str(&extra.join("\n"));
    }
    if !notes.is_empty() {
        m.insert("personalNotes".into(), json!(notes));
    }
    (Value::Object(m), losses)
}

/// FN, else the name's parts, else the organization, else the first e-mail
/// ([`Contact::shown_name`], which `cutover verify` compares).
fn display_name(c: &Contact) -> String {
    c.shown_name()
}

/// The heading [`contact_json`] puts above what Outlook contacts have no
/// field for, in `personalNotes`.
const NOTES_HEADING: &str = "Also in the original card:";

/// The e-mail addresses and phone numbers [`contact_json`] kept in a
/// contact's `personalNotes` (below [`NOTES_HEADING`]), for `cutover
/// verify`, which counts them as held: (addresses, numbers).
pub fn notes_extras(notes: &str) -> (Vec<String>, Vec<String>) {
    const PHONES: [&str; 8] = [
        "Work phone",
        "Home phone",
        "Mobile",
        "Home fax",
        "Work fax",
        "Fax",
        "Pager",
        "Phone",
    ];
    let (mut emails, mut phones) = (Vec::new(), Vec::new());
    let Some((_, extras)) = notes.rsplit_once(NOTES_HEADING) else {
        return (emails, phones);
    };
    for line in extras.lines() {
        let Some((label, value)) = line.split_once(": ") else {
            continue;
        };
        // "E-mail (home)", "Work phone (Assistant)": the kind before any label.
        let kind = label.split(" (").next().unwrap_or(label);
        if kind == "E-mail" {
            emails.push(value.trim().to_owned());
        } else if PHONES.contains(&kind) {
            phones.push(value.trim().to_owned());
        }
    }
    (emails, phones)
}

fn kind_suffix(kind: ContactKind, label: Option<&str>) -> String {
    match label.map(str::trim).filter(|l| !l.is_empty()) {
        Some(l) => format!(" ({l})"),
        None => match kind {
            ContactKind::Home => " (home)".into(),
            ContactKind::Work => " (work)".into(),
            ContactKind::Other => String::new(),
        },
    }
}

fn physical_address(a: &Address) -> Value {
    let mut m = Map::new();
    let street: Vec<&str> = [&a.po_box, &a.extended, &a.street]
        .iter()
        .filter_map(|p| p.as_deref().map(str::trim).filter(|p| !p.is_empty()))
        .collect();
    if !street.is_empty() {
        m.insert("street".into(), json!(street.join("\n")));
    }
    for (key, v) in [
        ("city", &a.city),
        ("state", &a.region),
        ("postalCode", &a.postal_code),
        ("countryOrRegion", &a.country),
    ] {
        if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            m.insert(key.into(), json!(v));
        }
    }
    Value::Object(m)
}

fn one_line_address(a: &Address) -> String {
    [
        &a.po_box,
        &a.extended,
        &a.street,
        &a.postal_code,
        &a.city,
        &a.region,
        &a.country,
    ]
    .iter()
    .filter_map(|p| p.as_deref().map(str::trim).filter(|p| !p.is_empty()))
    .map(|p| p.replace(['\r', '\n'], " "))
    .collect::<Vec<_>>()
    .join(", ")
}

fn birthday_timestamp(b: PartialDate) -> Option<String> {
    let year = b.year.map(i32::from).unwrap_or(NO_YEAR);
    let date = NaiveDate::from_ymd_opt(year, b.month as u32, b.day as u32)?;
    Some(format!("{}T11:59:00Z", date.format("%Y-%m-%d")))
}

fn fmt_partial(d: PartialDate) -> String {
    match d.year {
        Some(y) => format!("{y:04}-{:02}-{:02}", d.month, d.day),
        None => format!("--{:02}-{:02}", d.month, d.day),
    }
}

fn member_text(member: &str) -> String {
    let m = member.trim();
    match m.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("mailto:") => m[7..].to_string(),
        _ => m.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::contact::{Email, NameParts, Phone};
    use crate::transform::event::{CalendarObject, split_calendar_in};

    fn corpus(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/data/pim/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn event_named<'a>(objects: &'a [CalendarObject], summary: &str) -> &'a Event {
        &objects
            .iter()
            .find(|o| o.event.summary.as_deref() == Some(summary))
            .unwrap_or_else(|| panic!("no {summary}"))
            .event
    }

    fn one(lines: &str) -> Event {
        let text = format!(
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:t\r\nSUMMARY:t\r\n{}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            lines.trim().replace('\n', "\r\n")
        );
        let (objects, problems) = split_calendar_in(&text, "Europe/Berlin");
        assert!(problems.is_empty(), "{problems:?}");
        objects.into_iter().next().unwrap().event
    }

    /// The recurrence JSON of a Europe/Berlin event starting at `start`.
    fn rec(start: &str, rule: &str) -> Value {
        let v = event_json(&one(&format!(
            "DTSTART;TZID=Europe/Berlin:{start}\nDURATION:PT1H\nRRULE:{rule}"
        )));
        v["recurrence"].clone()
    }

    #[test]
    fn google_series_as_graph_wants_it() {
        let (objects, _) = split_calendar_in(&corpus("google.ics"), "Europe/Berlin");
        let sync = event_named(&objects, "Team sync");
        let v = event_json(sync);
        assert_eq!(v["subject"], "Team sync");
        assert_eq!(
            v["start"],
            json!({"dateTime": "2025-03-04T10:00:00", "timeZone": "W. Europe Standard Time"})
        );
        assert_eq!(
            v["end"],
            json!({"dateTime": "2025-03-04T10:30:00", "timeZone": "W. Europe Standard Time"})
        );
        assert_eq!(v["isAllDay"], false);
        assert_eq!(v["location"], json!({"displayName": "Room 4.12, Building A"}));
        assert_eq!(
            v["recurrence"],
            json!({
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"], "firstDayOfWeek": "monday"},
                "range": {"type": "endDate", "startDate": "2025-03-04", "endDate": "2025-11-03",
                          "recurrenceTimeZone": "W. Europe Standard Time"}
            })
        );
        assert_eq!(v["isReminderOn"], true);
        assert_eq!(v["reminderMinutesBeforeStart"], 10);
        assert_eq!(
            (
                v["showAs"].as_str(),
                v["sensitivity"].as_str(),
                v["importance"].as_str()
            ),
            (Some("busy"), Some("normal"), Some("normal"))
        );
        assert_eq!(
            v["attendees"],
            json!([
                {"emailAddress": {"address": "alice@example.com", "name": "Alice Example"}, "type": "required"},
                {"emailAddress": {"address": "bob@example.com", "name": "bob@example.com"}, "type": "required"}
            ])
        );
        // Graph makes the mailbox owner the organizer: the footer keeps who
        // it was and who answered what.
        assert_eq!(v["body"]["contentType"], "text");
        let body = v["body"]["content"].as_str().unwrap();
        assert!(body.starts_with("Weekly sync of the platform team."), "{body}");
        assert!(
            body.ends_with("\n\n--\nOrganizer: Alice Example <alice@example.com>\nAccepted: Alice Example\nNo response: bob@example.com"),
            "{body}"
        );
        for k in ["transactionId", "singleValueExtendedProperties", "organizer"] {
            assert!(v.get(k).is_none(), "{k} is the writer's");
        }

        let moved = occurrence_patch_json(&sync.overrides[0].event);
        assert_eq!(moved["subject"], "Team sync (moved)");
        assert_eq!(
            moved["start"],
            json!({"dateTime": "2025-04-22T11:00:00", "timeZone": "W. Europe Standard Time"})
        );
        assert!(moved.get("recurrence").is_none());
        assert!(
            moved.get("isAllDay").is_none(),
            "Graph refuses isAllDay on one occurrence"
        );
    }

    #[test]
    fn every_pattern_type_with_only_its_own_properties() {
        assert_eq!(
            rec("20250106T090000", "FREQ=DAILY;INTERVAL=3;COUNT=10"),
            json!({"pattern": {"type": "daily", "interval": 3},
                   "range": {"type": "numbered", "startDate": "2025-01-06", "numberOfOccurrences": 10,
                             "recurrenceTimeZone": "W. Europe Standard Time"}})
        );
        assert_eq!(
            rec("20250106T090000", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;WKST=SU")["pattern"],
            json!({"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "thursday"], "firstDayOfWeek": "sunday"})
        );
        assert_eq!(
            rec("20250115T090000", "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=15")["pattern"],
            json!({"type": "absoluteMonthly", "interval": 3, "dayOfMonth": 15})
        );
        assert_eq!(
            rec("20250131T090000", "FREQ=MONTHLY;BYDAY=-1FR")["pattern"],
            json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"})
        );
        assert_eq!(
            rec("20250101T090000", "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1")["pattern"],
            json!({"type": "relativeMonthly", "interval": 1,
                   "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"], "index": "first"})
        );
        assert_eq!(
            rec("20250517T090000", "FREQ=YEARLY")["pattern"],
            json!({"type": "absoluteYearly", "interval": 1, "dayOfMonth": 17, "month": 5})
        );
        let third_sunday = rec("20250316T100000", "FREQ=YEARLY;BYMONTH=3;BYDAY=3SU");
        assert_eq!(
            third_sunday,
            json!({"pattern": {"type": "relativeYearly", "interval": 1, "daysOfWeek": ["sunday"], "index": "third", "month": 3},
                   "range": {"type": "noEnd", "startDate": "2025-03-16", "recurrenceTimeZone": "W. Europe Standard Time"}})
        );
        // A rule Graph cannot express has no recurrence: single events.
        assert!(rec("20250102T090000", "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=2,-1").is_null());
    }

    #[test]
    fn zones_are_windows_names_and_dst_keeps_wall_clock_time() {
        let (objects, _) = split_calendar_in(&corpus("google.ics"), "Europe/Berlin");
        let sydney = event_json(event_named(&objects, "Sydney office hours"));
        assert_eq!(
            sydney["start"],
            json!({"dateTime": "2025-04-02T09:00:00", "timeZone": "AUS Eastern Standard Time"})
        );
        assert_eq!(
            sydney["recurrence"]["range"]["recurrenceTimeZone"],
            "AUS Eastern Standard Time"
        );
        let planning = event_json(event_named(&objects, "Quarterly planning"));
        assert_eq!(
            planning["start"],
            json!({"dateTime": "2025-06-05T13:00:00", "timeZone": "UTC"})
        );

        let (objects, _) = split_calendar_in(&corpus("outlook.ics"), "Europe/Berlin");
        let ny = event_json(event_named(&objects, "New York sync"));
        assert_eq!(
            ny["start"],
            json!({"dateTime": "2025-10-23T09:00:00", "timeZone": "Eastern Standard Time"})
        );
        assert_eq!(ny["showAs"], "tentative");
        assert_eq!(ny["attendees"][1]["type"], "resource");
        let run = event_json(event_named(&objects, "Stadtlauf"));
        assert_eq!(
            (run["showAs"].as_str(), run["sensitivity"].as_str()),
            (Some("oof"), Some("private"))
        );
        assert_eq!(run["importance"], "high");
        assert_eq!(
            run["isReminderOn"], false,
            "no alarm: no Outlook default reminder either"
        );

        // Amsterdam is not on Graph's IANA list; its Windows zone is.
        let e = one("DTSTART;TZID=Europe/Amsterdam:20250106T090000\nDURATION:PT1H");
        assert_eq!(event_json(&e)["start"]["timeZone"], "W. Europe Standard Time");
        // Floating times are in the mailbox's zone.
        let e = one("DTSTART:20250610T190000\nDTEND:20250610T210000");
        assert_eq!(
            event_json(&e)["end"],
            json!({"dateTime": "2025-06-10T21:00:00", "timeZone": "W. Europe Standard Time"})
        );
    }

    #[test]
    fn all_day_events_run_midnight_to_midnight_in_one_zone() {
        let (objects, _) = split_calendar_in(&corpus("google.ics"), "Europe/Berlin");
        let v = event_json(event_named(&objects, "Summer holiday"));
        assert_eq!(v["isAllDay"], true);
        assert_eq!(
            v["start"],
            json!({"dateTime": "2025-07-14T00:00:00", "timeZone": "W. Europe Standard Time"})
        );
        assert_eq!(
            v["end"],
            json!({"dateTime": "2025-07-19T00:00:00", "timeZone": "W. Europe Standard Time"})
        );
        assert_eq!(v["showAs"], "free");
        assert!(v.get("body").is_none() && v.get("location").is_none());
        let birthday = event_json(event_named(&objects, "Mum's birthday"));
        assert_eq!(birthday["recurrence"]["range"]["startDate"], "1980-05-17");
        assert_eq!(birthday["sensitivity"], "private");
    }

    #[test]
    fn html_bodies_get_an_html_footer() {
        let e = one(
            "DTSTART:20250106T090000Z\nDURATION:PT1H\nDESCRIPTION:plain\nX-ALT-DESC;FMTTYPE=text/html:<html><body><p>Hi & bye</p></body></html>\n\
             ORGANIZER;CN=\"Ann <The Boss>\":mailto:ann@example.com\nATTENDEE;PARTSTAT=DECLINED;CN=Bo:mailto:bo@example.com\n\
             URL:https://example.com/a?b=1&c=2\nATTACH:https://files.example.com/deck.pdf",
        );
        let v = event_json(&e);
        assert_eq!(v["body"]["contentType"], "html");
        let html = v["body"]["content"].as_str().unwrap();
        assert!(html.starts_with("<html><body><p>Hi & bye</p><div "), "{html}");
        assert!(html.ends_with("</div></body></html>"), "{html}");
        assert!(
            html.contains("<div>Organizer: Ann &lt;The Boss&gt; &lt;ann@example.com&gt;</div>"),
            "{html}"
        );
        assert!(html.contains("<div>Declined: Bo</div>"));
        assert!(html.contains(
            "<div>Link: <a href=\"https://example.com/a?b=1&amp;c=2\">https://example.com/a?b=1&amp;c=2</a></div>"
        ));
        assert!(html.contains("Attachment: <a href=\"https://files.example.com/deck.pdf\">"));
    }

    #[test]
    fn an_event_colour_becomes_an_outlook_colour_category() {
        let e = one("DTSTART:20250106T090000Z\nDURATION:PT1H\nCOLOR:turquoise\nCATEGORIES:Work");
        assert_eq!(event_json(&e)["categories"], json!(["Work", "Blue category"]));
        let e = one("DTSTART:20250106T090000Z\nDURATION:PT1H\nCOLOR:gray");
        assert!(event_json(&e).get("categories").is_none());
    }

    #[test]
    fn cancelled_expanded_and_attachments() {
        let e = one("DTSTART:20250106T090000Z\nDURATION:PT1H\nSTATUS:CANCELLED");
        let v = event_json(&e);
        assert_eq!(
            (v["subject"].as_str(), v["showAs"].as_str()),
            (Some("Canceled: t"), Some("free"))
        );

        let (objects, _) = split_calendar_in(&corpus("thunderbird.ics"), "Europe/Berlin");
        let payroll = event_named(&objects, "Payroll run");
        assert!(event_json(payroll).get("recurrence").is_none());
        let singles: Vec<Value> = payroll.single_events().unwrap().iter().map(event_json).collect();
        assert_eq!(singles.len(), 6);
        assert_eq!(
            singles[1]["start"],
            json!({"dateTime": "2025-01-31T09:00:00", "timeZone": "W. Europe Standard Time"})
        );
        assert_eq!(singles[1]["categories"], json!(["Business", "Finance"]));

        let (objects, _) = split_calendar_in(&corpus("outlook.ics"), "Europe/Berlin");
        let vacation = event_named(&objects, "Vacation");
        let a = attachment_json(&vacation.attachments[0]).unwrap();
        assert_eq!(
            a,
            json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "itinerary.txt",
                   "contentType": "application/octet-stream",
                   "contentBytes": "RmxpZ2h0IExIIDQwMCBGUkEtPkpGSwpIb3RlbDogVGhlIEdyYW5kCg=="})
        );
        let island = event_json(event_named(&objects, "Island time"));
        assert_eq!(island["start"]["timeZone"], "UTC");
        assert!(island.get("recurrence").is_none());
    }

    fn email(address: &str, kind: ContactKind) -> Email {
        Email {
            address: address.into(),
            kind,
            label: None,
        }
    }

    fn phone(number: &str, kind: PhoneKind) -> Phone {
        Phone {
            number: number.into(),
            kind,
            label: None,
        }
    }

    #[test]
    fn contact_fields_and_what_does_not_fit() {
        let c = Contact {
            formatted_name: Some("Dr. Anna Maria Schmidt PhD".into()),
            name: NameParts {
                family: Some("Schmidt".into()),
                given: Some("Anna".into()),
                middle: Some("Maria".into()),
                prefix: Some("Dr.".into()),
                suffix: Some("PhD".into()),
            },
            nickname: Some("Anni".into()),
            organization: Some("Firma GmbH".into()),
            department: Some("Research".into()),
            job_title: Some("Lead".into()),
            emails: [
                "a@one.example",
                "b@two.example",
                "c@three.example",
                "d@four.example",
                "e@five.example",
            ]
            .iter()
            .map(|a| email(a, ContactKind::Work))
            .collect(),
            phones: vec![
                phone("+49 30 1", PhoneKind::Work),
                phone("+49 30 2", PhoneKind::Work),
                phone("+49 30 3", PhoneKind::Work),
                phone("+49 30 4", PhoneKind::Home),
                phone("+49 170 1", PhoneKind::Mobile),
                phone("+49 170 2", PhoneKind::Mobile),
                phone("+49 30 9", PhoneKind::WorkFax),
                phone("0800 PAGE", PhoneKind::Pager),
            ],
            addresses: vec![
                Address {
                    kind: ContactKind::Home,
                    label: None,
                    po_box: None,
                    extended: Some("2. OG".into()),
                    street: Some("Hauptstr. 5".into()),
                    city: Some("Berlin".into()),
                    region: None,
                    postal_code: Some("10115".into()),
                    country: Some("Germany".into()),
                },
                Address {
                    kind: ContactKind::Home,
                    label: None,
                    po_box: None,
                    extended: None,
                    street: Some("Seeweg 1".into()),
                    city: Some("Usedom".into()),
                    region: None,
                    postal_code: None,
                    country: None,
                },
            ],
            birthday: Some(PartialDate {
                year: None,
                month: 3,
                day: 15,
            }),
            anniversary: Some(PartialDate {
                year: Some(2004),
                month: 6,
                day: 25,
            }),
            spouse: Some("Jo".into()),
            notes: Some("Met at the conference.".into()),
            categories: vec!["Friends".into()],
            urls: vec!["https://anna.example".into(), "https://blog.anna.example".into()],
            im_addresses: vec!["xmpp:anna@jabber.example".into()],
            ..Default::default()
        };
        let (v, losses) = contact_json(&c);
        assert_eq!(v["givenName"], "Anna");
        assert_eq!(v["surname"], "Schmidt");
        assert_eq!(v["middleName"], "Maria");
        assert_eq!(v["title"], "Dr.");
        assert_eq!(v["generation"], "PhD");
        assert_eq!(v["displayName"], "Dr. Anna Maria Schmidt PhD");
        assert_eq!(v["nickName"], "Anni");
        assert_eq!(
            (
                v["companyName"].as_str(),
                v["department"].as_str(),
                v["jobTitle"].as_str()
            ),
            (Some("Firma GmbH"), Some("Research"), Some("Lead"))
        );
        assert_eq!(v["emailAddresses"].as_array().unwrap().len(), 3);
        assert_eq!(
            v["emailAddresses"][0],
            json!({"address": "a@one.example", "name": "Dr. Anna Maria Schmidt PhD"})
        );
        assert_eq!(v["businessPhones"], json!(["+49 30 1", "+49 30 2"]));
        assert_eq!(v["homePhones"], json!(["+49 30 4"]));
        assert_eq!(v["mobilePhone"], "+49 170 1");
        assert_eq!(
            v["homeAddress"],
            json!({"street": "2. OG\nHauptstr. 5", "city": "Berlin", "postalCode": "10115", "countryOrRegion": "Germany"})
        );
        assert!(v.get("otherAddress").is_none());
        assert_eq!(v["birthday"], "1604-03-15T11:59:00Z");
        assert_eq!(v["spouseName"], "Jo");
        assert_eq!(v["businessHomePage"], "https://anna.example");
        assert_eq!(v["imAddresses"], json!(["xmpp:anna@jabber.example"]));
        assert_eq!(v["categories"], json!(["Friends"]));
        let notes = v["personalNotes"].as_str().unwrap();
        assert!(
            notes.starts_with("Met at the conference.\n\nAlso in the original card:\n"),
            "{notes}"
        );
        for line in [
            "E-mail (work): d@four.example",
            "E-mail (work): e@five.example",
            "Work phone: +49 30 3",
            "Mobile: +49 170 2",
            "Work fax: +49 30 9",
            "Pager: 0800 PAGE",
            "Address (home): Seeweg 1, Usedom",
            "Anniversary: 2004-06-25",
            "Web: https://blog.anna.example",
        ] {
            assert!(notes.contains(line), "{line} missing from {notes}");
        }
        let all = losses.join("\n");
        for what in [
            "2 more e-mail addresses (d@four.example, e@five.example)",
            "a third work number (+49 30 3)",
            "a second mobile number (+49 170 2)",
            "a work fax number (+49 30 9)",
            "a pager number (0800 PAGE)",
            "a second home address",
            "has no year; written in the year 1604",
            "anniversary (2004-06-25)",
            "1 more web address",
        ] {
            assert!(all.contains(what), "{what} missing from {all}");
        }
        assert_eq!(losses.len(), 9, "{all}");
        // What verify counts as held in the notes: the addresses and numbers.
        let (emails, phones) = notes_extras(notes);
        assert_eq!(emails, ["d@four.example", "e@five.example"]);
        assert_eq!(phones, ["+49 30 3", "+49 170 2", "+49 30 9", "0800 PAGE"]);
        assert_eq!(notes_extras("Met at the conference.\nPhone: 1"), (vec![], vec![]));
    }

    #[test]
    fn groups_photos_and_bare_cards() {
        let group = Contact {
            formatted_name: Some("Book club".into()),
            is_group: true,
            members: vec!["urn:uuid:1234".into(), "mailto:x@example.com".into()],
            ..Default::default()
        };
        let (v, losses) = contact_json(&group);
        assert_eq!(v["displayName"], "Book club");
        assert_eq!(
            v["personalNotes"],
            "Also in the original card:\nMember: urn:uuid:1234\nMember: x@example.com"
        );
        assert!(losses[0].contains("contact group with 2 members"), "{losses:?}");

        let linked = Contact {
            emails: vec![email("only@example.com", ContactKind::Other)],
            photo: Some(Photo::Url {
                url: "https://img.example/p.jpg".into(),
            }),
            birthday: Some(PartialDate {
                year: Some(1980),
                month: 2,
                day: 30,
            }),
            ..Default::default()
        };
        let (v, losses) = contact_json(&linked);
        assert_eq!(v["displayName"], "only@example.com", "the e-mail when there is no name");
        assert!(v.get("birthday").is_none());
        assert!(losses.iter().any(|l| l.contains("not a valid date")));
        assert!(losses.iter().any(|l| l.contains("photo is a link")));

        let inline = Contact {
            formatted_name: Some("P".into()),
            photo: Some(Photo::Inline {
                media_type: Some("image/jpeg".into()),
                bytes: vec![0xff, 0xd8],
            }),
            birthday: Some(PartialDate {
                year: Some(1980),
                month: 5,
                day: 17,
            }),
            ..Default::default()
        };
        let (v, losses) = contact_json(&inline);
        assert_eq!(
            v,
            json!({"displayName": "P", "birthday": "1980-05-17T11:59:00Z"}),
            "the photo is the writer's PUT"
        );
        assert!(losses.is_empty());
        let (v, losses) = contact_json(&Contact::default());
        assert_eq!((v, losses.len()), (json!({}), 0));
    }

    #[test]
    fn every_corpus_card_fits_graph_limits() {
        for f in ["google.vcf", "apple.vcf", "outlook.vcf", "v4.vcf", "malformed.vcf"] {
            let (objects, _) = crate::transform::contact::split_vcards(&corpus(f));
            for o in objects {
                let (v, _) = contact_json(&o.contact);
                let len = |k: &str| v.get(k).and_then(Value::as_array).map_or(0, Vec::len);
                assert!(len("emailAddresses") <= CONTACT_EMAILS_MAX, "{f}: {v}");
                assert!(len("businessPhones") <= CONTACT_PHONES_MAX && len("homePhones") <= CONTACT_PHONES_MAX);
                assert!(len("imAddresses") <= CONTACT_IM_MAX);
            }
        }
    }
}
