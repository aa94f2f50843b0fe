//! Address books in the neutral form every contact source and target
//! shares. A Google Takeout `.vcf` (thousands of vCards), an Outlook or
//! Apple export, or one CardDAV object is split here into one
//! [`ContactObject`] per card: the card as a CardDAV target PUTs it (`raw`,
//! also what a content hash is taken of) and the parsed [`Contact`] the
//! Graph target translates.
//!
//! calcard parses every vCard version (2.1 with QUOTED-PRINTABLE and
//! CHARSET, 3.0, 4.0, folded lines, inline or linked PHOTO); this module
//! decides what the migration needs on top: which TYPE makes a phone a
//! mobile or a fax, what Apple's `item1.X-ABLabel` groups mean, which
//! birthday has no year, and what a group's members are. A card that
//! cannot be taken becomes an [`ItemProblem`] with a reason an admin can
//! act on; the others go on. Pure: no I/O, no async, never panics on input.

use calcard::common::{Data, PartialDateTime};
use calcard::vcard::{
    VCard, VCardEntry, VCardKind, VCardParameterName, VCardParameterValue, VCardProperty, VCardType, VCardValue,
    VCardVersion,
};
use calcard::{Entry, Parser};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use super::event::ItemProblem;

/// One card: what a CardDAV target stores.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContactObject {
    /// The card's UID, or `cutover-` and a hash of the card when it has
    /// none (then also written into `raw`, so a rerun finds the same UID).
    pub uid: String,
    /// The card as calcard writes it: vCard 3.0 for a 2.1 card (CardDAV
    /// takes 3.0 and 4.0), else the card's own version.
    pub raw: String,
    pub contact: Contact,
}

/// A contact in neutral form: what the targets write.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Contact {
    /// FN.
    pub formatted_name: Option<String>,
    pub name: NameParts,
    pub nickname: Option<String>,
    /// ORG's first part.
    pub organization: Option<String>,
    /// ORG's second part.
    pub department: Option<String>,
    /// TITLE.
    pub job_title: Option<String>,
    /// ROLE (Graph has no field; kept in the notes by the Graph target).
    pub role: Option<String>,
    /// In the card's order, the preferred one first.
    pub emails: Vec<Email>,
    pub phones: Vec<Phone>,
    pub addresses: Vec<Address>,
    pub birthday: Option<PartialDate>,
    pub anniversary: Option<PartialDate>,
    /// The spouse's name (Apple's labelled related name, vCard 4.0
    /// RELATED;TYPE=spouse as text, Outlook's X-MS-SPOUSE).
    pub spouse: Option<String>,
    pub notes: Option<String>,
    pub categories: Vec<String>,
    pub urls: Vec<String>,
    /// IMPP and the older X-JABBER/X-SKYPE/... fields, as URIs or handles.
    pub im_addresses: Vec<String>,
    pub photo: Option<Photo>,
    /// KIND:group or X-ADDRESSBOOKSERVER-KIND:group.
    pub is_group: bool,
    /// A group's MEMBER / X-ADDRESSBOOKSERVER-MEMBER entries (usually
    /// `urn:uuid:` UIDs of other cards, sometimes `mailto:` addresses).
    pub members: Vec<String>,
}

/// N's five parts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NameParts {
    pub family: Option<String>,
    pub given: Option<String>,
    pub middle: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Email {
    pub address: String,
    pub kind: ContactKind,
    /// Apple's or Google's custom label, when there is one.
    pub label: Option<String>,
}

/// Where an e-mail address or postal address belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    Home,
    Work,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Phone {
    pub number: String,
    pub kind: PhoneKind,
    pub label: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneKind {
    Home,
    Work,
    Mobile,
    HomeFax,
    WorkFax,
    /// A fax number with neither HOME nor WORK.
    Fax,
    Pager,
    Other,
}

/// ADR's seven parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Address {
    pub kind: ContactKind,
    pub label: Option<String>,
    pub po_box: Option<String>,
    pub extended: Option<String>,
    pub street: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

/// A date that may lack its year (`--0412`: 12 April, year unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PartialDate {
    pub year: Option<u16>,
    pub month: u8,
    pub day: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Photo {
    Inline { media_type: Option<String>, bytes: Vec<u8> },
    Url { url: String },
}

/// Splits vCard text into contact objects. Bad cards become problems; the
/// others go on.
pub fn split_vcards(text: &str) -> (Vec<ContactObject>, Vec<ItemProblem>) {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    // calcard reads vCard dates in the basic format only (19850423,
    // --0714); the extended one most exporters write (1985-04-23, --07-14)
    // would lose its day, and with it the birthday.
    let dates = basic_dates(text);
    let mut parser = Parser::new(&dates);
    let mut position = 0usize;
    let mut stray_lines = 0usize;
    loop {
        match parser.entry() {
            Entry::VCard(card) => {
                position += 1;
                match object(card, position) {
                    Ok(object) => objects.push(object),
                    Err(problem) => problems.push(problem),
                }
            }
            Entry::ICalendar(_) => {
                position += 1;
                problems.push(ItemProblem {
                    uid_or_position: format!("card #{position}"),
                    reason: "a calendar was found in a contacts file; it is skipped — import it as a calendar instead"
                        .into(),
                });
            }
            Entry::InvalidLine(_) => stray_lines += 1,
            Entry::UnexpectedComponentEnd { .. } | Entry::UnterminatedComponent(_) => {
                problems.push(ItemProblem {
                    uid_or_position: format!("card #{}", position + 1),
                    reason: "the card is not closed by END:VCARD; the file looks truncated — export it again".into(),
                });
            }
            Entry::TooManyComponents => {
                problems.push(ItemProblem {
                    uid_or_position: format!("card #{}", position + 1),
                    reason: "too many nested components; the rest of the file is skipped".into(),
                });
                break;
            }
            // `Entry` is non-exhaustive: anything new ends the file as Eof does.
            _ => break,
        }
    }
    // calcard is lenient and returns a card cut off by the end of the
    // file: a file not ending in END:VCARD lost its last card's tail.
    if let Some(last) = objects.last()
        && !ends_with_end_vcard(text)
    {
        problems.push(ItemProblem {
            uid_or_position: last.uid.clone(),
            reason: "the file ends inside this card (no END:VCARD); it looks truncated — export it again".into(),
        });
        objects.pop();
    }
    if stray_lines > 0 {
        problems.push(ItemProblem {
            uid_or_position: "contacts file".into(),
            reason: format!(
                "{stray_lines} line(s) outside any BEGIN:VCARD were ignored; check the file is a vCard export"
            ),
        });
    }
    (objects, problems)
}

/// `text` with the dates of BDAY, ANNIVERSARY and X-ANNIVERSARY lines in
/// the basic format: `1985-04-23` as `19850423`, `--07-14` as `--0714`,
/// a time's colons dropped. Other lines are left as they are.
fn basic_dates(text: &str) -> std::borrow::Cow<'_, str> {
    fn is_date_line(line: &str) -> bool {
        let name = line.split([':', ';']).next().unwrap_or("");
        let name = name.rsplit('.').next().unwrap_or(name);
        ["BDAY", "ANNIVERSARY", "X-ANNIVERSARY"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
    }
    fn basic(value: &str) -> Option<String> {
        let (date, time) = match value.split_once(['T', 't']) {
            Some((d, t)) => (d, Some(t)),
            None => (value, None),
        };
        let bytes = date.as_bytes();
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let date = if let Some(rest) = date.strip_prefix("--") {
            let (m, d) = rest.split_once('-')?;
            (digits(m) && digits(d) && m.len() == 2 && d.len() == 2).then(|| format!("--{m}{d}"))?
        } else if bytes.len() == 10 && bytes[4] == b'-' && bytes[7] == b'-' {
            let joined: String = date.split('-').collect();
            digits(&joined).then_some(joined)?
        } else {
            return None;
        };
        Some(match time {
            Some(t) => format!("{date}T{}", t.replace(':', "")),
            None => date,
        })
    }
    if !text.lines().any(|l| is_date_line(l) && l.contains('-')) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        match body.split_once(':') {
            Some((head, value)) if is_date_line(body) => match basic(value.trim()) {
                Some(value) => {
                    out.push_str(head);
                    out.push(':');
                    out.push_str(&value);
                    out.push_str(ending);
                }
                None => out.push_str(line),
            },
            _ => out.push_str(line),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn ends_with_end_vcard(text: &str) -> bool {
    let tail = text.trim_end();
    tail.len() >= 9
        && tail
            .get(tail.len() - 9..)
            .is_some_and(|end| end.eq_ignore_ascii_case("END:VCARD"))
}

fn object(mut card: VCard, position: usize) -> Result<ContactObject, ItemProblem> {
    let contact = read_contact(&card);
    let uid = card.uid().map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned);
    let label = || {
        uid.clone().unwrap_or_else(|| {
            contact.formatted_name.clone().map_or_else(
                || format!("card #{position}"),
                |name| format!("card #{position} ({name})"),
            )
        })
    };
    if contact.formatted_name.is_none()
        && contact.name == NameParts::default()
        && contact.organization.is_none()
        && contact.emails.is_empty()
        && contact.phones.is_empty()
    {
        return Err(ItemProblem {
            uid_or_position: label(),
            reason: "the card has no name, organisation, e-mail address or phone number; there is nothing to copy"
                .into(),
        });
    }
    let version = match card.version() {
        Some(VCardVersion::V4_0) => VCardVersion::V4_0,
        _ => VCardVersion::V3_0,
    };
    let uid = match uid {
        Some(uid) => uid,
        None => {
            // A stable UID from the card's content, written into the card so
            // the copy carries it.
            let digest = Sha256::digest(card_text(&card, version).as_bytes());
            let uid = format!(
                "cutover-{}",
                digest[..16].iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
            card.entries.push(VCardEntry {
                group: None,
                name: VCardProperty::Uid,
                params: Vec::new(),
                values: vec![VCardValue::Text(uid.clone())],
            });
            uid
        }
    };
    Ok(ContactObject {
        uid,
        raw: card_text(&card, version),
        contact,
    })
}

fn card_text(card: &VCard, version: VCardVersion) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = card.write_to(&mut out, version);
    out
}

// ---------------------------------------------------------------------------
// Reading one card

/// The TYPE values of an entry, lower-case ("cell", "home", "pref", ...).
fn types(entry: &VCardEntry) -> Vec<String> {
    let mut out = Vec::new();
    for param in &entry.params {
        let is_type = match &param.name {
            VCardParameterName::Type => true,
            // vCard 2.1 writes bare types: TEL;WORK;VOICE.
            VCardParameterName::Other(name) => !name.contains('-') && !name.contains('='),
            _ => false,
        };
        if !is_type {
            continue;
        }
        let text = match &param.value {
            VCardParameterValue::Type(t) => type_name(t).to_owned(),
            VCardParameterValue::Text(t) => t.to_ascii_lowercase(),
            _ => continue,
        };
        for one in text.split(',') {
            let one = one.trim().trim_matches('"');
            if !one.is_empty() {
                out.push(one.to_ascii_lowercase());
            }
        }
    }
    if entry.params.iter().any(|p| p.name == VCardParameterName::Pref) {
        out.push("pref".into());
    }
    out
}

fn type_name(t: &VCardType) -> &'static str {
    match t {
        VCardType::Work => "work",
        VCardType::Home => "home",
        VCardType::Fax => "fax",
        VCardType::Cell => "cell",
        VCardType::Pager => "pager",
        VCardType::Voice => "voice",
        VCardType::Text => "text",
        VCardType::Video => "video",
        VCardType::Textphone => "textphone",
        VCardType::MainNumber => "main-number",
        VCardType::Spouse => "spouse",
        _ => "other",
    }
}

/// The entry's text values, joined by commas for a multi-valued one.
fn entry_text(entry: &VCardEntry) -> Option<String> {
    let parts: Vec<String> = entry
        .values
        .iter()
        .filter_map(|v| match v {
            VCardValue::Component(parts) => Some(parts.join(",")),
            VCardValue::Binary(data) => String::from_utf8(data.data.clone()).ok(),
            other => other.as_text().map(str::to_owned),
        })
        .collect();
    let text = parts.join(",").trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// The n-th structured part (N, ADR, ORG), or None when empty.
fn part(entry: &VCardEntry, index: usize) -> Option<String> {
    let value = match entry.values.get(index)? {
        VCardValue::Component(parts) => parts.join(" "),
        other => other.as_text()?.to_owned(),
    };
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// Apple's and Google's custom labels: `item1.X-ABLabel:_$!<Other>!$_`.
fn group_label(card: &VCard, group: Option<&str>) -> Option<String> {
    let group = group?;
    card.entries
        .iter()
        .filter(|e| e.group.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(group)))
        .find(|e| matches!(&e.name, VCardProperty::Other(n) if n.eq_ignore_ascii_case("X-ABLABEL")))
        .and_then(entry_text)
        .map(|label| label.trim_start_matches("_$!<").trim_end_matches(">!$_").to_owned())
}

fn partial_date(value: &PartialDateTime) -> Option<PartialDate> {
    let month = value.month?;
    let day = value.day?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(PartialDate {
        year: value.year,
        month,
        day,
    })
}

/// A date from a value calcard may have read as a date or left as text
/// (X-ANNIVERSARY, X-ABDATE). Apple writes a year-less date with a
/// placeholder year named by X-APPLE-OMIT-YEAR (`1604-11-02`).
fn date_of(entry: &VCardEntry) -> Option<PartialDate> {
    let omitted_year: Option<u16> = entry.params.iter().find_map(|p| match (&p.name, &p.value) {
        (VCardParameterName::Other(name), VCardParameterValue::Text(year))
            if name.eq_ignore_ascii_case("X-APPLE-OMIT-YEAR") =>
        {
            year.trim().parse().ok()
        }
        (VCardParameterName::Other(name), VCardParameterValue::Integer(year))
            if name.eq_ignore_ascii_case("X-APPLE-OMIT-YEAR") =>
        {
            u16::try_from(*year).ok()
        }
        _ => None,
    });
    let date = date_value(entry)?;
    Some(match (date.year, omitted_year) {
        (Some(year), Some(omitted)) if year == omitted => PartialDate { year: None, ..date },
        _ => date,
    })
}

fn date_value(entry: &VCardEntry) -> Option<PartialDate> {
    match entry.values.first()? {
        VCardValue::PartialDateTime(dt) => partial_date(dt),
        other => {
            let text = other.as_text()?.trim();
            let digits: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
            let year_less = text.starts_with("--");
            match (year_less, digits.len()) {
                (true, 4) => Some(PartialDate {
                    year: None,
                    month: digits[0..2].parse().ok()?,
                    day: digits[2..4].parse().ok()?,
                }),
                (false, 8..) => Some(PartialDate {
                    year: digits[0..4].parse().ok(),
                    month: digits[4..6].parse().ok()?,
                    day: digits[6..8].parse().ok()?,
                }),
                _ => None,
            }
            .filter(|d| (1..=12).contains(&d.month) && (1..=31).contains(&d.day))
        }
    }
}

fn kind_of(types: &[String]) -> ContactKind {
    if types.iter().any(|t| t == "work") {
        ContactKind::Work
    } else if types.iter().any(|t| t == "home") {
        ContactKind::Home
    } else {
        ContactKind::Other
    }
}

fn phone_kind(types: &[String], label: Option<&str>) -> PhoneKind {
    let has = |t: &str| types.iter().any(|x| x == t);
    let label = label.map(str::to_ascii_lowercase);
    if has("fax") || label.as_deref().is_some_and(|l| l.contains("fax")) {
        return if has("work") {
            PhoneKind::WorkFax
        } else if has("home") {
            PhoneKind::HomeFax
        } else {
            PhoneKind::Fax
        };
    }
    if has("cell") || has("iphone") || has("mobile") || label.as_deref() == Some("mobile") {
        PhoneKind::Mobile
    } else if has("pager") {
        PhoneKind::Pager
    } else if has("work") {
        PhoneKind::Work
    } else if has("home") {
        PhoneKind::Home
    } else {
        PhoneKind::Other
    }
}

/// A TEL / EMAIL / IMPP value without its URI scheme.
fn strip_scheme(value: &str, scheme: &str) -> String {
    let value = value.trim();
    match value.get(..scheme.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(scheme) => value[scheme.len()..].trim().to_owned(),
        _ => value.to_owned(),
    }
}

fn photo(entry: &VCardEntry) -> Option<Photo> {
    let media_type = entry.params.iter().find_map(|p| match (&p.name, &p.value) {
        (VCardParameterName::Mediatype, VCardParameterValue::Text(t)) => Some(t.clone()),
        (VCardParameterName::Type, VCardParameterValue::Text(t)) => Some(format!("image/{}", t.to_ascii_lowercase())),
        _ => None,
    });
    match entry.values.first()? {
        VCardValue::Binary(Data { content_type, data }) if !data.is_empty() => Some(Photo::Inline {
            media_type: content_type.clone().or(media_type),
            bytes: data.clone(),
        }),
        other => {
            let text = other.as_text()?.trim();
            if text.is_empty() {
                None
            } else {
                Some(Photo::Url { url: text.to_owned() })
            }
        }
    }
}

fn read_contact(card: &VCard) -> Contact {
    let mut contact = Contact::default();
    let mut emails: Vec<(bool, Email)> = Vec::new();
    for entry in &card.entries {
        let label = group_label(card, entry.group.as_deref());
        match &entry.name {
            VCardProperty::Fn => contact.formatted_name = entry_text(entry).or(contact.formatted_name.take()),
            VCardProperty::N => {
                contact.name = NameParts {
                    family: part(entry, 0),
                    given: part(entry, 1),
                    middle: part(entry, 2),
                    prefix: part(entry, 3),
                    suffix: part(entry, 4),
                }
            }
            VCardProperty::Nickname => contact.nickname = contact.nickname.take().or_else(|| entry_text(entry)),
            VCardProperty::Org => {
                contact.organization = contact.organization.take().or_else(|| part(entry, 0));
                contact.department = contact.department.take().or_else(|| part(entry, 1));
            }
            VCardProperty::Title => contact.job_title = contact.job_title.take().or_else(|| entry_text(entry)),
            VCardProperty::Role => contact.role = contact.role.take().or_else(|| entry_text(entry)),
            VCardProperty::Email => {
                if let Some(address) = entry_text(entry) {
                    let types = types(entry);
                    let preferred = types.iter().any(|t| t == "pref");
                    emails.push((
                        preferred,
                        Email {
                            address: strip_scheme(&address, "mailto:"),
                            kind: kind_of(&types),
                            label,
                        },
                    ));
                }
            }
            VCardProperty::Tel => {
                if let Some(number) = entry_text(entry) {
                    let types = types(entry);
                    contact.phones.push(Phone {
                        number: strip_scheme(&number, "tel:"),
                        kind: phone_kind(&types, label.as_deref()),
                        label,
                    });
                }
            }
            VCardProperty::Adr => {
                let types = types(entry);
                let address = Address {
                    kind: kind_of(&types),
                    label,
                    po_box: part(entry, 0),
                    extended: part(entry, 1),
                    street: part(entry, 2),
                    city: part(entry, 3),
                    region: part(entry, 4),
                    postal_code: part(entry, 5),
                    country: part(entry, 6),
                };
                if address.street.is_some()
                    || address.city.is_some()
                    || address.postal_code.is_some()
                    || address.country.is_some()
                    || address.po_box.is_some()
                {
                    contact.addresses.push(address);
                }
            }
            VCardProperty::Bday => contact.birthday = contact.birthday.or_else(|| date_of(entry)),
            VCardProperty::Anniversary => contact.anniversary = contact.anniversary.or_else(|| date_of(entry)),
            VCardProperty::Note => {
                if let Some(note) = entry_text(entry) {
                    contact.notes = Some(match contact.notes.take() {
                        Some(earlier) => format!("{earlier}\n\n{note}"),
                        None => note,
                    });
                }
            }
            VCardProperty::Categories => {
                for value in &entry.values {
                    let text = match value {
                        VCardValue::Component(parts) => parts.join(","),
                        other => other.as_text().unwrap_or_default().to_owned(),
                    };
                    for category in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                        // Google's system group is not a category anyone chose.
                        if category != "myContacts" && !contact.categories.iter().any(|c| c == category) {
                            contact.categories.push(category.to_owned());
                        }
                    }
                }
            }
            VCardProperty::Url => {
                if let Some(url) = entry_text(entry) {
                    contact.urls.push(url);
                }
            }
            VCardProperty::Impp => {
                if let Some(handle) = entry_text(entry) {
                    contact.im_addresses.push(handle);
                }
            }
            VCardProperty::Photo => contact.photo = contact.photo.take().or_else(|| photo(entry)),
            VCardProperty::Kind => {
                contact.is_group |= matches!(entry.values.first(), Some(VCardValue::Kind(VCardKind::Group)))
                    || entry_text(entry).is_some_and(|k| k.eq_ignore_ascii_case("group"));
            }
            VCardProperty::Member => {
                if let Some(member) = entry_text(entry) {
                    contact.members.push(member);
                }
            }
            VCardProperty::Related => {
                let is_spouse = types(entry).iter().any(|t| t == "spouse");
                if is_spouse && contact.spouse.is_none() {
                    contact.spouse = entry_text(entry).map(|s| strip_scheme(&s, "text:"));
                }
            }
            VCardProperty::Other(name) => {
                let name = name.to_ascii_uppercase();
                match name.as_str() {
                    "X-ADDRESSBOOKSERVER-KIND" => {
                        contact.is_group |= entry_text(entry).is_some_and(|k| k.eq_ignore_ascii_case("group"));
                    }
                    "X-ADDRESSBOOKSERVER-MEMBER" => {
                        if let Some(member) = entry_text(entry) {
                            contact.members.push(member);
                        }
                    }
                    "X-ANNIVERSARY" | "X-MS-ANNIVERSARY" => {
                        contact.anniversary = contact.anniversary.or_else(|| date_of(entry));
                    }
                    "X-ABDATE" if label.as_deref().is_some_and(|l| l.eq_ignore_ascii_case("anniversary")) => {
                        contact.anniversary = contact.anniversary.or_else(|| date_of(entry));
                    }
                    "X-MS-SPOUSE" | "X-SPOUSE" => {
                        contact.spouse = contact.spouse.take().or_else(|| entry_text(entry));
                    }
                    "X-ABRELATEDNAMES" if label.as_deref().is_some_and(|l| l.eq_ignore_ascii_case("spouse")) => {
                        contact.spouse = contact.spouse.take().or_else(|| entry_text(entry));
                    }
                    "X-JABBER" | "X-SKYPE" | "X-SKYPE-USERNAME" | "X-MSN" | "X-AIM" | "X-ICQ" | "X-YAHOO"
                    | "X-GTALK" | "X-GOOGLE-TALK" | "X-QQ" => {
                        if let Some(handle) = entry_text(entry) {
                            contact.im_addresses.push(handle);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    // The preferred address first (Graph's first address is the default).
    emails.sort_by_key(|(preferred, _)| !preferred);
    contact.emails = emails.into_iter().map(|(_, email)| email).collect();
    contact
}

// ---------------------------------------------------------------------------
// What `cutover verify` compares
// ---------------------------------------------------------------------------

/// Names of the contact fields `cutover verify` compares, as every side
/// words them ([`verify_words`]): the name the contact is shown under, its
/// e-mail addresses and its phone numbers.
pub const VERIFY_FIELDS: [&str; 3] = ["displayName", "emails", "phones"];

impl Contact {
    /// The name the contact is shown under: FN, else N's parts, else the
    /// organization, else the first e-mail address (Outlook's display name
    /// for it, and what `cutover verify` compares).
    pub fn shown_name(&self) -> String {
        if let Some(f) = self.formatted_name.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
            return f.to_string();
        }
        let n = &self.name;
        let parts: Vec<&str> = [&n.prefix, &n.given, &n.middle, &n.family, &n.suffix]
            .iter()
            .filter_map(|p| p.as_deref().map(str::trim).filter(|p| !p.is_empty()))
            .collect();
        if !parts.is_empty() {
            return parts.join(" ");
        }
        if let Some(o) = self.organization.as_deref().map(str::trim).filter(|o| !o.is_empty()) {
            return o.to_string();
        }
        self.emails.first().map(|e| e.address.clone()).unwrap_or_default()
    }
}

/// A phone number as `cutover verify` compares it: its digits, letters and
/// `+` only, so `+49 30 1234-56` and `+4930123456` are the same number.
pub fn phone_word(number: &str) -> String {
    number
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '+')
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The fields `cutover verify` compares ([`VERIFY_FIELDS`]), from what any
/// side holds of a contact: the one place they are worded. Addresses and
/// numbers are sorted, each once, comma-separated; addresses lower-cased.
pub fn verify_words<'a, 'b>(
    name: &str,
    emails: impl IntoIterator<Item = &'a str>,
    phones: impl IntoIterator<Item = &'b str>,
) -> Vec<(String, String)> {
    let mut numbers: Vec<String> = phones.into_iter().map(phone_word).filter(|p| !p.is_empty()).collect();
    numbers.sort();
    numbers.dedup();
    let values = [
        name.trim().to_owned(),
        super::event::addresses_word(emails),
        numbers.join(","),
    ];
    VERIFY_FIELDS
        .iter()
        .zip(values)
        .map(|(name, value)| ((*name).to_owned(), value))
        .collect()
}

/// What a target should hold of `object`, in [`verify_words`]: every
/// e-mail address and phone number of the card, whatever the target's own
/// fields hold (a target that keeps some in the contact's notes, as Graph
/// does beyond three addresses, words those as held too).
pub fn verify_fields(object: &ContactObject) -> Vec<(String, String)> {
    let c = &object.contact;
    verify_words(
        &c.shown_name(),
        c.emails.iter().map(|e| e.address.as_str()),
        c.phones.iter().map(|p| p.number.as_str()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> String {
        let path = format!("{}/tests/data/pim/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn date(year: Option<u16>, month: u8, day: u8) -> Option<PartialDate> {
        Some(PartialDate { year, month, day })
    }

    #[test]
    fn google_export_reads_names_org_phones_and_dates() {
        let (objects, problems) = split_vcards(&corpus("google.vcf"));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(objects.len(), 2);
        let anna = &objects[0].contact;
        assert_eq!(anna.formatted_name.as_deref(), Some("Anna Schmidt"));
        assert_eq!(
            anna.name,
            NameParts {
                family: Some("Schmidt".into()),
                given: Some("Anna".into()),
                middle: Some("Maria".into()),
                prefix: Some("Dr.".into()),
                suffix: Some("PhD".into()),
            }
        );
        assert_eq!(anna.nickname.as_deref(), Some("Anni"));
        assert_eq!(anna.organization.as_deref(), Some("Firma GmbH"));
        assert_eq!(anna.department.as_deref(), Some("Research"));
        assert_eq!(anna.job_title.as_deref(), Some("Head of Research"));
        assert_eq!(anna.emails[1].address, "a.schmidt@firma.example");
        assert_eq!(anna.emails[1].kind, ContactKind::Work);
        let kinds: Vec<PhoneKind> = anna.phones.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, vec![PhoneKind::Mobile, PhoneKind::Home, PhoneKind::Work]);
        assert_eq!(anna.addresses[0].city.as_deref(), Some("Berlin"));
        assert_eq!(anna.addresses[0].postal_code.as_deref(), Some("10115"));
        assert_eq!(anna.birthday, date(Some(1985), 4, 23));
        assert_eq!(anna.notes.as_deref(), Some("Met at the 2019 conference.\nLikes tea."));
        // Google's own "myContacts" system group is not a category.
        assert_eq!(anna.categories, vec!["Friends".to_owned()]);
        assert_eq!(anna.urls, vec!["https://anna.example.de".to_owned()]);
        let ben = &objects[1].contact;
        assert_eq!(ben.birthday, date(None, 7, 14));
        assert_eq!(ben.anniversary, date(Some(2012), 6, 30));
        assert_eq!(ben.spouse.as_deref(), Some("Chioma Okafor"));
    }

    #[test]
    fn cards_without_uid_get_a_stable_hash_uid_written_into_raw() {
        let (first, _) = split_vcards(&corpus("google.vcf"));
        let (again, _) = split_vcards(&corpus("google.vcf"));
        assert!(first[0].uid.starts_with("cutover-"));
        assert_eq!(first[0].uid, again[0].uid);
        assert_ne!(first[0].uid, first[1].uid);
        assert!(first[0].raw.contains(&format!("UID:{}", first[0].uid)));
    }

    #[test]
    fn apple_card_reads_labels_photo_and_omitted_year() {
        let (objects, problems) = split_vcards(&corpus("apple.vcf"));
        assert!(problems.is_empty(), "{problems:?}");
        let camille = &objects[0];
        assert_eq!(camille.uid, "8E3C4F1A-2B7D-4C6E-9F0A-1B2C3D4E5F60");
        let contact = &camille.contact;
        assert_eq!(contact.formatted_name.as_deref(), Some("Camille Lefèvre"));
        assert_eq!(contact.organization.as_deref(), Some("Atelier Lumière"));
        let phones: Vec<(&str, PhoneKind)> = contact.phones.iter().map(|p| (p.number.as_str(), p.kind)).collect();
        assert_eq!(
            phones,
            vec![
                ("+33 6 12 34 56 78", PhoneKind::Mobile),
                ("+33 6 98 76 54 32", PhoneKind::Mobile),
                ("+33 1 23 45 67 89", PhoneKind::WorkFax),
                ("+33 1 11 22 33 44", PhoneKind::Other),
            ]
        );
        assert_eq!(contact.phones[3].label.as_deref(), Some("Other"));
        assert_eq!(contact.birthday, date(None, 11, 2));
        assert_eq!(contact.anniversary, date(Some(2015), 9, 12));
        assert_eq!(contact.im_addresses, vec!["skype:camille.lefevre".to_owned()]);
        match &contact.photo {
            Some(Photo::Inline { media_type, bytes }) => {
                assert_eq!(media_type.as_deref(), Some("image/jpeg"));
                assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF]);
                assert_eq!(&bytes[bytes.len() - 2..], &[0xFF, 0xD9]);
            }
            other => panic!("expected an inline photo, got {other:?}"),
        }
        let group = &objects[1].contact;
        assert!(group.is_group);
        assert_eq!(
            group.members,
            vec![
                "urn:uuid:8E3C4F1A-2B7D-4C6E-9F0A-1B2C3D4E5F60".to_owned(),
                "urn:uuid:0D1E2F3A-4B5C-6D7E-8F90-A1B2C3D4E5F6".to_owned()
            ]
        );
    }

    #[test]
    fn outlook_21_quoted_printable_and_charset_are_decoded() {
        let (objects, problems) = split_vcards(&corpus("outlook.vcf"));
        assert!(problems.is_empty(), "{problems:?}");
        let card = &objects[0];
        let contact = &card.contact;
        assert_eq!(contact.formatted_name.as_deref(), Some("Jürgen Müller"));
        assert_eq!(contact.name.family.as_deref(), Some("Müller"));
        assert_eq!(contact.organization.as_deref(), Some("Bäckerei Müller"));
        assert_eq!(contact.addresses[0].city.as_deref(), Some("München"));
        assert_eq!(contact.addresses[0].kind, ContactKind::Work);
        assert_eq!(contact.spouse.as_deref(), Some("Greta Müller"));
        assert!(
            contact
                .notes
                .as_deref()
                .unwrap()
                .contains("Hintereingang benutzen (Hof).")
        );
        let kinds: Vec<PhoneKind> = contact.phones.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            vec![
                PhoneKind::Work,
                PhoneKind::Home,
                PhoneKind::Mobile,
                PhoneKind::WorkFax,
                PhoneKind::Pager
            ]
        );
        // CardDAV takes 3.0 and 4.0: a 2.1 card is written as 3.0, in UTF-8.
        assert!(card.raw.contains("VERSION:3.0"));
        assert!(card.raw.contains("Müller"));
        assert!(!card.raw.contains("QUOTED-PRINTABLE"));
    }

    #[test]
    fn vcard_4_reads_five_emails_uri_phones_and_year_less_birthday() {
        let (objects, problems) = split_vcards(&corpus("v4.vcf"));
        assert!(problems.is_empty(), "{problems:?}");
        let dana = &objects[0];
        assert_eq!(dana.uid, "urn:uuid:0D1E2F3A-4B5C-6D7E-8F90-A1B2C3D4E5F6");
        let contact = &dana.contact;
        assert_eq!(contact.emails.len(), 5);
        assert_eq!(contact.emails[0].address, "dana@work.example");
        assert_eq!(contact.phones[0].number, "+48-600-100-200");
        assert_eq!(contact.phones[2].kind, PhoneKind::Fax);
        assert_eq!(contact.birthday, date(None, 4, 12));
        assert_eq!(contact.anniversary, date(Some(2010), 6, 12));
        assert_eq!(contact.spouse.as_deref(), Some("Marek Kowalski"));
        assert_eq!(
            contact.photo,
            Some(Photo::Url {
                url: "https://photos.example/dana.jpg".into()
            })
        );
        assert!(dana.raw.contains("VERSION:4.0"));
        let group = &objects[1].contact;
        assert!(group.is_group);
        assert_eq!(group.members[1], "mailto:ext@partner.example");
    }

    #[test]
    fn malformed_cards_become_problems_and_the_rest_go_on() {
        let (objects, problems) = split_vcards(&corpus("malformed.vcf"));
        let names: Vec<_> = objects
            .iter()
            .filter_map(|o| o.contact.formatted_name.clone())
            .collect();
        assert_eq!(names, vec!["No End".to_owned()]);
        assert!(
            problems.iter().any(|p| p.reason.contains("nothing to copy")),
            "{problems:?}"
        );
        assert!(problems.iter().any(|p| p.reason.contains("truncated")), "{problems:?}");
        assert!(
            problems.iter().any(|p| p.reason.contains("outside any BEGIN:VCARD")),
            "{problems:?}"
        );
    }

    #[test]
    fn hostile_inputs_give_problems_not_panics() {
        let nested = format!("{}{}", "BEGIN:VCARD\r\n".repeat(10_000), "END:VCARD\r\n".repeat(10_000));
        let garbage: String = (0..20_000u32)
            .map(|i| char::from_u32((i * 7919) % 0xD7FF).unwrap_or('x'))
            .collect();
        let inputs = [
            String::new(),
            nested,
            garbage,
            "BEGIN:VCARD\r\nVERSION:2.1\r\nFN;ENCODING=QUOTED-PRINTABLE:=\r\n=\r\nEND:VCARD\r\n".into(),
            "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\nPHOTO;ENCODING=b:!!!not base64!!!\r\nBDAY:--1399\r\nEND:VCARD\r\n"
                .into(),
            "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\nADR:;;;;;;;;;;;;;;;;;;\r\nN:;;;;;;;;;;;;\r\nEND:VCARD\r\n".into(),
        ];
        for input in &inputs {
            let (objects, problems) = split_vcards(input);
            let _ = (objects.len(), problems.len());
        }
        let (objects, _) = split_vcards(&inputs[4]);
        assert_eq!(objects[0].contact.birthday, None);
        let (objects, problems) = split_vcards(&inputs[2]);
        assert!(objects.is_empty());
        assert!(!problems.is_empty());
    }
}

#[cfg(test)]
mod date_tests {
    use super::*;

    #[test]
    fn extended_format_birthdays_keep_their_day() {
        for (version, value, want) in [
            ("4.0", "--07-14", (None, 7, 14)),
            ("3.0", "--07-14", (None, 7, 14)),
            ("4.0", "1985-04-23", (Some(1985), 4, 23)),
            ("3.0", "1985-04-23", (Some(1985), 4, 23)),
            ("4.0", "1985-04-23T10:30:00Z", (Some(1985), 4, 23)),
            ("4.0", "--0714", (None, 7, 14)),
            ("3.0", "19850423", (Some(1985), 4, 23)),
        ] {
            let card = format!("BEGIN:VCARD\r\nVERSION:{version}\r\nFN:x\r\nBDAY:{value}\r\nEND:VCARD\r\n");
            let (objects, problems) = split_vcards(&card);
            assert!(problems.is_empty(), "{problems:?}");
            let got = objects[0].contact.birthday.map(|d| (d.year, d.month, d.day));
            assert_eq!(got, Some(want), "{version} {value}");
        }
        let card = "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nANNIVERSARY;VALUE=date:2012-06-30\r\nNOTE:1985-04-23 stays\r\nEND:VCARD\r\n";
        let (objects, _) = split_vcards(card);
        let a = objects[0].contact.anniversary.unwrap();
        assert_eq!((a.year, a.month, a.day), (Some(2012), 6, 30));
        assert!(objects[0].raw.contains("1985-04-23 stays"));
    }
}
