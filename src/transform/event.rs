//! Calendars: iCalendar text → calendar objects → a neutral [`Event`] model.
//!
//! This is what the DAV and Takeout sources feed and what the Graph and DAV
//! targets consume. It is pure: text in, values out, no I/O, no async.
//!
//! # Splitting
//!
//! [`split_calendar`] (or [`split_calendar_in`] with the mailbox's zone)
//! takes one CalDAV object resource or a whole Google Takeout `.ics` and
//! returns one [`CalendarObject`] per UID: the series master and its
//! RECURRENCE-ID overrides together. Each object carries
//!
//! - `raw`: a self-contained `VCALENDAR` holding that UID's components, the
//!   `VTIMEZONE`s they use and the calendar's VERSION, PRODID, CALSCALE and
//!   X-WR-TIMEZONE (never METHOD, which CalDAV forbids in stored objects).
//!   The component lines are the source's own lines (CRLF line ends,
//!   malformed lines dropped, a UID added when there was none), so it is
//!   what a DAV target PUTs and what a content hash is taken of;
//! - `event`: the parsed [`Event`].
//!
//! An item that cannot be copied (unreadable, no DTSTART, end before start,
//! a date Exchange cannot store, a task instead of an event, …) becomes an
//! [`ItemProblem`] whose reason an admin can act on; the other items go on.
//! Nothing here panics on any input.
//!
//! # Time zones
//!
//! A TZID is resolved in this order:
//!
//! 1. an IANA name (`Europe/Berlin`);
//! 2. a Windows name (`W. Europe Standard Time`), an Outlook display name
//!    (`(UTC+01:00) Amsterdam, Berlin, …`), a `/vendor/…/Europe/Berlin`
//!    path, or the VTIMEZONE's `X-LIC-LOCATION` / `X-MICROSOFT-CDO-TZID`
//!    (calcard's tables);
//! 3. a custom VTIMEZONE (Outlook's "Customized Time Zone") matched to the
//!    IANA zone whose offsets agree with its rules around the event's year
//!    (Windows' zones first, so Central European rules become
//!    `Europe/Berlin`), with a note;
//! 4. otherwise the times are converted to UTC with the VTIMEZONE's own
//!    rules, with a note (a series in such a zone that changes offset is
//!    written as single events, so every occurrence keeps its time).
//!
//! A TZID with neither a known name nor a VTIMEZONE is read in the
//! mailbox's zone, with a note. Zones are kept, not converted to UTC, so an
//! event that crosses a DST switch keeps its wall-clock time. Floating
//! times and all-day dates take the zone the caller names (the mailbox's
//! zone; `UTC` by default), kept in [`Event::default_zone`].
//! A calendar's X-WR-TIMEZONE (Google, Apple) stays in `raw` but does not
//! override the caller's zone.
//!
//! # Recurrence
//!
//! An RRULE becomes a [`Recurrence::Pattern`] that mirrors Graph's
//! `patternedRecurrence` when Graph can express it exactly, and a
//! [`Recurrence::Expanded`] list of occurrences otherwise (expanded with
//! calcard's RRULE engine, up to [`EXPAND_MAX_OCCURRENCES`] occurrences and
//! [`EXPAND_HORIZON_DAYS`] days), with the reason for the report. See
//! [`Recurrence`] for what Graph can and cannot express.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use calcard::common::PartialDateTime;
use calcard::common::timezone::Tz as CalTz;
use calcard::icalendar::{
    ICalendar, ICalendarAction, ICalendarClassification, ICalendarComponent, ICalendarComponentType, ICalendarDay,
    ICalendarDuration, ICalendarEntry, ICalendarFrequency, ICalendarParameterName, ICalendarParameterValue,
    ICalendarParticipationRole, ICalendarParticipationStatus, ICalendarPeriod, ICalendarProperty,
    ICalendarRecurrenceRule, ICalendarRelated, ICalendarStatus, ICalendarTransparency, ICalendarUserTypes,
    ICalendarValue, ICalendarValueType, Uri,
};
use chrono::offset::LocalResult;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Most occurrences a rule Graph cannot express is expanded into (the
/// target writes each as a single event).
pub const EXPAND_MAX_OCCURRENCES: usize = 1_000;
/// How far after its first occurrence a rule Graph cannot express is
/// expanded: ten years.
pub const EXPAND_HORIZON_DAYS: i64 = 3_660;
/// Most occurrences [`occurrences_utc`] expands a series into, counted from
/// its first occurrence whatever the window.
pub const VERIFY_MAX_OCCURRENCES: usize = 100_000;
/// The first year Exchange stores (1 January 1601).
pub const MIN_YEAR: i32 = 1601;
/// The last year Exchange stores (Outlook's "no date" is 1 January 4501).
pub const MAX_YEAR: i32 = 4500;
/// The zone floating times and all-day dates take when the caller names none.
pub const DEFAULT_ZONE: &str = "UTC";
/// Deepest BEGIN nesting inside a component that is still read.
const MAX_NESTING: usize = 16;
/// Largest COUNT kept as Graph's `numberOfOccurrences` (an Int32).
const MAX_COUNT: u32 = i32::MAX as u32;

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

/// An item of the source that is not copied, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemProblem {
    /// The item's UID when it could be read, else where it is in the file
    /// (`VEVENT at line 120`).
    pub uid_or_position: String,
    /// What is wrong, in words an admin understands.
    pub reason: String,
}

/// One calendar object: a UID's components, as a DAV server stores them.
#[derive(Clone, Debug, PartialEq)]
pub struct CalendarObject {
    /// The components' UID, or `cutover-` and a hash of the component when
    /// it had none (then also written into `raw`).
    pub uid: String,
    /// A self-contained VCALENDAR with this UID's components and the
    /// VTIMEZONEs they use (see the module documentation).
    pub raw: String,
    /// The parsed series (or single event) with its overrides.
    pub event: Event,
}

/// A calendar event in neutral form: what the targets write.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub summary: Option<String>,
    pub description: Option<Description>,
    pub location: Option<String>,
    pub start: EventTime,
    /// Exclusive end (for an all-day event, the day after the last day).
    pub end: EventTime,
    /// The start is a date (both start and end are then [`EventTime::Date`]).
    pub is_all_day: bool,
    /// The zone floating times and all-day dates are placed in: the caller's
    /// (the mailbox's) zone.
    #[serde(serialize_with = "ser_tz")]
    pub default_zone: Tz,
    pub recurrence: Option<Recurrence>,
    /// Occurrences removed from the series (EXDATE, or an override with
    /// STATUS:CANCELLED), as their original start in the start's form.
    pub cancelled_occurrences: Vec<EventTime>,
    /// Occurrences changed in the series (RECURRENCE-ID).
    pub overrides: Vec<Override>,
    pub organizer: Option<Person>,
    pub attendees: Vec<Attendee>,
    /// Minutes before the start of the first display or audio alarm
    /// (negative: after the start).
    pub reminder_minutes_before_start: Option<i64>,
    pub show_as: ShowAs,
    pub sensitivity: Sensitivity,
    pub categories: Vec<String>,
    /// iCalendar PRIORITY, 1 (highest) to 9 (lowest).
    pub priority: Option<u8>,
    /// RFC 7986 COLOR (a CSS colour name).
    pub color: Option<String>,
    pub url: Option<String>,
    pub attachments: Vec<Attachment>,
    pub sequence: Option<i64>,
    #[serde(serialize_with = "ser_opt_utc")]
    pub last_modified: Option<DateTime<Utc>>,
    pub status: EventStatus,
    /// The RRULE as the source wrote it.
    pub source_rule: Option<String>,
    /// What changed on the way that the report should show (zones matched
    /// or converted, duplicates dropped, lines dropped, …).
    pub notes: Vec<String>,
}

/// The event's text; `html` when the source also had an HTML body
/// (`X-ALT-DESC;FMTTYPE=text/html`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Description {
    pub text: String,
    pub html: Option<String>,
}

/// A point in time as the source gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventTime {
    /// An all-day date.
    Date {
        #[serde(serialize_with = "ser_display")]
        date: NaiveDate,
    },
    /// A wall-clock time in a resolved IANA zone.
    Zoned {
        #[serde(serialize_with = "ser_local")]
        local: NaiveDateTime,
        #[serde(serialize_with = "ser_tz")]
        zone: Tz,
    },
    /// An instant in UTC.
    Utc {
        #[serde(serialize_with = "ser_utc")]
        at: DateTime<Utc>,
    },
    /// A wall-clock time in no zone (the same clock time wherever the reader
    /// is); placed in [`Event::default_zone`].
    Floating {
        #[serde(serialize_with = "ser_local")]
        local: NaiveDateTime,
    },
}

impl EventTime {
    /// The instant, floating times and dates placed in `default_zone` (a date
    /// is its midnight).
    pub fn to_utc(&self, default_zone: Tz) -> DateTime<Utc> {
        match *self {
            EventTime::Date { date } => local_to_utc(default_zone, date.and_time(chrono::NaiveTime::MIN)),
            EventTime::Zoned { local, zone } => local_to_utc(zone, local),
            EventTime::Utc { at } => at,
            EventTime::Floating { local } => local_to_utc(default_zone, local),
        }
    }

    /// The wall-clock time as written (UTC's for [`EventTime::Utc`], midnight
    /// for a date).
    pub fn local(&self) -> NaiveDateTime {
        match *self {
            EventTime::Date { date } => date.and_time(chrono::NaiveTime::MIN),
            EventTime::Zoned { local, .. } | EventTime::Floating { local } => local,
            EventTime::Utc { at } => at.naive_utc(),
        }
    }

    /// The zone the wall-clock time is in.
    pub fn zone(&self, default_zone: Tz) -> Tz {
        match *self {
            EventTime::Zoned { zone, .. } => zone,
            EventTime::Utc { .. } => Tz::UTC,
            EventTime::Date { .. } | EventTime::Floating { .. } => default_zone,
        }
    }
}

/// The organizer or an attendee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Person {
    pub email: String,
    pub name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attendee {
    pub email: String,
    pub name: Option<String>,
    pub role: AttendeeRole,
    pub response: Response,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttendeeRole {
    /// REQ-PARTICIPANT and CHAIR (the RFC 5545 default).
    Required,
    /// OPT-PARTICIPANT and NON-PARTICIPANT.
    Optional,
    /// CUTYPE=RESOURCE or ROOM.
    Resource,
}

/// PARTSTAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// NEEDS-ACTION (the default).
    None,
    Accepted,
    Declined,
    Tentative,
    Delegated,
}

/// Free/busy (TRANSP, overridden by X-MICROSOFT-CDO-BUSYSTATUS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShowAs {
    Free,
    Tentative,
    Busy,
    Oof,
    WorkingElsewhere,
}

/// CLASS: PUBLIC → normal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    Normal,
    Private,
    Confidential,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Confirmed,
    Tentative,
    /// STATUS:CANCELLED: the event was cancelled by its organizer.
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// FILENAME / X-FILENAME.
    pub name: Option<String>,
    /// FMTTYPE.
    pub media_type: Option<String>,
    pub content: AttachmentContent,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttachmentContent {
    /// ENCODING=BASE64;VALUE=BINARY.
    Inline {
        #[serde(serialize_with = "ser_base64")]
        bytes: Vec<u8>,
    },
    /// A link.
    Uri { uri: String },
}

/// An occurrence changed in a series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Override {
    /// The occurrence's start as the series' rule places it
    /// (RECURRENCE-ID), in the form of the series' start.
    pub original_start: EventTime,
    /// The occurrence as it is now (no recurrence, no overrides).
    pub event: Event,
}

/// How a series repeats.
///
/// Graph can express (`learn.microsoft.com/graph/api/resources/recurrencepattern`):
/// DAILY, WEEKLY (any set of weekdays, with the week starting on WKST),
/// MONTHLY on one day 1–28 (Outlook moves day 29–31 to the last day of
/// shorter months, iCalendar skips those months) or on the first, second,
/// third, fourth or last of a set of weekdays (`BYDAY=-1FR`, or
/// `BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1`), and YEARLY likewise within one month,
/// with an INTERVAL and a COUNT, an UNTIL or no end; DAILY with BYDAY and
/// INTERVAL=1 is Outlook's "every weekday" (weekly).
///
/// Everything else is expanded: HOURLY/MINUTELY/SECONDLY, BYHOUR/BYMINUTE/
/// BYSECOND other than the start's own, BYWEEKNO, BYYEARDAY, several
/// BYMONTH or BYMONTHDAY, BYMONTHDAY from the end of the month, a fifth
/// weekday, BYSETPOS other than one of 1–4 and -1, RDATE, EXRULE, several
/// RRULEs, RSCALE/SKIP, UNTIL before DTSTART, a DTSTART that does not follow
/// its own rule, a zone known only by its VTIMEZONE whose offset changes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recurrence {
    /// Graph's `patternedRecurrence`.
    Pattern {
        pattern: RecurrencePattern,
        range: RecurrenceRange,
    },
    /// Occurrences to write one by one: the rule's occurrences from the
    /// start, EXDATEs and overridden occurrences left out (the overrides are
    /// in [`Event::overrides`]), at most [`EXPAND_MAX_OCCURRENCES`] and
    /// within [`EXPAND_HORIZON_DAYS`] of the start.
    Expanded {
        /// Why the rule could not be kept as a pattern, for the report.
        reason: String,
        occurrences: Vec<Occurrence>,
        /// The series goes on after the last expanded occurrence.
        truncated: bool,
    },
}

/// One occurrence of an expanded series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Occurrence {
    pub start: EventTime,
    pub end: EventTime,
}

/// Graph's `recurrencePattern`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecurrencePattern {
    pub kind: PatternKind,
    pub interval: u32,
    /// Weekly, relative monthly and relative yearly.
    pub days_of_week: Vec<DayOfWeek>,
    /// Absolute monthly and absolute yearly.
    pub day_of_month: Option<u32>,
    /// Absolute and relative yearly (1–12).
    pub month: Option<u32>,
    /// Relative monthly and relative yearly.
    pub index: Option<WeekIndex>,
    /// Weekly: the week's first day (WKST, Monday by default).
    pub first_day_of_week: DayOfWeek,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PatternKind {
    Daily,
    Weekly,
    AbsoluteMonthly,
    RelativeMonthly,
    AbsoluteYearly,
    RelativeYearly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DayOfWeek {
    Sunday,
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WeekIndex {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

/// Graph's `recurrenceRange`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecurrenceRange {
    pub end: RangeEnd,
    /// The first occurrence's date, in `time_zone`.
    #[serde(serialize_with = "ser_display")]
    pub start_date: NaiveDate,
    /// The zone `start_date` and the end date are in: the start's zone.
    #[serde(serialize_with = "ser_tz")]
    pub time_zone: Tz,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RangeEnd {
    /// The last occurrence falls on or before this date (in the range's zone).
    EndDate {
        #[serde(serialize_with = "ser_display")]
        date: NaiveDate,
    },
    NoEnd,
    Numbered {
        count: u32,
    },
}

impl DayOfWeek {
    pub fn from_weekday(d: Weekday) -> DayOfWeek {
        match d {
            Weekday::Sun => DayOfWeek::Sunday,
            Weekday::Mon => DayOfWeek::Monday,
            Weekday::Tue => DayOfWeek::Tuesday,
            Weekday::Wed => DayOfWeek::Wednesday,
            Weekday::Thu => DayOfWeek::Thursday,
            Weekday::Fri => DayOfWeek::Friday,
            Weekday::Sat => DayOfWeek::Saturday,
        }
    }

    /// Graph's spelling (`monday`).
    pub fn as_str(self) -> &'static str {
        match self {
            DayOfWeek::Sunday => "sunday",
            DayOfWeek::Monday => "monday",
            DayOfWeek::Tuesday => "tuesday",
            DayOfWeek::Wednesday => "wednesday",
            DayOfWeek::Thursday => "thursday",
            DayOfWeek::Friday => "friday",
            DayOfWeek::Saturday => "saturday",
        }
    }
}

impl PatternKind {
    /// Graph's spelling (`relativeMonthly`).
    pub fn as_str(self) -> &'static str {
        match self {
            PatternKind::Daily => "daily",
            PatternKind::Weekly => "weekly",
            PatternKind::AbsoluteMonthly => "absoluteMonthly",
            PatternKind::RelativeMonthly => "relativeMonthly",
            PatternKind::AbsoluteYearly => "absoluteYearly",
            PatternKind::RelativeYearly => "relativeYearly",
        }
    }
}

impl WeekIndex {
    /// Graph's spelling (`last`).
    pub fn as_str(self) -> &'static str {
        match self {
            WeekIndex::First => "first",
            WeekIndex::Second => "second",
            WeekIndex::Third => "third",
            WeekIndex::Fourth => "fourth",
            WeekIndex::Last => "last",
        }
    }

    fn from_position(n: i64) -> Option<WeekIndex> {
        Some(match n {
            1 => WeekIndex::First,
            2 => WeekIndex::Second,
            3 => WeekIndex::Third,
            4 => WeekIndex::Fourth,
            -1 => WeekIndex::Last,
            _ => return None,
        })
    }
}

impl Event {
    /// The event as single events, for a target that cannot store its
    /// series: `None` for a [`Recurrence::Pattern`] series (write it as a
    /// series, then its overrides and cancellations). Otherwise the event
    /// itself (no recurrence) or each expanded occurrence with the series'
    /// fields, followed by each override as an event of its own (overrides
    /// without a series, as CalDAV stores an invitation to one occurrence,
    /// included).
    pub fn single_events(&self) -> Option<Vec<Event>> {
        let bare = |start: EventTime, end: EventTime| Event {
            start,
            end,
            recurrence: None,
            cancelled_occurrences: Vec::new(),
            overrides: Vec::new(),
            ..self.clone()
        };
        let mut out = match &self.recurrence {
            Some(Recurrence::Pattern { .. }) => return None,
            Some(Recurrence::Expanded { occurrences, .. }) => {
                occurrences.iter().map(|o| bare(o.start, o.end)).collect::<Vec<_>>()
            }
            None => vec![bare(self.start, self.end)],
        };
        out.extend(self.overrides.iter().map(|o| o.event.clone()));
        Some(out)
    }
}

// ---------------------------------------------------------------------------
// Colours
// ---------------------------------------------------------------------------

/// The Outlook category an event's RFC 7986 COLOR (a CSS colour name, or
/// `#rrggbb` as some clients write) is shown by: one of the six colour
/// categories every new Exchange mailbox's category list holds ("Red
/// category", ... "Purple category"), the one nearest in hue. `None` for
/// a grey, black or white, or a value that is no colour; then the event
/// keeps its other categories only.
pub fn color_category(color: &str) -> Option<&'static str> {
    let c = color.trim().to_ascii_lowercase();
    let named = match c.as_str() {
        "red" | "darkred" | "crimson" | "firebrick" | "indianred" | "maroon" | "tomato" | "salmon" | "lightcoral"
        | "darksalmon" | "lightsalmon" => Some("Red category"),
        "orange" | "darkorange" | "coral" | "orangered" | "chocolate" | "peru" | "sandybrown" | "sienna"
        | "saddlebrown" | "brown" | "tan" | "burlywood" => Some("Orange category"),
        "yellow" | "gold" | "khaki" | "darkkhaki" | "goldenrod" | "darkgoldenrod" | "lightyellow" | "lemonchiffon"
        | "palegoldenrod" | "moccasin" => Some("Yellow category"),
        "green" | "lime" | "limegreen" | "forestgreen" | "darkgreen" | "seagreen" | "mediumseagreen" | "olive"
        | "olivedrab" | "darkolivegreen" | "yellowgreen" | "lightgreen" | "palegreen" | "springgreen"
        | "mediumspringgreen" | "lawngreen" | "chartreuse" | "greenyellow" | "darkseagreen" => Some("Green category"),
        "blue" | "navy" | "darkblue" | "mediumblue" | "royalblue" | "dodgerblue" | "deepskyblue" | "skyblue"
        | "lightskyblue" | "lightblue" | "powderblue" | "steelblue" | "lightsteelblue" | "cornflowerblue"
        | "cadetblue" | "midnightblue" | "slateblue" | "darkslateblue" | "turquoise" | "darkturquoise"
        | "mediumturquoise" | "paleturquoise" | "aqua" | "cyan" | "darkcyan" | "lightcyan" | "teal"
        | "lightseagreen" | "aquamarine" | "mediumaquamarine" => Some("Blue category"),
        "purple" | "violet" | "magenta" | "fuchsia" | "orchid" | "plum" | "indigo" | "darkviolet" | "blueviolet"
        | "mediumpurple" | "darkmagenta" | "mediumorchid" | "darkorchid" | "thistle" | "lavender" | "rebeccapurple"
        | "pink" | "lightpink" | "hotpink" | "deeppink" | "palevioletred" | "mediumvioletred" => {
            Some("Purple category")
        }
        _ => None,
    };
    if named.is_some() {
        return named;
    }
    Some(match hue_of(&c)? {
        Hue::Grey => return None,
        Hue::Degrees { hue, .. } => match hue {
            h if !(10.0..345.0).contains(&h) => "Red category",
            h if h < 40.0 => "Orange category",
            h if h < 70.0 => "Yellow category",
            h if h < 165.0 => "Green category",
            h if h < 255.0 => "Blue category",
            _ => "Purple category",
        },
    })
}

/// Graph's `calendarColor` nearest to a calendar's colour (`#rrggbb`,
/// `#rrggbbaa` as Apple's calendar-color has it, or `#rgb`): Outlook's
/// calendars take one of ten named colours, not a hex value. `None` when
/// the value is no colour.
pub fn calendar_color(color: &str) -> Option<&'static str> {
    Some(match hue_of(&color.trim().to_ascii_lowercase())? {
        Hue::Grey => "lightGray",
        Hue::Degrees {
            hue,
            lightness,
            saturation,
        } => match hue {
            h if !(10.0..345.0).contains(&h) => "lightRed",
            h if h < 40.0 && (lightness < 0.3 || saturation < 0.5) => "lightBrown",
            h if h < 40.0 => "lightOrange",
            h if h < 70.0 => "lightYellow",
            h if h < 160.0 => "lightGreen",
            h if h < 190.0 => "lightTeal",
            h if h < 255.0 => "lightBlue",
            _ => "lightPink",
        },
    })
}

/// A hex colour's hue, or that it is nearly grey.
enum Hue {
    Grey,
    Degrees { hue: f64, lightness: f64, saturation: f64 },
}

/// Reads `#rgb`, `#rrggbb` or `#rrggbbaa` (alpha ignored).
fn hue_of(color: &str) -> Option<Hue> {
    let hex = color.strip_prefix('#')?;
    let width = match hex.len() {
        3 => 1,
        6 | 8 => 2,
        _ => return None,
    };
    let channel = |i: usize| {
        let digits = hex.get(i * width..(i + 1) * width)?;
        let v = u8::from_str_radix(digits, 16).ok()?;
        Some(f64::from(if width == 1 { v * 17 } else { v }) / 255.0)
    };
    let (r, g, b) = (channel(0)?, channel(1)?, channel(2)?);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    if max - min < 0.12 {
        return Some(Hue::Grey);
    }
    let hue = if max == r {
        60.0 * ((g - b) / (max - min)).rem_euclid(6.0)
    } else if max == g {
        60.0 * ((b - r) / (max - min) + 2.0)
    } else {
        60.0 * ((r - g) / (max - min) + 4.0)
    };
    let lightness = (max + min) / 2.0;
    Some(Hue::Degrees {
        hue,
        lightness,
        saturation: (max - min) / (1.0 - (2.0 * lightness - 1.0).abs()).max(f64::EPSILON),
    })
}

// ---------------------------------------------------------------------------
// Splitting
// ---------------------------------------------------------------------------

/// Splits iCalendar text into calendar objects, floating times and all-day
/// dates in UTC. See [`split_calendar_in`].
pub fn split_calendar(text: &str) -> (Vec<CalendarObject>, Vec<ItemProblem>) {
    split_calendar_in(text, DEFAULT_ZONE)
}

/// Splits iCalendar text (one CalDAV object resource, or a whole calendar
/// export) into one [`CalendarObject`] per UID, in the order the UIDs first
/// appear; `zone` (an IANA or Windows name) is where floating times and
/// all-day dates are placed: the mailbox's zone. Items that cannot be copied
/// come back as [`ItemProblem`]s.
pub fn split_calendar_in(text: &str, zone: &str) -> (Vec<CalendarObject>, Vec<ItemProblem>) {
    let mut problems = Vec::new();
    let default = match resolve_zone_name(zone) {
        Some(tz) => tz,
        None => {
            problems.push(ItemProblem {
                uid_or_position: "calendar".into(),
                reason: format!(
                    "the mailbox time zone \"{zone}\" is unknown; floating times and all-day dates are placed in UTC"
                ),
            });
            Tz::UTC
        }
    };
    let scan = Scan::new(text);
    let layout = scan.calendar_layout(&mut problems);
    let mut cache = ZoneCache::default();
    let mut objects = Vec::with_capacity(layout.groups.len());
    for group in &layout.groups {
        let (raw, mut notes) = scan.object_raw(&layout, group);
        let position = group.position(&scan);
        let who = if group.generated_uid {
            position.clone()
        } else {
            group.uid.clone()
        };
        let ical = match ICalendar::parse(&raw) {
            Ok(ical) => ical,
            Err(_) => {
                problems.push(ItemProblem {
                    uid_or_position: who,
                    reason: "the event cannot be read as iCalendar".into(),
                });
                continue;
            }
        };
        match build_series(&ical, default, &mut cache).and_then(Series::into_event) {
            Ok(mut event) => {
                if group.generated_uid {
                    notes.push(format!("the event had no UID; it was given {}", group.uid));
                }
                notes.extend(group.notes.iter().cloned());
                event.notes.splice(0..0, notes);
                objects.push(CalendarObject {
                    uid: group.uid.clone(),
                    raw,
                    event,
                });
            }
            Err(reason) => problems.push(ItemProblem {
                uid_or_position: who,
                reason,
            }),
        }
    }
    if objects.is_empty() && problems.is_empty() && layout.saw_nothing && !text.trim().is_empty() {
        problems.push(ItemProblem {
            uid_or_position: "calendar".into(),
            reason: "not iCalendar data: no BEGIN:VCALENDAR or BEGIN:VEVENT found".into(),
        });
    }
    (objects, problems)
}

/// What the source means for `cutover verify`: each occurrence of the
/// object's series (or its single event) that overlaps `[from, to)`, as
/// `(start, end)` instants, in order. The rule is expanded with calcard from
/// the first occurrence (at most [`VERIFY_MAX_OCCURRENCES`]), DTSTART
/// counted, RDATEs added, EXDATEs removed and overridden occurrences moved
/// to their new times; floating times and dates are in the object's
/// [`Event::default_zone`].
pub fn occurrences_utc(
    object: &CalendarObject,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let default = object.event.default_zone;
    let Ok(ical) = ICalendar::parse(&object.raw) else {
        return Vec::new();
    };
    let mut cache = ZoneCache::default();
    let Ok(series) = build_series(&ical, default, &mut cache) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let overlaps = |s: DateTime<Utc>, e: DateTime<Utc>| (s < to && e > from) || (s == e && s >= from && s < to);
    let zones = &series.zones;
    // Each override: where the rule put it, where it is now, cancelled.
    struct Moved {
        original: DateTime<Utc>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        cancelled: bool,
    }
    let overrides: Vec<Moved> = series
        .overrides
        .iter()
        .filter_map(|o| {
            Some(Moved {
                original: o.rid?.utc(zones),
                start: o.start.utc(zones),
                end: o.end.utc(zones),
                cancelled: o.cancelled,
            })
        })
        .collect();
    let mut used = vec![false; overrides.len()];
    if let Some(m) = &series.master {
        let horizon = to.max(from) + Duration::days(2);
        let instances = m
            .instances(zones, Some(horizon), VERIFY_MAX_OCCURRENCES)
            .map(|(v, _)| v);
        for (s, e) in instances.unwrap_or_default() {
            let (su, eu) = (s.utc(zones), e.utc(zones));
            if let Some(i) = overrides.iter().position(|o| o.original == su) {
                used[i] = true;
                let o = &overrides[i];
                if !o.cancelled && overlaps(o.start, o.end) {
                    out.push((o.start, o.end));
                }
            } else if overlaps(su, eu) {
                out.push((su, eu));
            }
        }
    }
    // Overrides that move no occurrence (no series, or an occurrence the
    // rule does not produce) stand on their own.
    for (o, used) in overrides.iter().zip(&used) {
        if !used && !o.cancelled && overlaps(o.start, o.end) {
            out.push((o.start, o.end));
        }
    }
    out.sort();
    out.dedup();
    out
}

// ---------------------------------------------------------------------------
// Text: lines, unfolding, properties (shared with `contact`)
// ---------------------------------------------------------------------------

/// One logical (unfolded) line and the physical lines it came from.
pub(super) struct Logical<'a> {
    pub text: Cow<'a, str>,
    /// First and last physical line (0-based).
    pub first: usize,
    pub last: usize,
}

/// The text as physical lines (line ends and a BOM removed) and logical
/// lines (folding undone, blank lines left out).
pub(super) struct Scan<'a> {
    pub phys: Vec<&'a str>,
    pub lines: Vec<Logical<'a>>,
}

impl<'a> Scan<'a> {
    pub fn new(text: &'a str) -> Scan<'a> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let phys: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
        let mut lines: Vec<Logical<'a>> = Vec::with_capacity(phys.len());
        let mut previous_blank = true;
        for (i, p) in phys.iter().enumerate() {
            if (p.starts_with(' ') || p.starts_with('\t'))
                && !previous_blank
                && let Some(last) = lines.last_mut()
            {
                last.text.to_mut().push_str(&p[1..]);
                last.last = i;
                continue;
            }
            if p.trim().is_empty() {
                previous_blank = true;
                continue;
            }
            previous_blank = false;
            lines.push(Logical {
                text: Cow::Borrowed(p),
                first: i,
                last: i,
            });
        }
        Scan { phys, lines }
    }

    /// The physical lines of logical lines `first..=last`, malformed ones
    /// left out, each ending in CRLF; `insert` goes after the first line.
    /// Returns the number of lines left out.
    pub fn copy_lines(&self, first: usize, last: usize, insert: Option<&str>, out: &mut String, vcard: bool) -> usize {
        let mut dropped = 0;
        for (n, l) in self.lines[first..=last].iter().enumerate() {
            if prop(&l.text, vcard).is_none() {
                dropped += 1;
                continue;
            }
            for p in &self.phys[l.first..=l.last] {
                out.push_str(p);
                out.push_str("\r\n");
            }
            if n == 0
                && let Some(extra) = insert
            {
                out.push_str(extra);
                out.push_str("\r\n");
            }
        }
        dropped
    }

    /// Logical line `i`'s 1-based physical line number.
    pub fn line_no(&self, i: usize) -> usize {
        self.lines.get(i).map(|l| l.first + 1).unwrap_or(0)
    }
}

/// A content line split into name, parameters and value.
#[derive(Clone, Copy, Debug)]
pub(super) struct Prop<'l> {
    /// The name (with a vCard group prefix, `item1.EMAIL`, when allowed).
    pub name: &'l str,
    /// Everything between the name and the colon, without the first `;`.
    pub params: &'l str,
    pub value: &'l str,
}

/// Splits a content line: `NAME(;PARAM=VALUE)*:VALUE`, colons inside quoted
/// parameter values allowed. `None` for a line that is not one (no colon, a
/// name with other characters than letters, digits and `-`, plus `.` for a
/// vCard group).
pub(super) fn prop(line: &str, vcard: bool) -> Option<Prop<'_>> {
    let bytes = line.as_bytes();
    let mut name_end = None;
    let mut in_quotes = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' if name_end.is_some() => in_quotes = !in_quotes,
            b';' if name_end.is_none() => name_end = Some(i),
            b':' if !in_quotes => {
                let ne = name_end.unwrap_or(i);
                // The BOM some writers leave on the first line.
                let name = line[..ne].trim_start_matches('\u{feff}');
                let name_ok = !name.is_empty()
                    && name
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || (vcard && c == b'.'));
                if !name_ok {
                    return None;
                }
                let params = if ne < i { &line[ne + 1..i] } else { "" };
                return Some(Prop {
                    name,
                    params,
                    value: &line[i + 1..],
                });
            }
            _ => {}
        }
    }
    None
}

/// The first value of parameter `key` (case-insensitive), unquoted.
pub(super) fn param<'p>(params: &'p str, key: &str) -> Option<&'p str> {
    let mut rest = params;
    while !rest.is_empty() {
        // Split off one NAME=VALUE, honouring quotes.
        let mut end = rest.len();
        let mut q = false;
        for (i, b) in rest.bytes().enumerate() {
            match b {
                b'"' => q = !q,
                b';' if !q => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let item = &rest[..end];
        rest = if end < rest.len() { &rest[end + 1..] } else { "" };
        if let Some((k, v)) = item.split_once('=')
            && k.trim().eq_ignore_ascii_case(key)
        {
            let v = v.trim();
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
            return Some(v);
        }
    }
    None
}

/// `cutover-` and 32 hex digits of the SHA-256 of `text`: a stable UID for
/// an item that has none.
pub(super) fn generated_uid(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut s = String::from("cutover-");
    for b in &digest[..16] {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// What the scanner found: the calendars' headers and time zones, and the
/// event components grouped by UID.
struct Layout {
    calendars: Vec<CalendarHeader>,
    groups: Vec<Group>,
    /// No component or VCALENDAR at all was seen.
    saw_nothing: bool,
}

#[derive(Default)]
struct CalendarHeader {
    /// Logical lines of VERSION, PRODID, CALSCALE, X-WR-TIMEZONE.
    header: Vec<usize>,
    /// TZID → VTIMEZONE block (first definition wins).
    timezones: Vec<(String, Block)>,
}

#[derive(Clone, Copy)]
struct Block {
    /// Logical lines of BEGIN and END.
    first: usize,
    last: usize,
    calendar: usize,
}

struct Member {
    block: Block,
    /// RECURRENCE-ID as written (parameters and value), `None` for a master.
    rid: Option<String>,
    sequence: i64,
    /// LAST-MODIFIED, else DTSTAMP, as written (UTC, so comparable as text).
    stamp: String,
    tzids: Vec<String>,
}

struct Group {
    uid: String,
    generated_uid: bool,
    members: Vec<Member>,
    notes: Vec<String>,
}

impl Group {
    fn position(&self, scan: &Scan<'_>) -> String {
        let first = self.members.first().map(|m| m.block.first).unwrap_or(0);
        format!("VEVENT at line {}", scan.line_no(first))
    }
}

impl Scan<'_> {
    /// Walks the lines once: VCALENDAR headers, VTIMEZONE definitions,
    /// event components grouped by UID (duplicates dropped, the newest
    /// kept), everything else reported.
    fn calendar_layout(&self, problems: &mut Vec<ItemProblem>) -> Layout {
        struct Open {
            kind: String,
            first: usize,
            stack: Vec<String>,
            overflow: usize,
            too_deep: bool,
            calendar: usize,
        }
        let mut calendars: Vec<CalendarHeader> = Vec::new();
        let mut current: Option<usize> = None;
        let mut implicit: Option<usize> = None;
        let mut open: Option<Open> = None;
        let mut blocks: Vec<(String, Block)> = Vec::new();
        let mut saw_nothing = true;

        let close = |o: Open, last: usize, problems: &mut Vec<ItemProblem>, blocks: &mut Vec<(String, Block)>| {
            if o.too_deep {
                problems.push(ItemProblem {
                    uid_or_position: format!("{} at line {}", o.kind, self.line_no(o.first)),
                    reason: format!("components are nested more than {MAX_NESTING} levels deep; the item is not read"),
                });
                return;
            }
            blocks.push((
                o.kind,
                Block {
                    first: o.first,
                    last,
                    calendar: o.calendar,
                },
            ));
        };

        for (i, l) in self.lines.iter().enumerate() {
            let Some(p) = prop(&l.text, false) else { continue };
            let is_begin = p.name.eq_ignore_ascii_case("BEGIN");
            let is_end = p.name.eq_ignore_ascii_case("END");
            if let Some(o) = open.as_mut() {
                if is_begin {
                    if o.stack.len() >= MAX_NESTING {
                        o.overflow += 1;
                        o.too_deep = true;
                    } else {
                        o.stack.push(p.value.trim().to_ascii_uppercase());
                    }
                } else if is_end {
                    let v = p.value.trim().to_ascii_uppercase();
                    if o.overflow > 0 {
                        o.overflow -= 1;
                    } else if let Some(pos) = o.stack.iter().rposition(|k| *k == v) {
                        o.stack.truncate(pos);
                        if o.stack.is_empty()
                            && let Some(o) = open.take()
                        {
                            close(o, i, problems, &mut blocks);
                        }
                    } else if v == "VCALENDAR" {
                        if let Some(o) = open.take() {
                            problems.push(ItemProblem {
                                uid_or_position: self.unclosed_name(&o.kind, o.first, i),
                                reason: format!("the {} has no END:{} before the calendar ends", o.kind, o.kind),
                            });
                        }
                        current = None;
                    }
                }
                continue;
            }
            if is_begin {
                saw_nothing = false;
                let v = p.value.trim().to_ascii_uppercase();
                if v == "VCALENDAR" {
                    calendars.push(CalendarHeader::default());
                    current = Some(calendars.len() - 1);
                } else {
                    let calendar = match current {
                        Some(c) => c,
                        None => *implicit.get_or_insert_with(|| {
                            calendars.push(CalendarHeader::default());
                            calendars.len() - 1
                        }),
                    };
                    open = Some(Open {
                        kind: v.clone(),
                        first: i,
                        stack: vec![v],
                        overflow: 0,
                        too_deep: false,
                        calendar,
                    });
                }
                continue;
            }
            if is_end {
                if p.value.trim().eq_ignore_ascii_case("VCALENDAR") {
                    current = None;
                }
                continue;
            }
            if let Some(c) = current
                && ["VERSION", "PRODID", "CALSCALE", "X-WR-TIMEZONE"]
                    .iter()
                    .any(|n| p.name.eq_ignore_ascii_case(n))
                && !calendars[c]
                    .header
                    .iter()
                    .any(|&h| prop(&self.lines[h].text, false).is_some_and(|q| q.name.eq_ignore_ascii_case(p.name)))
            {
                calendars[c].header.push(i);
            }
        }
        if let Some(o) = open.take() {
            problems.push(ItemProblem {
                uid_or_position: self.unclosed_name(&o.kind, o.first, self.lines.len().saturating_sub(1)),
                reason: format!("the {} has no END:{} (the file is cut short?)", o.kind, o.kind),
            });
        }

        let mut groups: Vec<Group> = Vec::new();
        let mut by_uid: HashMap<String, usize> = HashMap::new();
        for (kind, block) in blocks {
            match kind.as_str() {
                "VTIMEZONE" => {
                    if let Some(tzid) = self.block_property(block, "TZID") {
                        let tzs = &mut calendars[block.calendar].timezones;
                        if !tzs.iter().any(|(t, _)| *t == tzid) {
                            tzs.push((tzid, block));
                        }
                    }
                }
                "VEVENT" => {
                    let member = self.member(block);
                    let uid = self.block_property(block, "UID").filter(|u| !u.is_empty());
                    match uid {
                        Some(uid) => {
                            if let Some(&g) = by_uid.get(&uid) {
                                add_member(&mut groups[g], member);
                            } else {
                                by_uid.insert(uid.clone(), groups.len());
                                groups.push(Group {
                                    uid,
                                    generated_uid: false,
                                    members: vec![member],
                                    notes: Vec::new(),
                                });
                            }
                        }
                        None => {
                            let mut text = String::new();
                            self.copy_lines(block.first, block.last, None, &mut text, false);
                            groups.push(Group {
                                uid: generated_uid(&text),
                                generated_uid: true,
                                members: vec![member],
                                notes: Vec::new(),
                            });
                        }
                    }
                }
                other => {
                    let what = match other {
                        "VTODO" => "a task (VTODO), not an event; tasks are not copied".to_string(),
                        "VJOURNAL" => "a journal entry (VJOURNAL), not an event; journal entries are not copied".into(),
                        "VFREEBUSY" => "free/busy data (VFREEBUSY), not an event; not copied".into(),
                        "VAVAILABILITY" => "availability data (VAVAILABILITY), not an event; not copied".into(),
                        _ => format!("a {other} component, not an event; not copied"),
                    };
                    let who = self
                        .block_property(block, "UID")
                        .unwrap_or_else(|| format!("{other} at line {}", self.line_no(block.first)));
                    problems.push(ItemProblem {
                        uid_or_position: who,
                        reason: what,
                    });
                }
            }
        }
        Layout {
            calendars,
            groups,
            saw_nothing,
        }
    }

    /// An unclosed component's UID, else its kind and line.
    fn unclosed_name(&self, kind: &str, first: usize, last: usize) -> String {
        let block = Block {
            first,
            last: last.max(first),
            calendar: 0,
        };
        self.block_property(block, "UID")
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| format!("{kind} at line {}", self.line_no(first)))
    }

    /// The value of the first property `name` directly inside the block
    /// (not inside a VALARM or other sub-component).
    fn block_property(&self, block: Block, name: &str) -> Option<String> {
        self.block_props(block)
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.trim().to_string())
    }

    /// The properties directly inside the block.
    fn block_props(&self, block: Block) -> impl Iterator<Item = Prop<'_>> {
        let mut depth = 0usize;
        self.lines[block.first..=block.last].iter().filter_map(move |l| {
            let p = prop(&l.text, false)?;
            if p.name.eq_ignore_ascii_case("BEGIN") {
                depth += 1;
                return None;
            }
            if p.name.eq_ignore_ascii_case("END") {
                depth = depth.saturating_sub(1);
                return None;
            }
            (depth == 1).then_some(p)
        })
    }

    fn member(&self, block: Block) -> Member {
        let mut rid = None;
        let mut sequence = 0;
        let mut modified = None;
        let mut stamp = None;
        for p in self.block_props(block) {
            if p.name.eq_ignore_ascii_case("RECURRENCE-ID") {
                rid = Some(format!("{}:{}", p.params.to_ascii_uppercase(), p.value.trim()));
            } else if p.name.eq_ignore_ascii_case("SEQUENCE") {
                sequence = p.value.trim().parse().unwrap_or(0);
            } else if p.name.eq_ignore_ascii_case("LAST-MODIFIED") {
                modified = Some(p.value.trim().to_string());
            } else if p.name.eq_ignore_ascii_case("DTSTAMP") {
                stamp = Some(p.value.trim().to_string());
            }
        }
        let mut tzids: Vec<String> = Vec::new();
        for l in &self.lines[block.first..=block.last] {
            if let Some(p) = prop(&l.text, false)
                && let Some(t) = param(p.params, "TZID")
                && !tzids.iter().any(|x| x == t)
            {
                tzids.push(t.to_string());
            }
        }
        Member {
            block,
            rid,
            sequence,
            stamp: modified.or(stamp).unwrap_or_default(),
            tzids,
        }
    }

    /// The object's VCALENDAR text and the notes on what was left out.
    fn object_raw(&self, layout: &Layout, group: &Group) -> (String, Vec<String>) {
        let mut out = String::with_capacity(1024);
        out.push_str("BEGIN:VCALENDAR\r\n");
        let calendar = group.members.first().map(|m| m.block.calendar).unwrap_or(0);
        let header = layout
            .calendars
            .get(calendar)
            .map(|c| c.header.as_slice())
            .unwrap_or(&[]);
        let has = |name: &str| {
            header
                .iter()
                .any(|&h| prop(&self.lines[h].text, false).is_some_and(|p| p.name.eq_ignore_ascii_case(name)))
        };
        if !has("VERSION") {
            out.push_str("VERSION:2.0\r\n");
        }
        if !has("PRODID") {
            out.push_str("PRODID:-//cutover//calendar object//EN\r\n");
        }
        for &h in header {
            self.copy_lines(h, h, None, &mut out, false);
        }
        let mut zones_done: Vec<&str> = Vec::new();
        for m in &group.members {
            for tzid in &m.tzids {
                if zones_done.contains(&tzid.as_str()) {
                    continue;
                }
                zones_done.push(tzid);
                let own = layout
                    .calendars
                    .get(m.block.calendar)
                    .and_then(|c| c.timezones.iter().find(|(t, _)| t == tzid));
                let any = || {
                    layout
                        .calendars
                        .iter()
                        .find_map(|c| c.timezones.iter().find(|(t, _)| t == tzid))
                };
                if let Some((_, b)) = own.or_else(any) {
                    self.copy_lines(b.first, b.last, None, &mut out, false);
                }
            }
        }
        let mut dropped = 0;
        let uid_line = group.generated_uid.then(|| format!("UID:{}", group.uid));
        for m in &group.members {
            dropped += self.copy_lines(m.block.first, m.block.last, uid_line.as_deref(), &mut out, false);
        }
        out.push_str("END:VCALENDAR\r\n");
        let mut notes = Vec::new();
        if dropped > 0 {
            notes.push(format!(
                "{dropped} malformed line{} left out",
                if dropped == 1 { " was" } else { "s were" }
            ));
        }
        (out, notes)
    }
}

/// Adds a component to its UID's group; of two with the same RECURRENCE-ID
/// (or two masters) the one with the higher SEQUENCE, then the later
/// LAST-MODIFIED/DTSTAMP, then the later in the file is kept.
fn add_member(group: &mut Group, member: Member) {
    if let Some(i) = group.members.iter().position(|m| m.rid == member.rid) {
        let old = &group.members[i];
        let newer = (member.sequence, member.stamp.as_str()) >= (old.sequence, old.stamp.as_str());
        let what = match &member.rid {
            None => "the event".to_string(),
            Some(_) => "an occurrence of the series".to_string(),
        };
        group.notes.push(format!(
            "{what} appears twice in the source; the newer copy (SEQUENCE {}) was kept",
            member.sequence.max(old.sequence)
        ));
        if newer {
            group.members[i] = member;
        }
        return;
    }
    // The master first, then the overrides in file order.
    if member.rid.is_none() {
        group.members.insert(0, member);
    } else {
        group.members.push(member);
    }
}

// ---------------------------------------------------------------------------
// Time zones
// ---------------------------------------------------------------------------

/// Windows time zone names (as Exchange and Graph spell them) and the IANA
/// zones each stands for, the first being its own (CLDR `windowsZones.xml`,
/// territory 001, then the other territories, with aliases).
const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("Dateline Standard Time", "Etc/GMT+12"),
    ("UTC-11", "Etc/GMT+11 Pacific/Pago_Pago Pacific/Niue Pacific/Midway"),
    ("Aleutian Standard Time", "America/Adak"),
    (
        "Hawaiian Standard Time",
        "Pacific/Honolulu Pacific/Rarotonga Pacific/Tahiti Pacific/Johnston Etc/GMT+10",
    ),
    ("Marquesas Standard Time", "Pacific/Marquesas"),
    (
        "Alaskan Standard Time",
        "America/Anchorage America/Juneau America/Nome America/Sitka America/Yakutat America/Metlakatla",
    ),
    ("UTC-09", "Etc/GMT+9 Pacific/Gambier"),
    (
        "Pacific Standard Time (Mexico)",
        "America/Tijuana America/Santa_Isabel America/Ensenada",
    ),
    ("UTC-08", "Etc/GMT+8 Pacific/Pitcairn"),
    ("Pacific Standard Time", "America/Los_Angeles America/Vancouver PST8PDT"),
    (
        "US Mountain Standard Time",
        "America/Phoenix America/Dawson_Creek America/Creston America/Fort_Nelson America/Hermosillo Etc/GMT+7",
    ),
    ("Mountain Standard Time (Mexico)", "America/Mazatlan"),
    (
        "Mountain Standard Time",
        "America/Denver America/Edmonton America/Cambridge_Bay America/Inuvik America/Yellowknife America/Boise \
         MST7MDT America/Ciudad_Juarez",
    ),
    ("Yukon Standard Time", "America/Whitehorse America/Dawson"),
    (
        "Central America Standard Time",
        "America/Guatemala America/Belize America/Costa_Rica Pacific/Galapagos America/Tegucigalpa America/Managua \
         America/El_Salvador Etc/GMT+6",
    ),
    (
        "Central Standard Time",
        "America/Chicago America/Winnipeg America/Rainy_River America/Rankin_Inlet America/Resolute \
         America/Matamoros America/Indiana/Knox America/Indiana/Tell_City America/Menominee \
         America/North_Dakota/Beulah America/North_Dakota/Center America/North_Dakota/New_Salem CST6CDT \
         America/Ojinaga",
    ),
    ("Easter Island Standard Time", "Pacific/Easter"),
    (
        "Central Standard Time (Mexico)",
        "America/Mexico_City America/Bahia_Banderas America/Merida America/Monterrey America/Chihuahua",
    ),
    ("Canada Central Standard Time", "America/Regina America/Swift_Current"),
    (
        "SA Pacific Standard Time",
        "America/Bogota America/Rio_Branco America/Eirunepe America/Coral_Harbour America/Guayaquil America/Jamaica \
         America/Cayman America/Panama America/Lima Etc/GMT+5",
    ),
    ("Eastern Standard Time (Mexico)", "America/Cancun"),
    (
        "Eastern Standard Time",
        "America/New_York America/Nassau America/Toronto America/Iqaluit America/Montreal America/Nipigon \
         America/Pangnirtung America/Thunder_Bay America/Detroit America/Indiana/Petersburg \
         America/Indiana/Vincennes America/Indiana/Winamac America/Kentucky/Monticello America/Louisville EST5EDT",
    ),
    ("Haiti Standard Time", "America/Port-au-Prince"),
    ("Cuba Standard Time", "America/Havana"),
    (
        "US Eastern Standard Time",
        "America/Indiana/Indianapolis America/Indiana/Marengo America/Indiana/Vevay America/Indianapolis \
         America/Fort_Wayne",
    ),
    ("Paraguay Standard Time", "America/Asuncion"),
    (
        "Atlantic Standard Time",
        "America/Halifax Atlantic/Bermuda America/Glace_Bay America/Goose_Bay America/Moncton America/Thule",
    ),
    ("Venezuela Standard Time", "America/Caracas"),
    ("Central Brazilian Standard Time", "America/Cuiaba America/Campo_Grande"),
    (
        "SA Western Standard Time",
        "America/La_Paz America/Antigua America/Anguilla America/Aruba America/Barbados America/St_Barthelemy \
         America/Kralendijk America/Manaus America/Boa_Vista America/Porto_Velho America/Blanc-Sablon \
         America/Curacao America/Dominica America/Santo_Domingo America/Grenada America/Guadeloupe America/Guyana \
         America/St_Kitts America/St_Lucia America/Marigot America/Martinique America/Montserrat \
         America/Puerto_Rico America/Lower_Princes America/Port_of_Spain America/St_Vincent America/Tortola \
         America/St_Thomas Etc/GMT+4",
    ),
    ("Pacific SA Standard Time", "America/Santiago"),
    ("Turks And Caicos Standard Time", "America/Grand_Turk"),
    ("Newfoundland Standard Time", "America/St_Johns"),
    ("Tocantins Standard Time", "America/Araguaina"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    (
        "SA Eastern Standard Time",
        "America/Cayenne Antarctica/Rothera America/Fortaleza America/Belem America/Maceio America/Recife \
         America/Santarem Atlantic/Stanley America/Paramaribo Etc/GMT+3 Antarctica/Palmer",
    ),
    (
        "Argentina Standard Time",
        "America/Argentina/Buenos_Aires America/Argentina/La_Rioja America/Argentina/Rio_Gallegos \
         America/Argentina/Salta America/Argentina/San_Juan America/Argentina/San_Luis America/Argentina/Tucuman \
         America/Argentina/Ushuaia America/Argentina/Catamarca America/Argentina/Cordoba America/Argentina/Jujuy \
         America/Argentina/Mendoza America/Buenos_Aires America/Catamarca America/Cordoba America/Jujuy \
         America/Mendoza",
    ),
    ("Greenland Standard Time", "America/Godthab America/Nuuk"),
    ("Montevideo Standard Time", "America/Montevideo"),
    ("Magallanes Standard Time", "America/Punta_Arenas"),
    ("Saint Pierre Standard Time", "America/Miquelon"),
    ("Bahia Standard Time", "America/Bahia"),
    ("UTC-02", "Etc/GMT+2 America/Noronha Atlantic/South_Georgia"),
    ("Azores Standard Time", "Atlantic/Azores America/Scoresbysund"),
    ("Cape Verde Standard Time", "Atlantic/Cape_Verde Etc/GMT+1"),
    (
        "UTC",
        "Etc/UTC Etc/GMT UTC Etc/Universal Etc/Zulu Etc/UCT UCT Universal Zulu GMT Etc/Greenwich Greenwich Etc/GMT0 \
         Etc/GMT+0 Etc/GMT-0 GMT0 GMT+0 GMT-0",
    ),
    (
        "GMT Standard Time",
        "Europe/London Atlantic/Canary Atlantic/Faeroe Europe/Guernsey Europe/Dublin Europe/Isle_of_Man \
         Europe/Jersey Europe/Lisbon Atlantic/Madeira Atlantic/Faroe",
    ),
    (
        "Greenwich Standard Time",
        "Atlantic/Reykjavik Africa/Ouagadougou Africa/Abidjan Africa/Accra Africa/Banjul Africa/Conakry \
         Africa/Bissau Africa/Monrovia Africa/Bamako Africa/Nouakchott Atlantic/St_Helena Africa/Freetown \
         Africa/Dakar Africa/Lome America/Danmarkshavn",
    ),
    (
        "W. Europe Standard Time",
        "Europe/Berlin Europe/Andorra Europe/Vienna Europe/Zurich Europe/Busingen Europe/Gibraltar Europe/Rome \
         Europe/Vaduz Europe/Luxembourg Europe/Monaco Europe/Malta Europe/Amsterdam Europe/Oslo Europe/Stockholm \
         Arctic/Longyearbyen Europe/San_Marino Europe/Vatican",
    ),
    (
        "Central Europe Standard Time",
        "Europe/Budapest Europe/Tirane Europe/Prague Europe/Podgorica Europe/Belgrade Europe/Ljubljana \
         Europe/Bratislava",
    ),
    (
        "Romance Standard Time",
        "Europe/Paris Europe/Brussels Europe/Copenhagen Europe/Madrid Africa/Ceuta",
    ),
    ("Morocco Standard Time", "Africa/Casablanca Africa/El_Aaiun"),
    ("Sao Tome Standard Time", "Africa/Sao_Tome"),
    (
        "Central European Standard Time",
        "Europe/Warsaw Europe/Sarajevo Europe/Zagreb Europe/Skopje",
    ),
    (
        "W. Central Africa Standard Time",
        "Africa/Lagos Africa/Luanda Africa/Porto-Novo Africa/Kinshasa Africa/Bangui Africa/Brazzaville \
         Africa/Douala Africa/Algiers Africa/Libreville Africa/Malabo Africa/Niamey Africa/Ndjamena Africa/Tunis \
         Etc/GMT-1",
    ),
    ("Jordan Standard Time", "Asia/Amman"),
    (
        "GTB Standard Time",
        "Europe/Bucharest Asia/Famagusta Asia/Nicosia Europe/Athens",
    ),
    ("Middle East Standard Time", "Asia/Beirut"),
    ("Egypt Standard Time", "Africa/Cairo"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("Syria Standard Time", "Asia/Damascus"),
    ("West Bank Standard Time", "Asia/Hebron Asia/Gaza"),
    (
        "South Africa Standard Time",
        "Africa/Johannesburg Africa/Bujumbura Africa/Gaborone Africa/Lubumbashi Africa/Maseru Africa/Blantyre \
         Africa/Maputo Africa/Kigali Africa/Mbabane Africa/Lusaka Africa/Harare Etc/GMT-2",
    ),
    (
        "FLE Standard Time",
        "Europe/Kiev Europe/Mariehamn Europe/Sofia Europe/Tallinn Europe/Helsinki Europe/Vilnius Europe/Riga \
         Europe/Uzhgorod Europe/Zaporozhye Europe/Kyiv",
    ),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("Kaliningrad Standard Time", "Europe/Kaliningrad"),
    ("South Sudan Standard Time", "Africa/Juba"),
    ("Sudan Standard Time", "Africa/Khartoum"),
    ("Libya Standard Time", "Africa/Tripoli"),
    ("Namibia Standard Time", "Africa/Windhoek"),
    ("Arabic Standard Time", "Asia/Baghdad"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    (
        "Arab Standard Time",
        "Asia/Riyadh Asia/Bahrain Asia/Kuwait Asia/Qatar Asia/Aden",
    ),
    ("Belarus Standard Time", "Europe/Minsk"),
    ("Russian Standard Time", "Europe/Moscow Europe/Kirov Europe/Simferopol"),
    (
        "E. Africa Standard Time",
        "Africa/Nairobi Antarctica/Syowa Africa/Djibouti Africa/Asmera Africa/Addis_Ababa Indian/Comoro \
         Indian/Antananarivo Africa/Mogadishu Africa/Dar_es_Salaam Africa/Kampala Indian/Mayotte Etc/GMT-3 \
         Africa/Asmara",
    ),
    ("Iran Standard Time", "Asia/Tehran"),
    ("Arabian Standard Time", "Asia/Dubai Asia/Muscat Etc/GMT-4"),
    ("Astrakhan Standard Time", "Europe/Astrakhan Europe/Ulyanovsk"),
    ("Azerbaijan Standard Time", "Asia/Baku"),
    ("Russia Time Zone 3", "Europe/Samara"),
    ("Mauritius Standard Time", "Indian/Mauritius Indian/Reunion Indian/Mahe"),
    ("Saratov Standard Time", "Europe/Saratov"),
    ("Georgian Standard Time", "Asia/Tbilisi"),
    ("Volgograd Standard Time", "Europe/Volgograd"),
    ("Caucasus Standard Time", "Asia/Yerevan"),
    ("Afghanistan Standard Time", "Asia/Kabul"),
    (
        "West Asia Standard Time",
        "Asia/Tashkent Antarctica/Mawson Asia/Oral Asia/Aqtau Asia/Aqtobe Asia/Atyrau Indian/Maldives \
         Indian/Kerguelen Asia/Dushanbe Asia/Ashgabat Asia/Samarkand Etc/GMT-5 Asia/Almaty Asia/Qostanay",
    ),
    ("Ekaterinburg Standard Time", "Asia/Yekaterinburg"),
    ("Pakistan Standard Time", "Asia/Karachi"),
    ("Qyzylorda Standard Time", "Asia/Qyzylorda"),
    ("India Standard Time", "Asia/Kolkata Asia/Calcutta"),
    ("Sri Lanka Standard Time", "Asia/Colombo"),
    ("Nepal Standard Time", "Asia/Kathmandu Asia/Katmandu"),
    (
        "Central Asia Standard Time",
        "Asia/Bishkek Antarctica/Vostok Asia/Urumqi Indian/Chagos Etc/GMT-6",
    ),
    ("Bangladesh Standard Time", "Asia/Dhaka Asia/Thimphu"),
    ("Omsk Standard Time", "Asia/Omsk"),
    ("Myanmar Standard Time", "Asia/Yangon Indian/Cocos Asia/Rangoon"),
    (
        "SE Asia Standard Time",
        "Asia/Bangkok Antarctica/Davis Indian/Christmas Asia/Jakarta Asia/Pontianak Asia/Phnom_Penh Asia/Vientiane \
         Asia/Saigon Etc/GMT-7 Asia/Ho_Chi_Minh",
    ),
    ("Altai Standard Time", "Asia/Barnaul"),
    ("W. Mongolia Standard Time", "Asia/Hovd"),
    ("North Asia Standard Time", "Asia/Krasnoyarsk Asia/Novokuznetsk"),
    ("N. Central Asia Standard Time", "Asia/Novosibirsk"),
    ("Tomsk Standard Time", "Asia/Tomsk"),
    ("China Standard Time", "Asia/Shanghai Asia/Hong_Kong Asia/Macau"),
    ("North Asia East Standard Time", "Asia/Irkutsk"),
    (
        "Singapore Standard Time",
        "Asia/Singapore Asia/Brunei Asia/Makassar Asia/Kuala_Lumpur Asia/Kuching Asia/Manila Etc/GMT-8",
    ),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("Taipei Standard Time", "Asia/Taipei"),
    ("Ulaanbaatar Standard Time", "Asia/Ulaanbaatar Asia/Choibalsan"),
    ("Aus Central W. Standard Time", "Australia/Eucla"),
    ("Transbaikal Standard Time", "Asia/Chita"),
    (
        "Tokyo Standard Time",
        "Asia/Tokyo Asia/Jayapura Pacific/Palau Asia/Dili Etc/GMT-9",
    ),
    ("North Korea Standard Time", "Asia/Pyongyang"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("Yakutsk Standard Time", "Asia/Yakutsk Asia/Khandyga"),
    (
        "Cen. Australia Standard Time",
        "Australia/Adelaide Australia/Broken_Hill",
    ),
    ("AUS Central Standard Time", "Australia/Darwin"),
    ("E. Australia Standard Time", "Australia/Brisbane Australia/Lindeman"),
    ("AUS Eastern Standard Time", "Australia/Sydney Australia/Melbourne"),
    (
        "West Pacific Standard Time",
        "Pacific/Port_Moresby Antarctica/DumontDUrville Pacific/Truk Pacific/Guam Pacific/Saipan Etc/GMT-10 \
         Pacific/Chuuk",
    ),
    (
        "Tasmania Standard Time",
        "Australia/Hobart Australia/Currie Antarctica/Macquarie",
    ),
    ("Vladivostok Standard Time", "Asia/Vladivostok Asia/Ust-Nera"),
    ("Lord Howe Standard Time", "Australia/Lord_Howe"),
    ("Bougainville Standard Time", "Pacific/Bougainville"),
    ("Russia Time Zone 10", "Asia/Srednekolymsk"),
    ("Magadan Standard Time", "Asia/Magadan"),
    ("Norfolk Standard Time", "Pacific/Norfolk"),
    ("Sakhalin Standard Time", "Asia/Sakhalin"),
    (
        "Central Pacific Standard Time",
        "Pacific/Guadalcanal Pacific/Ponape Pacific/Kosrae Pacific/Noumea Pacific/Efate Etc/GMT-11 \
         Antarctica/Casey Pacific/Pohnpei",
    ),
    ("Russia Time Zone 11", "Asia/Kamchatka Asia/Anadyr"),
    ("New Zealand Standard Time", "Pacific/Auckland Antarctica/McMurdo"),
    (
        "UTC+12",
        "Etc/GMT-12 Pacific/Tarawa Pacific/Majuro Pacific/Kwajalein Pacific/Nauru Pacific/Funafuti Pacific/Wake \
         Pacific/Wallis",
    ),
    ("Fiji Standard Time", "Pacific/Fiji"),
    ("Chatham Islands Standard Time", "Pacific/Chatham"),
    ("UTC+13", "Etc/GMT-13 Pacific/Enderbury Pacific/Fakaofo Pacific/Kanton"),
    ("Tonga Standard Time", "Pacific/Tongatapu"),
    ("Samoa Standard Time", "Pacific/Apia"),
    ("Line Islands Standard Time", "Pacific/Kiritimati Etc/GMT-14"),
];

/// The Windows time zone name (`W. Europe Standard Time`) Exchange knows
/// `tz` by: the CLDR mapping, else the Windows zone whose offsets agree
/// with `tz`'s from 2015 to 2035. `None` when no Windows zone does.
pub fn windows_zone_name(tz: Tz) -> Option<&'static str> {
    static BY_NAME: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    static BY_EQUIVALENCE: OnceLock<std::sync::Mutex<HashMap<Tz, Option<&'static str>>>> = OnceLock::new();
    let by_name = BY_NAME.get_or_init(|| {
        let mut m = HashMap::new();
        for (windows, ianas) in WINDOWS_ZONES {
            for iana in ianas.split_whitespace() {
                m.entry(iana).or_insert(*windows);
            }
        }
        m
    });
    if let Some(w) = by_name.get(tz.name()) {
        return Some(w);
    }
    let memo = BY_EQUIVALENCE.get_or_init(Default::default);
    if let Ok(m) = memo.lock()
        && let Some(found) = m.get(&tz)
    {
        return *found;
    }
    let samples = offset_samples(2015..=2035);
    let found = WINDOWS_ZONES.iter().find_map(|(windows, ianas)| {
        let own = Tz::from_str(ianas.split_whitespace().next()?).ok()?;
        samples
            .iter()
            .all(|&t| tz_offset(own, t) == tz_offset(tz, t))
            .then_some(*windows)
    });
    if let Ok(mut m) = memo.lock() {
        m.insert(tz, found);
    }
    found
}

/// A zone name as a caller or a TZID gives it: IANA, then calcard's
/// Windows and Outlook names.
fn resolve_zone_name(name: &str) -> Option<Tz> {
    if let Ok(tz) = Tz::from_str(name.trim()) {
        return Some(tz);
    }
    match CalTz::from_str(name) {
        Ok(CalTz::Tz(tz)) => Some(tz),
        _ => None,
    }
}

/// Converts a wall-clock time to UTC. An ambiguous time (the hour repeated
/// when DST ends) is its first instance; a time in the hour skipped when
/// DST starts is moved later by the gap, as RFC 5545 and Outlook do.
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // The offset before the gap applied to the time in it.
            let before = tz.offset_from_utc_datetime(&(local - Duration::days(1))).fix();
            Utc.from_utc_datetime(&(local - Duration::seconds(before.local_minus_utc() as i64)))
        }
    }
}

fn tz_offset(tz: Tz, t: i64) -> i32 {
    match DateTime::from_timestamp(t, 0) {
        Some(d) => tz.offset_from_utc_datetime(&d.naive_utc()).fix().local_minus_utc(),
        None => 0,
    }
}

/// Instants at which two zones are compared: twice a month over `years`.
fn offset_samples(years: std::ops::RangeInclusive<i32>) -> Vec<i64> {
    let mut out = Vec::new();
    for y in years {
        for m in 1..=12 {
            for d in [3, 17] {
                if let Some(t) = NaiveDate::from_ymd_opt(y, m, d).and_then(|d| d.and_hms_opt(12, 0, 0)) {
                    out.push(t.and_utc().timestamp());
                }
            }
        }
    }
    out
}

/// A VTIMEZONE known only by its rules.
#[derive(Debug)]
struct CustomZone {
    tzid: String,
    /// UTC transition instants (seconds) and the offset from then on,
    /// sorted, for the years around the events.
    transitions: Vec<(i64, i32)>,
    /// The offset before the first transition.
    initial: i32,
}

impl CustomZone {
    /// Reads the STANDARD and DAYLIGHT observances of a VTIMEZONE and
    /// computes its transitions from `from_year` to `to_year`.
    fn from_component(ical: &ICalendar, vtz: &ICalendarComponent, from_year: i32, to_year: i32) -> Option<CustomZone> {
        let tzid = vtz
            .property(&ICalendarProperty::Tzid)?
            .values
            .first()?
            .as_text()?
            .to_string();
        let mut transitions = Vec::new();
        let mut earliest: Option<(NaiveDateTime, i32)> = None;
        for &id in &vtz.component_ids {
            let Some(obs) = ical.components.get(id as usize) else {
                continue;
            };
            if !matches!(
                obs.component_type,
                ICalendarComponentType::Standard | ICalendarComponentType::Daylight
            ) {
                continue;
            }
            let offset = |p: ICalendarProperty| -> Option<i32> {
                let v = obs.property(&p)?.values.first()?.as_partial_date_time()?;
                let secs = v.tz_hour? as i32 * 3600 + v.tz_minute.unwrap_or(0) as i32 * 60;
                Some(if v.tz_minus { -secs } else { secs })
            };
            let Some(to) = offset(ICalendarProperty::Tzoffsetto) else {
                continue;
            };
            let from = offset(ICalendarProperty::Tzoffsetfrom).unwrap_or(to);
            let Some(start) = obs
                .property(&ICalendarProperty::Dtstart)
                .and_then(|e| e.values.first()?.as_partial_date_time()?.to_date_time())
                .map(|d| d.date_time)
            else {
                continue;
            };
            if earliest.is_none_or(|(t, _)| start < t) {
                earliest = Some((start, from));
            }
            let mut onsets = vec![start];
            if let Some(ICalendarValue::RecurrenceRule(rule)) =
                obs.property(&ICalendarProperty::Rrule).and_then(|e| e.values.first())
            {
                // Expand from a year before the window (an onset long before
                // it only sets the offset the window starts with).
                let mut dtstart = start;
                if rule.count.is_none() && start.year() < from_year - 1 {
                    dtstart = start.with_year(from_year - 1).unwrap_or(start);
                }
                let until_local = rule.until.as_ref().and_then(|u| {
                    let d = u.to_date_time()?;
                    Some(match d.offset {
                        Some(o) => d.date_time + Duration::seconds(o.local_minus_utc() as i64 + from as i64),
                        None => d.date_time,
                    })
                });
                let window_end = NaiveDate::from_ymd_opt(to_year + 1, 1, 1)?.and_time(chrono::NaiveTime::MIN);
                let until = Some(until_local.map_or(window_end, |u| u.min(window_end)));
                if let Ok(more) = expand_rule(rule, dtstart, until, ((to_year - from_year + 3) * 12) as usize) {
                    onsets.extend(more);
                }
            }
            for e in obs.properties(&ICalendarProperty::Rdate) {
                for v in &e.values {
                    if let Some(d) = v.as_partial_date_time().and_then(|d| d.to_date_time()) {
                        onsets.push(d.date_time);
                    }
                }
            }
            for onset in onsets {
                let utc = onset - Duration::seconds(from as i64);
                transitions.push((utc.and_utc().timestamp(), to));
            }
        }
        let (_, initial) = earliest?;
        transitions.sort();
        transitions.dedup_by_key(|t| t.0);
        Some(CustomZone {
            tzid,
            transitions,
            initial,
        })
    }

    fn offset_at(&self, t: i64) -> i32 {
        match self.transitions.partition_point(|&(at, _)| at <= t) {
            0 => self.initial,
            n => self.transitions[n - 1].1,
        }
    }

    fn has_dst(&self) -> bool {
        let first = self.initial;
        self.transitions.iter().any(|&(_, o)| o != first)
    }

    fn to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let l = local.and_utc().timestamp();
        let mut offsets: Vec<i32> = self.transitions.iter().map(|t| t.1).chain([self.initial]).collect();
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        offsets.dedup();
        // The earliest instant whose offset gives this wall-clock time.
        for o in &offsets {
            let t = l - *o as i64;
            if self.offset_at(t) == *o {
                return DateTime::from_timestamp(t, 0).unwrap_or_default();
            }
        }
        let before = self.offset_at(l - 86_400);
        DateTime::from_timestamp(l - before as i64, 0).unwrap_or_default()
    }

    fn local_of(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.naive_utc() + Duration::seconds(self.offset_at(t.timestamp()) as i64)
    }

    /// The IANA zone that agrees with this one at every sample instant in
    /// `years`: Windows' zones first, then every zone.
    fn matching_zone(&self, years: std::ops::RangeInclusive<i32>) -> Option<Tz> {
        let mut samples = offset_samples(years.clone());
        for &(t, _) in &self.transitions {
            let y = DateTime::from_timestamp(t, 0).map(|d| d.year()).unwrap_or(0);
            if years.contains(&y) {
                samples.extend([t - 60, t, t + 60]);
            }
        }
        let agrees = |tz: Tz| samples.iter().all(|&t| tz_offset(tz, t) == self.offset_at(t));
        let preferred = WINDOWS_ZONES
            .iter()
            .filter_map(|(_, ianas)| Tz::from_str(ianas.split_whitespace().next()?).ok());
        preferred
            .chain(chrono_tz::TZ_VARIANTS.iter().copied())
            .find(|tz| agrees(*tz))
    }
}

/// A resolved TZID.
#[derive(Clone, Debug)]
enum Resolved {
    Iana(Tz, Option<String>),
    Custom(Arc<CustomZone>),
    Unknown,
}

/// Resolved TZIDs, by TZID and the year they were matched around.
#[derive(Default)]
struct ZoneCache {
    resolved: HashMap<(String, i32), Resolved>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ZoneRef {
    Utc,
    Floating,
    Iana(Tz),
    /// Index into [`Zones::custom`].
    Custom(usize),
}

/// The zones of one object.
struct Zones {
    default: Tz,
    custom: Vec<Arc<CustomZone>>,
}

/// A time as read: wall-clock time and zone (UTC: the UTC wall clock).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Stamp {
    local: NaiveDateTime,
    zone: ZoneRef,
    date_only: bool,
}

impl Stamp {
    fn utc(&self, zones: &Zones) -> DateTime<Utc> {
        match self.zone {
            ZoneRef::Utc => self.local.and_utc(),
            ZoneRef::Floating => local_to_utc(zones.default, self.local),
            ZoneRef::Iana(tz) => local_to_utc(tz, self.local),
            ZoneRef::Custom(i) => zones
                .custom
                .get(i)
                .map(|c| c.to_utc(self.local))
                .unwrap_or(self.local.and_utc()),
        }
    }

    /// The same instant as wall-clock time in `like`'s zone and form.
    fn rezone(t: DateTime<Utc>, like: &Stamp, zones: &Zones) -> Stamp {
        let local = match like.zone {
            ZoneRef::Utc => t.naive_utc(),
            ZoneRef::Floating => t.with_timezone(&zones.default).naive_local(),
            ZoneRef::Iana(tz) => t.with_timezone(&tz).naive_local(),
            ZoneRef::Custom(i) => zones.custom.get(i).map(|c| c.local_of(t)).unwrap_or(t.naive_utc()),
        };
        let local = if like.date_only {
            local.date().and_time(chrono::NaiveTime::MIN)
        } else {
            local
        };
        Stamp {
            local,
            zone: like.zone,
            date_only: like.date_only,
        }
    }

    /// `other` expressed like `self` (same zone, same date/time form).
    fn align(&self, other: &Stamp, zones: &Zones) -> Stamp {
        if other.zone == self.zone && other.date_only == self.date_only {
            return *other;
        }
        if self.date_only && other.date_only {
            return Stamp {
                zone: self.zone,
                ..*other
            };
        }
        if self.date_only {
            // A date-time occurrence of an all-day series: its date.
            return Stamp {
                local: other.local.date().and_time(chrono::NaiveTime::MIN),
                zone: self.zone,
                date_only: true,
            };
        }
        if other.date_only {
            // A date for a timed series: that day at the series' time.
            return Stamp {
                local: other.local.date().and_time(self.local.time()),
                zone: self.zone,
                date_only: false,
            };
        }
        Stamp::rezone(other.utc(zones), self, zones)
    }

    fn event_time(&self, zones: &Zones) -> EventTime {
        if self.date_only {
            return EventTime::Date {
                date: self.local.date(),
            };
        }
        match self.zone {
            ZoneRef::Utc => EventTime::Utc {
                at: self.local.and_utc(),
            },
            ZoneRef::Floating => EventTime::Floating { local: self.local },
            ZoneRef::Iana(tz) => EventTime::Zoned {
                local: self.local,
                zone: tz,
            },
            ZoneRef::Custom(_) => EventTime::Utc { at: self.utc(zones) },
        }
    }

    fn with_local(&self, local: NaiveDateTime) -> Stamp {
        Stamp { local, ..*self }
    }
}

// ---------------------------------------------------------------------------
// Reading the components
// ---------------------------------------------------------------------------

/// One VEVENT as read.
struct Parsed {
    event: Event,
    start: Stamp,
    end: Stamp,
    rules: Vec<ICalendarRecurrenceRule>,
    /// An RRULE that could not be read, as written.
    bad_rule: Option<String>,
    exrules: Vec<ICalendarRecurrenceRule>,
    rdates: Vec<(Stamp, Option<Stamp>)>,
    exdates: Vec<Stamp>,
    rid: Option<Stamp>,
    cancelled: bool,
}

/// A UID's components, read.
struct Series {
    master: Option<Parsed>,
    overrides: Vec<Parsed>,
    zones: Zones,
    notes: Vec<String>,
}

/// Reads an object's components with their zones.
fn build_series(ical: &ICalendar, default: Tz, cache: &mut ZoneCache) -> Result<Series, String> {
    let Some(root) = ical.components.first() else {
        return Err("the event cannot be read as iCalendar".into());
    };
    let mut reader = Reader {
        ical,
        default,
        cache,
        zones: Zones {
            default,
            custom: Vec::new(),
        },
        by_tzid: HashMap::new(),
        notes: Vec::new(),
        vtimezones: root
            .component_ids
            .iter()
            .filter_map(|&i| ical.components.get(i as usize))
            .filter(|c| c.component_type == ICalendarComponentType::VTimezone)
            .filter_map(|c| {
                Some((
                    c.property(&ICalendarProperty::Tzid)?
                        .values
                        .first()?
                        .as_text()?
                        .to_string(),
                    c,
                ))
            })
            .collect(),
    };
    let mut master = None;
    let mut overrides = Vec::new();
    for &id in &root.component_ids {
        let Some(comp) = ical.components.get(id as usize) else {
            continue;
        };
        if comp.component_type != ICalendarComponentType::VEvent {
            continue;
        }
        let summary = comp
            .property(&ICalendarProperty::Summary)
            .and_then(|e| e.values.first()?.as_text())
            .map(str::to_string);
        let parsed = reader.vevent(comp).map_err(|reason| match &summary {
            Some(s) if !s.trim().is_empty() => format!("event \"{}\": {reason}", s.trim()),
            _ => reason,
        })?;
        if parsed.rid.is_some() {
            overrides.push(parsed);
        } else if master.is_none() {
            master = Some(parsed);
        }
    }
    if master.is_none() && overrides.is_empty() {
        return Err("no event in the calendar object".into());
    }
    let notes = std::mem::take(&mut reader.notes);
    Ok(Series {
        master,
        overrides,
        zones: reader.zones,
        notes,
    })
}

struct Reader<'a> {
    ical: &'a ICalendar,
    default: Tz,
    cache: &'a mut ZoneCache,
    zones: Zones,
    by_tzid: HashMap<(String, i32), ZoneRef>,
    vtimezones: Vec<(String, &'a ICalendarComponent)>,
    notes: Vec<String>,
}

impl Reader<'_> {
    /// Resolves a TZID (see the module documentation), `year` being the
    /// year the time is in.
    fn zone(&mut self, tzid: &str, year: i32) -> ZoneRef {
        let year = year.clamp(1970, 2100);
        if let Some(z) = self.by_tzid.get(&(tzid.to_string(), year)) {
            return *z;
        }
        let key = (tzid.to_string(), year);
        let resolved = match self.cache.resolved.get(&key) {
            Some(r) => r.clone(),
            None => {
                let r = self.resolve(tzid, year);
                self.cache.resolved.insert(key.clone(), r.clone());
                r
            }
        };
        let z = match resolved {
            Resolved::Iana(tz, note) => {
                if let Some(n) = note
                    && !self.notes.contains(&n)
                {
                    self.notes.push(n);
                }
                ZoneRef::Iana(tz)
            }
            Resolved::Custom(c) => {
                let n = format!(
                    "time zone \"{}\" matches no known zone; its times were converted to UTC with the file's own rules",
                    c.tzid
                );
                if !self.notes.contains(&n) {
                    self.notes.push(n);
                }
                let i = match self.zones.custom.iter().position(|x| Arc::ptr_eq(x, &c)) {
                    Some(i) => i,
                    None => {
                        self.zones.custom.push(c);
                        self.zones.custom.len() - 1
                    }
                };
                ZoneRef::Custom(i)
            }
            Resolved::Unknown => {
                let n = format!(
                    "time zone \"{tzid}\" is unknown and not defined in the file; its times were read in {}",
                    self.default.name()
                );
                if !self.notes.contains(&n) {
                    self.notes.push(n);
                }
                ZoneRef::Iana(self.default)
            }
        };
        self.by_tzid.insert(key, z);
        z
    }

    fn resolve(&self, tzid: &str, year: i32) -> Resolved {
        let trimmed = tzid.trim();
        if let Ok(tz) = Tz::from_str(trimmed) {
            return Resolved::Iana(tz, None);
        }
        let vtz = self.vtimezones.iter().find(|(t, _)| t == tzid).map(|(_, c)| *c);
        // calcard's Windows, Outlook and vendor-path names; a bare offset
        // ("(GMT+01.00) …" with no known city list) is only a fallback
        // when the VTIMEZONE's rules match nothing better.
        let mut tentative = None;
        if let Ok(CalTz::Tz(tz)) = CalTz::from_str(trimmed) {
            if tz.name().starts_with("Etc/") && !trimmed.to_ascii_lowercase().starts_with("etc/") && vtz.is_some() {
                tentative = Some(tz);
            } else {
                return Resolved::Iana(tz, None);
            }
        }
        if tentative.is_none()
            && let Some(c) = vtz
            && let Some((_, CalTz::Tz(tz))) = c.timezone()
        {
            return Resolved::Iana(tz, None);
        }
        if let Some(c) = vtz
            && let Some(custom) = CustomZone::from_component(self.ical, c, year - 1, year + 2)
        {
            if let Some(tz) = custom.matching_zone(year..=year + 1) {
                let note = (Some(tz) != tentative).then(|| {
                    format!(
                        "time zone \"{tzid}\" was matched to {} by its offsets and daylight-saving rules",
                        tz.name()
                    )
                });
                return Resolved::Iana(tz, note);
            }
            if let Some(tz) = tentative {
                return Resolved::Iana(tz, None);
            }
            return Resolved::Custom(Arc::new(custom));
        }
        match tentative {
            Some(tz) => Resolved::Iana(tz, None),
            None => Resolved::Unknown,
        }
    }

    /// Reads a date or date-time property.
    fn stamp(&mut self, entry: &ICalendarEntry, what: &str) -> Result<Stamp, String> {
        let value = entry.values.first().and_then(|v| v.as_partial_date_time());
        self.stamp_of(value, entry.tz_id(), is_date_value(entry), what)
    }

    fn stamp_of(
        &mut self,
        value: Option<&PartialDateTime>,
        tzid: Option<&str>,
        date_value: bool,
        what: &str,
    ) -> Result<Stamp, String> {
        let pdt = value.ok_or_else(|| format!("{what} is not a valid date or time"))?;
        let dt = pdt
            .to_date_time()
            .ok_or_else(|| format!("{what} is not a valid date or time"))?;
        let year = dt.date_time.year();
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return Err(format!(
                "{what} is in the year {year}; Exchange stores dates from {MIN_YEAR} to {MAX_YEAR}"
            ));
        }
        if date_value || !pdt.has_time() {
            return Ok(Stamp {
                local: dt.date_time.date().and_time(chrono::NaiveTime::MIN),
                zone: ZoneRef::Floating,
                date_only: true,
            });
        }
        if let Some(offset) = dt.offset {
            return Ok(Stamp {
                local: dt.date_time - Duration::seconds(offset.local_minus_utc() as i64),
                zone: ZoneRef::Utc,
                date_only: false,
            });
        }
        let zone = match tzid {
            Some(t) => self.zone(t, year),
            None => ZoneRef::Floating,
        };
        Ok(Stamp {
            local: dt.date_time,
            zone,
            date_only: false,
        })
    }

    fn vevent(&mut self, comp: &ICalendarComponent) -> Result<Parsed, String> {
        let start_entry = comp
            .property(&ICalendarProperty::Dtstart)
            .ok_or("it has no start (DTSTART)")?;
        let mut start = self.stamp(start_entry, "the start (DTSTART)")?;
        let all_day_flag = other_text(comp, "X-MICROSOFT-CDO-ALLDAYEVENT")
            .is_some_and(|v| v.eq_ignore_ascii_case("TRUE"))
            || other_text(comp, "X-MICROSOFT-MSNCALENDAR-ALLDAYEVENT").is_some_and(|v| v.eq_ignore_ascii_case("TRUE"));

        let mut notes = Vec::new();
        let mut end = match comp.property(&ICalendarProperty::Dtend) {
            Some(e) => self.stamp(e, "the end (DTEND)")?,
            None => match comp
                .property(&ICalendarProperty::Duration)
                .and_then(|e| e.values.first())
            {
                Some(ICalendarValue::Duration(d)) => {
                    let d = duration(d);
                    if d < Duration::zero() {
                        return Err("its DURATION is negative".into());
                    }
                    start.with_local(start.local.checked_add_signed(d).ok_or("its DURATION is too long")?)
                }
                Some(_) => return Err("its DURATION cannot be read".into()),
                None if start.date_only => start.with_local(start.local + Duration::days(1)),
                None => start,
            },
        };
        // Outlook's all-day flag on midnight-to-midnight times.
        if all_day_flag
            && !start.date_only
            && start.local.time() == chrono::NaiveTime::MIN
            && end.local.time() == chrono::NaiveTime::MIN
        {
            start = Stamp {
                zone: ZoneRef::Floating,
                date_only: true,
                ..start
            };
            end = Stamp {
                zone: ZoneRef::Floating,
                date_only: true,
                ..end
            };
        }
        if start.date_only && !end.date_only {
            // A date-time end for an all-day event: the day it falls in.
            let mut d = end.local.date();
            if end.local.time() != chrono::NaiveTime::MIN {
                d = d.succ_opt().unwrap_or(d);
            }
            end = Stamp {
                local: d.and_time(chrono::NaiveTime::MIN),
                zone: ZoneRef::Floating,
                date_only: true,
            };
        } else if !start.date_only && end.date_only {
            end = Stamp {
                local: end.local,
                zone: start.zone,
                date_only: false,
            };
        }
        let (su, eu) = (start.utc(&self.zones), end.utc(&self.zones));
        if eu < su {
            return Err(format!(
                "it ends ({}) before it starts ({})",
                fmt_stamp(&end),
                fmt_stamp(&start)
            ));
        }
        if start.date_only && end.local <= start.local {
            notes.push("the all-day event ended on the day it starts; it was made one day long".to_string());
            end = start.with_local(start.local + Duration::days(1));
        }

        let mut rules = Vec::new();
        let mut bad_rule = None;
        for e in comp.properties(&ICalendarProperty::Rrule) {
            match e.values.first() {
                Some(ICalendarValue::RecurrenceRule(r)) => rules.push((**r).clone()),
                Some(ICalendarValue::Text(t)) => bad_rule = Some(t.clone()),
                _ => bad_rule = Some(String::new()),
            }
        }
        let exrules = comp
            .properties(&ICalendarProperty::Exrule)
            .filter_map(|e| match e.values.first() {
                Some(ICalendarValue::RecurrenceRule(r)) => Some((**r).clone()),
                _ => None,
            })
            .collect();
        let mut rdates = Vec::new();
        for e in comp.properties(&ICalendarProperty::Rdate) {
            let tzid = e.tz_id().map(str::to_string);
            let date_value = is_date_value(e);
            for v in &e.values {
                let (s, en) = match v {
                    ICalendarValue::PartialDateTime(p) => (Some(&**p), None),
                    ICalendarValue::Period(ICalendarPeriod::Range { start, end }) => (Some(start), Some(end)),
                    ICalendarValue::Period(ICalendarPeriod::Duration { start, duration: d }) => {
                        match self.stamp_of(Some(start), tzid.as_deref(), date_value, "an extra date (RDATE)") {
                            Ok(s) => {
                                let e = s.local.checked_add_signed(duration(d)).map(|e| s.with_local(e));
                                rdates.push((s, e));
                            }
                            Err(_) => notes.push("an extra date (RDATE) that cannot be read was left out".to_string()),
                        }
                        continue;
                    }
                    _ => continue,
                };
                let Ok(s) = self.stamp_of(s, tzid.as_deref(), date_value, "an extra date (RDATE)") else {
                    notes.push("an extra date (RDATE) that cannot be read was left out".to_string());
                    continue;
                };
                let en = en.and_then(|en| self.stamp_of(Some(en), tzid.as_deref(), date_value, "RDATE").ok());
                rdates.push((s, en));
            }
        }
        let mut exdates = Vec::new();
        for e in comp.properties(&ICalendarProperty::Exdate) {
            let tzid = e.tz_id().map(str::to_string);
            let date_value = is_date_value(e);
            for v in &e.values {
                if let ICalendarValue::PartialDateTime(p) = v {
                    match self.stamp_of(Some(p), tzid.as_deref(), date_value, "an excluded date (EXDATE)") {
                        Ok(s) => exdates.push(s),
                        Err(_) => notes.push("an excluded date (EXDATE) that cannot be read was left out".to_string()),
                    }
                }
            }
        }
        let mut rid = None;
        if let Some(e) = comp.property(&ICalendarProperty::RecurrenceId) {
            rid = Some(self.stamp(e, "the occurrence it changes (RECURRENCE-ID)")?);
            if e.parameter(&ICalendarParameterName::Range).is_some() {
                notes.push(
                    "a change to this and all later occurrences (RANGE=THISANDFUTURE) was applied to one occurrence only"
                        .to_string(),
                );
            }
        }

        let status = match comp.property(&ICalendarProperty::Status).and_then(|e| e.values.first()) {
            Some(ICalendarValue::Status(ICalendarStatus::Cancelled)) => EventStatus::Cancelled,
            Some(ICalendarValue::Status(ICalendarStatus::Tentative)) => EventStatus::Tentative,
            _ => EventStatus::Confirmed,
        };
        let zones = &self.zones;
        let event = Event {
            summary: text_of(comp, ICalendarProperty::Summary),
            description: description(comp),
            location: text_of(comp, ICalendarProperty::Location),
            start: start.event_time(zones),
            end: end.event_time(zones),
            is_all_day: start.date_only,
            default_zone: self.default,
            recurrence: None,
            cancelled_occurrences: Vec::new(),
            overrides: Vec::new(),
            organizer: comp.property(&ICalendarProperty::Organizer).and_then(person),
            attendees: comp
                .properties(&ICalendarProperty::Attendee)
                .filter_map(attendee)
                .collect(),
            reminder_minutes_before_start: reminder(self.ical, comp, &start, &end, zones),
            show_as: show_as(comp, status),
            sensitivity: match comp.property(&ICalendarProperty::Class).and_then(|e| e.values.first()) {
                Some(ICalendarValue::Classification(ICalendarClassification::Private)) => Sensitivity::Private,
                Some(ICalendarValue::Classification(ICalendarClassification::Confidential)) => {
                    Sensitivity::Confidential
                }
                _ => Sensitivity::Normal,
            },
            categories: categories(comp),
            priority: priority(comp),
            color: text_of(comp, ICalendarProperty::Color),
            url: comp
                .property(&ICalendarProperty::Url)
                .and_then(|e| e.values.first())
                .and_then(value_text)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            attachments: comp
                .properties(&ICalendarProperty::Attach)
                .filter_map(attachment)
                .collect(),
            sequence: comp
                .property(&ICalendarProperty::Sequence)
                .and_then(|e| e.values.first()?.as_integer()),
            last_modified: comp
                .property(&ICalendarProperty::LastModified)
                .and_then(|e| e.values.first()?.as_partial_date_time()?.to_date_time())
                .map(|d| {
                    let off = d.offset.map(|o| o.local_minus_utc()).unwrap_or(0);
                    (d.date_time - Duration::seconds(off as i64)).and_utc()
                }),
            status,
            source_rule: comp
                .property(&ICalendarProperty::Rrule)
                .and_then(|e| e.values.first())
                .map(|v| match v {
                    ICalendarValue::RecurrenceRule(r) => r.to_string(),
                    ICalendarValue::Text(t) => t.clone(),
                    _ => String::new(),
                }),
            notes,
        };
        let cancelled = rid.is_some() && status == EventStatus::Cancelled;
        Ok(Parsed {
            event,
            start,
            end,
            rules,
            bad_rule,
            exrules,
            rdates,
            exdates,
            rid,
            cancelled,
        })
    }
}

fn is_date_value(entry: &ICalendarEntry) -> bool {
    entry
        .parameters(&ICalendarParameterName::Value)
        .any(|v| matches!(v, ICalendarParameterValue::Value(ICalendarValueType::Date)))
}

fn duration(d: &ICalendarDuration) -> Duration {
    let secs = (d.weeks as i64 * 7 + d.days as i64) * 86_400
        + d.hours as i64 * 3600
        + d.minutes as i64 * 60
        + d.seconds as i64;
    let secs = secs.min(400 * 366 * 86_400);
    Duration::seconds(if d.neg { -secs } else { secs })
}

fn fmt_stamp(s: &Stamp) -> String {
    if s.date_only {
        s.local.format("%Y-%m-%d").to_string()
    } else if s.zone == ZoneRef::Utc {
        s.local.format("%Y-%m-%d %H:%M UTC").to_string()
    } else {
        s.local.format("%Y-%m-%d %H:%M").to_string()
    }
}

fn value_text(v: &ICalendarValue) -> Option<String> {
    match v {
        ICalendarValue::Text(t) => Some(t.clone()),
        ICalendarValue::Uri(Uri::Location(l)) => Some(l.clone()),
        _ => None,
    }
}

fn text_of(comp: &ICalendarComponent, p: ICalendarProperty) -> Option<String> {
    let e = comp.property(&p)?;
    let parts: Vec<String> = e.values.iter().filter_map(value_text).collect();
    let s = parts.join(",");
    (!s.trim().is_empty()).then_some(s)
}

/// The first value of an X- property.
fn other_text<'c>(comp: &'c ICalendarComponent, name: &str) -> Option<&'c str> {
    comp.entries.iter().find_map(|e| match &e.name {
        ICalendarProperty::Other(n) if n.eq_ignore_ascii_case(name) => e.values.first()?.as_text(),
        _ => None,
    })
}

fn description(comp: &ICalendarComponent) -> Option<Description> {
    let text = text_of(comp, ICalendarProperty::Description);
    let html = comp
        .entries
        .iter()
        .filter(|e| matches!(&e.name, ICalendarProperty::Other(n) if n.eq_ignore_ascii_case("X-ALT-DESC")))
        .find(|e| {
            e.parameters(&ICalendarParameterName::Fmttype)
                .any(|v| v.as_text().is_some_and(|t| t.eq_ignore_ascii_case("text/html")))
        })
        .and_then(|e| e.values.first().and_then(value_text))
        .filter(|h| !h.trim().is_empty());
    match (text, html) {
        (None, None) => None,
        (text, html) => Some(Description {
            text: text.unwrap_or_default(),
            html,
        }),
    }
}

fn address_of(v: &ICalendarValue) -> Option<String> {
    let raw = value_text(v)?;
    let raw = raw.trim();
    let email = match raw.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("mailto:") => &raw[7..],
        _ => raw,
    };
    (!email.is_empty()).then(|| email.to_string())
}

fn cn(entry: &ICalendarEntry) -> Option<String> {
    entry
        .parameter(&ICalendarParameterName::Cn)
        .and_then(|v| v.as_text())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn person(entry: &ICalendarEntry) -> Option<Person> {
    Some(Person {
        email: address_of(entry.values.first()?)?,
        name: cn(entry),
    })
}

fn attendee(entry: &ICalendarEntry) -> Option<Attendee> {
    let email = address_of(entry.values.first()?)?;
    let resource = entry.parameters(&ICalendarParameterName::Cutype).any(|v| {
        matches!(
            v,
            ICalendarParameterValue::Cutype(ICalendarUserTypes::Resource | ICalendarUserTypes::Room)
        )
    });
    let role = if resource {
        AttendeeRole::Resource
    } else {
        match entry.parameter(&ICalendarParameterName::Role) {
            Some(ICalendarParameterValue::Role(
                ICalendarParticipationRole::OptParticipant | ICalendarParticipationRole::NonParticipant,
            )) => AttendeeRole::Optional,
            _ => AttendeeRole::Required,
        }
    };
    let response = match entry.parameter(&ICalendarParameterName::Partstat) {
        Some(ICalendarParameterValue::Partstat(p)) => match p {
            ICalendarParticipationStatus::Accepted => Response::Accepted,
            ICalendarParticipationStatus::Declined => Response::Declined,
            ICalendarParticipationStatus::Tentative => Response::Tentative,
            ICalendarParticipationStatus::Delegated => Response::Delegated,
            _ => Response::None,
        },
        _ => Response::None,
    };
    Some(Attendee {
        email,
        name: cn(entry),
        role,
        response,
    })
}

/// The first display or audio alarm, as minutes before the start.
fn reminder(ical: &ICalendar, comp: &ICalendarComponent, start: &Stamp, end: &Stamp, zones: &Zones) -> Option<i64> {
    for &id in &comp.component_ids {
        let Some(alarm) = ical.components.get(id as usize) else {
            continue;
        };
        if alarm.component_type != ICalendarComponentType::VAlarm {
            continue;
        }
        match alarm
            .property(&ICalendarProperty::Action)
            .and_then(|e| e.values.first())
        {
            Some(ICalendarValue::Action(ICalendarAction::Display | ICalendarAction::Audio)) | None => {}
            _ => continue,
        }
        let Some(trigger) = alarm.property(&ICalendarProperty::Trigger) else {
            continue;
        };
        match trigger.values.first() {
            Some(ICalendarValue::Duration(d)) => {
                let related_end = matches!(
                    trigger.parameter(&ICalendarParameterName::Related),
                    Some(ICalendarParameterValue::Related(ICalendarRelated::End))
                );
                let offset = duration(d).num_seconds();
                let from_start = if related_end {
                    offset + (end.utc(zones) - start.utc(zones)).num_seconds()
                } else {
                    offset
                };
                return Some(-from_start.div_euclid(60));
            }
            Some(ICalendarValue::PartialDateTime(p)) => {
                let d = p.to_date_time()?;
                // Apple's "no alarm" placeholder (1976-04-01).
                if d.date_time.year() < 1980 {
                    continue;
                }
                let off = d.offset.map(|o| o.local_minus_utc()).unwrap_or(0);
                let at = (d.date_time - Duration::seconds(off as i64)).and_utc();
                return Some((start.utc(zones) - at).num_minutes());
            }
            _ => continue,
        }
    }
    None
}

fn show_as(comp: &ICalendarComponent, status: EventStatus) -> ShowAs {
    let cdo =
        other_text(comp, "X-MICROSOFT-CDO-BUSYSTATUS").or_else(|| other_text(comp, "X-MICROSOFT-CDO-INTENDEDSTATUS"));
    if let Some(v) = cdo {
        match v.trim().to_ascii_uppercase().as_str() {
            "FREE" => return ShowAs::Free,
            "TENTATIVE" => return ShowAs::Tentative,
            "BUSY" => return ShowAs::Busy,
            "OOF" => return ShowAs::Oof,
            "WORKINGELSEWHERE" => return ShowAs::WorkingElsewhere,
            _ => {}
        }
    }
    match comp.property(&ICalendarProperty::Transp).and_then(|e| e.values.first()) {
        Some(ICalendarValue::Transparency(ICalendarTransparency::Transparent)) => ShowAs::Free,
        _ if status == EventStatus::Tentative => ShowAs::Tentative,
        _ => ShowAs::Busy,
    }
}

fn categories(comp: &ICalendarComponent) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in comp.properties(&ICalendarProperty::Categories) {
        for v in &e.values {
            if let Some(t) = value_text(v) {
                for c in t.split(',') {
                    let c = c.trim();
                    if !c.is_empty() && !out.iter().any(|x| x.eq_ignore_ascii_case(c)) {
                        out.push(c.to_string());
                    }
                }
            }
        }
    }
    out
}

fn priority(comp: &ICalendarComponent) -> Option<u8> {
    let p = comp
        .property(&ICalendarProperty::Priority)
        .and_then(|e| e.values.first()?.as_integer())
        .filter(|p| (1..=9).contains(p))
        .map(|p| p as u8);
    p.or_else(|| match other_text(comp, "X-MICROSOFT-CDO-IMPORTANCE").map(str::trim) {
        Some("0") => Some(9),
        Some("2") => Some(1),
        _ => None,
    })
}

fn attachment(entry: &ICalendarEntry) -> Option<Attachment> {
    let text_param = |names: &[&str]| {
        entry.params.iter().find_map(|p| match &p.name {
            ICalendarParameterName::Other(n) if names.iter().any(|x| n.eq_ignore_ascii_case(x)) => {
                p.value.as_text().map(str::to_string)
            }
            _ => None,
        })
    };
    let name = text_param(&["FILENAME", "X-FILENAME", "X-APPLE-FILENAME", "X-ORACLE-FILENAME"]);
    let media_type = entry
        .parameter(&ICalendarParameterName::Fmttype)
        .and_then(|v| v.as_text())
        .map(str::to_string);
    let binary = entry
        .parameters(&ICalendarParameterName::Value)
        .any(|v| matches!(v, ICalendarParameterValue::Value(ICalendarValueType::Binary)));
    let content = match entry.values.first()? {
        ICalendarValue::Binary(b) => AttachmentContent::Inline { bytes: b.clone() },
        // Base64 that decoded to UTF-8 is handed over as text.
        ICalendarValue::Text(t) if binary => AttachmentContent::Inline {
            bytes: t.clone().into_bytes(),
        },
        ICalendarValue::Uri(Uri::Data(d)) => AttachmentContent::Inline { bytes: d.data.clone() },
        v => AttachmentContent::Uri {
            uri: value_text(v)?.trim().to_string(),
        },
    };
    Some(Attachment {
        name,
        media_type,
        content,
    })
}

// ---------------------------------------------------------------------------
// Series: recurrence, exceptions, expansion
// ---------------------------------------------------------------------------

impl Parsed {
    /// The series' occurrences from the first: DTSTART (always one, as RFC
    /// 5545 has it), the rule's, the RDATEs; EXDATEs and EXRULEs removed.
    /// Each is `(start, end)` in the start's and end's own zones, in order.
    /// Stops after `limit` occurrences or past `until` (an instant); the
    /// flag says whether the series went on.
    fn instances(
        &self,
        zones: &Zones,
        until: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<(Vec<(Stamp, Stamp)>, bool), String> {
        let until_local = until.map(|u| Stamp::rezone(u, &self.start, zones).local);
        let mut starts: Vec<NaiveDateTime> = vec![self.start.local];
        let mut more = false;
        if let Some(rule) = self.rules.first() {
            let rule_until = rule_until_local(rule, &self.start, zones);
            let cut = match (rule_until, until_local) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let got = expand_rule(rule, self.start.local, cut, limit.saturating_add(1))?;
            let count_left = rule.count.is_none_or(|c| (got.len() as u64) < c as u64);
            let until_cut = until_local.is_some() && rule_until.is_none_or(|r| Some(r) > until_local);
            more = got.len() > limit || (until_cut && count_left);
            starts.extend(got);
        }
        for (s, _) in &self.rdates {
            starts.push(self.start.align(s, zones).local);
        }
        starts.sort();
        starts.dedup();
        // EXDATE and EXRULE.
        let mut excluded: Vec<NaiveDateTime> = self.exdates.iter().map(|e| self.start.align(e, zones).local).collect();
        for r in &self.exrules {
            let cut = until_local.or_else(|| starts.last().copied());
            if let Ok(x) = expand_rule(r, self.start.local, cut, limit.saturating_add(1)) {
                excluded.extend(x);
            }
        }
        excluded.sort();
        starts.retain(|s| excluded.binary_search(s).is_err());
        if let Some(u) = until_local {
            if starts.iter().any(|s| *s > u) {
                more = true;
            }
            starts.retain(|s| *s <= u);
        }
        if starts.len() > limit {
            starts.truncate(limit);
            more = true;
        }
        let same_zone = self.start.zone == self.end.zone && self.start.date_only == self.end.date_only;
        let local_len = self.end.local - self.start.local;
        let exact_len = self.end.utc(zones) - self.start.utc(zones);
        let out = starts
            .into_iter()
            .map(|s| {
                let start = self.start.with_local(s);
                let rdate_end = self
                    .rdates
                    .iter()
                    .find(|(r, _)| self.start.align(r, zones).local == s)
                    .and_then(|(_, e)| e.map(|e| self.end.align(&e, zones)));
                let end = match rdate_end {
                    Some(e) => e,
                    None if same_zone => self.end.with_local(s + local_len),
                    None => Stamp::rezone(start.utc(zones) + exact_len, &self.end, zones),
                };
                (start, end)
            })
            .collect();
        Ok((out, more))
    }
}

/// A rule's UNTIL as wall-clock time in the start's zone.
fn rule_until_local(rule: &ICalendarRecurrenceRule, start: &Stamp, zones: &Zones) -> Option<NaiveDateTime> {
    let u = rule.until.as_ref()?;
    let d = u.to_date_time()?;
    if !u.has_time() {
        let day = d.date_time.date();
        return Some(if start.date_only {
            day.and_time(chrono::NaiveTime::MIN)
        } else {
            day.and_hms_opt(23, 59, 59)?
        });
    }
    match d.offset {
        Some(o) => {
            let utc = (d.date_time - Duration::seconds(o.local_minus_utc() as i64)).and_utc();
            Some(
                Stamp::rezone(
                    utc,
                    &Stamp {
                        date_only: false,
                        ..*start
                    },
                    zones,
                )
                .local,
            )
        }
        None => Some(d.date_time),
    }
}

/// Expands `rule` from `start` with calcard, in floating time so the
/// occurrences keep their wall-clock time whatever the zone does (the
/// caller places them in the zone). DTSTART itself is returned only when
/// the rule produces it. `until` (wall-clock) replaces the rule's UNTIL.
fn expand_rule(
    rule: &ICalendarRecurrenceRule,
    start: NaiveDateTime,
    until: Option<NaiveDateTime>,
    limit: usize,
) -> Result<Vec<NaiveDateTime>, String> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut rule = rule.clone();
    rule.until = until.map(|u| floating(u, true));
    if rule.interval == Some(0) {
        rule.interval = Some(1);
    }
    let ical = ICalendar {
        components: vec![
            ICalendarComponent {
                component_type: ICalendarComponentType::VCalendar,
                entries: Vec::new(),
                component_ids: vec![1],
            },
            ICalendarComponent {
                component_type: ICalendarComponentType::VEvent,
                entries: vec![
                    ICalendarEntry {
                        name: ICalendarProperty::Dtstart,
                        params: Vec::new(),
                        values: vec![ICalendarValue::PartialDateTime(Box::new(floating(start, true)))],
                    },
                    ICalendarEntry {
                        name: ICalendarProperty::Rrule,
                        params: Vec::new(),
                        values: vec![ICalendarValue::RecurrenceRule(Box::new(rule))],
                    },
                ],
                component_ids: Vec::new(),
            },
        ],
    };
    let expanded = ical.expand_dates(CalTz::Floating, limit);
    if let Some(e) = expanded.errors.first() {
        return Err(e.error.to_string());
    }
    Ok(expanded.events.iter().map(|e| e.start.naive_local()).collect())
}

fn floating(t: NaiveDateTime, with_time: bool) -> PartialDateTime {
    PartialDateTime {
        year: Some(t.year().clamp(0, u16::MAX as i32) as u16),
        month: Some(t.month() as u8),
        day: Some(t.day() as u8),
        hour: with_time.then_some(t.hour() as u8),
        minute: with_time.then_some(t.minute() as u8),
        second: with_time.then_some(t.second() as u8),
        ..Default::default()
    }
}

impl Series {
    /// The neutral event: the master with its recurrence, cancellations and
    /// overrides (or, with no master, the first override standing alone and
    /// the others as its overrides, to be written as single events).
    fn into_event(self) -> Result<Event, String> {
        let Series {
            master,
            overrides,
            zones,
            mut notes,
        } = self;
        let Some(master) = master else {
            // Occurrences of a series the source does not have (an
            // invitation to one occurrence): single events.
            let mut overrides = overrides.into_iter();
            let Some(first) = overrides.next() else {
                return Err("no event in the calendar object".into());
            };
            let mut event = first.event;
            event.notes.push(
                "only changed occurrences of this series are in the source; they are copied as single events".into(),
            );
            for o in overrides {
                let original = o.rid.map(|r| r.event_time(&zones)).unwrap_or(o.event.start);
                event.overrides.push(Override {
                    original_start: original,
                    event: o.event,
                });
            }
            event.notes.splice(0..0, notes);
            return Ok(event);
        };
        let mut event = master.event.clone();
        let mut cancelled: Vec<Stamp> = master.exdates.iter().map(|e| master.start.align(e, &zones)).collect();
        let mut kept_overrides = Vec::new();
        for o in overrides {
            let Some(rid) = o.rid else { continue };
            let original = master.start.align(&rid, &zones);
            if o.cancelled {
                cancelled.push(original);
                continue;
            }
            if cancelled.contains(&original) {
                notes.push(format!(
                    "a changed occurrence on {} is also excluded (EXDATE); the exclusion wins",
                    fmt_stamp(&original)
                ));
                continue;
            }
            kept_overrides.push((original, o));
        }
        cancelled.sort_by_key(|s| s.local);
        cancelled.dedup();

        if master.rules.is_empty() && master.bad_rule.is_none() && master.rdates.is_empty() {
            // A single event with overrides: they stand on their own.
            for (original, o) in kept_overrides {
                event.overrides.push(Override {
                    original_start: original.event_time(&zones),
                    event: o.event,
                });
            }
            event.notes.splice(0..0, notes);
            return Ok(event);
        }

        let overridden: Vec<NaiveDateTime> = kept_overrides.iter().map(|(s, _)| s.local).collect();
        event.recurrence = Some(match recurrence(&master, &zones) {
            Ok(r) => r,
            Err(why) => {
                let horizon = master.start.utc(&zones) + Duration::days(EXPAND_HORIZON_DAYS);
                let (mut occ, truncated) = master
                    .instances(&zones, Some(horizon), EXPAND_MAX_OCCURRENCES + overridden.len())
                    .unwrap_or_else(|_| (vec![(master.start, master.end)], false));
                occ.retain(|(s, _)| !overridden.contains(&s.local));
                let truncated = truncated || occ.len() > EXPAND_MAX_OCCURRENCES;
                occ.truncate(EXPAND_MAX_OCCURRENCES);
                let n = occ.len();
                let mut reason = format!("{why}; copied as {n} single event{}", if n == 1 { "" } else { "s" });
                if truncated {
                    let last = occ.last().map(|(s, _)| fmt_stamp(s)).unwrap_or_default();
                    let _ = write!(reason, " up to {last} (the series goes on)");
                }
                Recurrence::Expanded {
                    reason,
                    occurrences: occ
                        .into_iter()
                        .map(|(s, e)| Occurrence {
                            start: s.event_time(&zones),
                            end: e.event_time(&zones),
                        })
                        .collect(),
                    truncated,
                }
            }
        });
        // Cancelled occurrences matter to a pattern only; an expanded series
        // has them left out already.
        if matches!(event.recurrence, Some(Recurrence::Pattern { .. })) {
            event.cancelled_occurrences = cancelled.iter().map(|c| c.event_time(&zones)).collect();
        }
        for (original, o) in kept_overrides {
            event.overrides.push(Override {
                original_start: original.event_time(&zones),
                event: o.event,
            });
        }
        if master.rules.len() > 1 {
            notes.push(format!(
                "the event has {} repeat rules; only the first is kept",
                master.rules.len()
            ));
        }
        event.notes.splice(0..0, notes);
        Ok(event)
    }
}

/// Translates the master's rule into Graph's pattern, or says why it
/// cannot be.
fn recurrence(m: &Parsed, zones: &Zones) -> Result<Recurrence, String> {
    if let Some(bad) = &m.bad_rule {
        return Err(format!(
            "the repeat rule \"{bad}\" cannot be read; the first occurrence is kept"
        ));
    }
    let Some(rule) = m.rules.first() else {
        return Err("the series is given by extra dates (RDATE) only, which Outlook cannot express".into());
    };
    let text = rule.to_string();
    let cannot = |why: &str| Err(format!("the repeat rule {text} {why}, which Outlook cannot express"));
    if m.rules.len() > 1 {
        return cannot("comes with other repeat rules");
    }
    if !m.rdates.is_empty() {
        return cannot("comes with extra dates (RDATE)");
    }
    if !m.exrules.is_empty() {
        return cannot("comes with an exclusion rule (EXRULE)");
    }
    if let ZoneRef::Custom(i) = m.start.zone
        && zones.custom.get(i).is_some_and(|c| c.has_dst())
    {
        return Err(format!(
            "the time zone \"{}\" matches no known zone, so the series cannot keep its local time across daylight-saving changes",
            zones.custom.get(i).map(|c| c.tzid.as_str()).unwrap_or("")
        ));
    }
    if rule.rscale.is_some() || rule.skip.is_some() {
        return cannot("uses another calendar scale (RSCALE/SKIP)");
    }
    if rule.count.is_some() && rule.until.is_some() {
        return cannot("has both COUNT and UNTIL");
    }
    let start = m.start.local;
    let time_matches = |list: &[u8], v: u32| list.is_empty() || (list.len() == 1 && list[0] as u32 == v);
    if !time_matches(&rule.byhour, start.hour())
        || !time_matches(&rule.byminute, start.minute())
        || !time_matches(&rule.bysecond, start.second())
    {
        return cannot("repeats within a day (BYHOUR/BYMINUTE/BYSECOND)");
    }
    if !rule.byweekno.is_empty() {
        return cannot("picks weeks of the year (BYWEEKNO)");
    }
    if !rule.byyearday.is_empty() {
        return cannot("picks days of the year (BYYEARDAY)");
    }
    let interval = rule.interval.unwrap_or(1).max(1) as u32;
    let until = rule_until_local(rule, &m.start, zones);
    if let Some(u) = until
        && u < start
    {
        return Err(format!(
            "the repeat rule {text} ends (UNTIL) before the event starts; only the first occurrence is kept"
        ));
    }
    // The first occurrence must be the rule's own.
    let first =
        expand_rule(rule, start, until, 1).map_err(|e| format!("the repeat rule {text} cannot be used ({e})"))?;
    if first.first() != Some(&start) {
        return cannot("does not produce the event's own start (DTSTART), which still counts as an occurrence");
    }

    let wkst = rule
        .wkst
        .map(|w| DayOfWeek::from_weekday(w.into()))
        .unwrap_or(DayOfWeek::Monday);
    let plain_days = |days: &[ICalendarDay]| -> Option<Vec<DayOfWeek>> {
        let mut out: Vec<DayOfWeek> = Vec::new();
        for d in days {
            if d.ordwk.is_some() {
                return None;
            }
            let day = DayOfWeek::from_weekday(d.weekday.into());
            if !out.contains(&day) {
                out.push(day);
            }
        }
        Some(out)
    };
    let setpos = match rule.bysetpos.as_slice() {
        [] => None,
        [p] => match WeekIndex::from_position(*p as i64) {
            Some(i) => Some(i),
            None => return cannot("picks a position (BYSETPOS) other than first to fourth or last"),
        },
        _ => return cannot("picks several positions (BYSETPOS)"),
    };
    let mut pattern = RecurrencePattern {
        kind: PatternKind::Daily,
        interval,
        days_of_week: Vec::new(),
        day_of_month: None,
        month: None,
        index: None,
        first_day_of_week: wkst,
    };
    // One weekday with an ordinal, or several weekdays picked by BYSETPOS.
    let relative = |days: &[ICalendarDay]| -> Result<(WeekIndex, Vec<DayOfWeek>), &'static str> {
        match (days, setpos) {
            ([d], None) => match d.ordwk {
                Some(n) => match WeekIndex::from_position(n as i64) {
                    Some(i) => Ok((i, vec![DayOfWeek::from_weekday(d.weekday.into())])),
                    None => Err("picks a fifth (or other) weekday of the month"),
                },
                None => Err("repeats on every such weekday of the period"),
            },
            (days, Some(i)) => match plain_days(days) {
                Some(list) if !list.is_empty() => Ok((i, list)),
                _ => Err("mixes weekday positions with BYSETPOS"),
            },
            (_, None) => Err("picks several weekdays of the period"),
        }
    };
    // The weekdays by position of a monthly or yearly rule.
    let by_position = |pattern: &mut RecurrencePattern, kind: PatternKind| -> Result<(), &'static str> {
        if !rule.bymonthday.is_empty() {
            return Err("combines weekdays with days of the month");
        }
        let (index, days) = relative(&rule.byday)?;
        pattern.kind = kind;
        pattern.index = Some(index);
        pattern.days_of_week = days;
        Ok(())
    };
    // The day of the month of a monthly or yearly rule without weekdays:
    // its one BYMONTHDAY, else the start's.
    let day_of_month = || -> Result<i64, &'static str> {
        if setpos.is_some() {
            return Err("uses BYSETPOS without weekdays");
        }
        match rule.bymonthday.as_slice() {
            [] => Ok(start.day() as i64),
            [d] => Ok(*d as i64),
            _ => Err("repeats on several days of the month"),
        }
    };
    match rule.freq {
        ICalendarFrequency::Daily => {
            if !rule.bymonth.is_empty() || !rule.bymonthday.is_empty() || setpos.is_some() {
                return cannot("limits a daily rule by month or day of the month");
            }
            if !rule.byday.is_empty() {
                match plain_days(&rule.byday) {
                    Some(days) if interval == 1 => {
                        pattern.kind = PatternKind::Weekly;
                        pattern.days_of_week = days;
                    }
                    _ => return cannot("limits a daily rule with an interval to weekdays"),
                }
            }
        }
        ICalendarFrequency::Weekly => {
            if !rule.bymonth.is_empty() || !rule.bymonthday.is_empty() || setpos.is_some() {
                return cannot("limits a weekly rule by month, day of the month or position");
            }
            pattern.kind = PatternKind::Weekly;
            pattern.days_of_week = match plain_days(&rule.byday) {
                Some(days) if !days.is_empty() => days,
                Some(_) => vec![DayOfWeek::from_weekday(start.weekday())],
                None => return cannot("gives weekday positions in a weekly rule"),
            };
        }
        ICalendarFrequency::Monthly => {
            if !rule.bymonth.is_empty() {
                return cannot("limits a monthly rule to some months (BYMONTH)");
            }
            if rule.byday.is_empty() {
                let day = match day_of_month() {
                    Ok(day) => day,
                    Err(why) => return cannot(why),
                };
                if !(1..=28).contains(&day) {
                    return cannot(if day < 0 {
                        "counts the day from the end of the month"
                    } else {
                        "repeats on day 29, 30 or 31 (Outlook moves it to the last day of shorter months)"
                    });
                }
                pattern.kind = PatternKind::AbsoluteMonthly;
                pattern.day_of_month = Some(day as u32);
            } else {
                if let Err(why) = by_position(&mut pattern, PatternKind::RelativeMonthly) {
                    return cannot(why);
                }
            }
        }
        ICalendarFrequency::Yearly => {
            let month = match rule.bymonth.as_slice() {
                [] if rule.byday.is_empty() && rule.bymonthday.is_empty() => start.month(),
                [] => return cannot("picks days of the year without a month"),
                [m] if !m.is_leap() => m.month() as u32,
                [_] => return cannot("uses a leap month"),
                _ => return cannot("repeats in several months"),
            };
            if rule.byday.is_empty() {
                let day = match day_of_month() {
                    Ok(day) => day,
                    Err(why) => return cannot(why),
                };
                let shortest = match month {
                    2 => 28,
                    4 | 6 | 9 | 11 => 30,
                    _ => 31,
                };
                if !(1..=shortest).contains(&day) {
                    return cannot(if day < 0 {
                        "counts the day from the end of the month"
                    } else {
                        "repeats on 29 February (Outlook moves it to 28 February in other years)"
                    });
                }
                pattern.kind = PatternKind::AbsoluteYearly;
                pattern.day_of_month = Some(day as u32);
                pattern.month = Some(month);
            } else {
                if let Err(why) = by_position(&mut pattern, PatternKind::RelativeYearly) {
                    return cannot(why);
                }
                pattern.month = Some(month);
            }
        }
        _ => return cannot("repeats more than once a day (HOURLY, MINUTELY or SECONDLY)"),
    }

    let end = match (rule.count, until) {
        (Some(0), _) => return cannot("has COUNT=0"),
        (Some(c), _) if c > MAX_COUNT => RangeEnd::NoEnd,
        (Some(c), _) => RangeEnd::Numbered { count: c },
        (None, Some(u)) if u.year() > MAX_YEAR => RangeEnd::NoEnd,
        (None, Some(u)) => {
            // The last day an occurrence at the start's time can fall on.
            let mut d = u.date();
            if u.time() < start.time() {
                d = d.pred_opt().unwrap_or(d);
            }
            RangeEnd::EndDate {
                date: d.max(start.date()),
            }
        }
        (None, None) => RangeEnd::NoEnd,
    };
    let time_zone = match m.start.zone {
        _ if m.start.date_only => zones.default,
        ZoneRef::Utc | ZoneRef::Custom(_) => Tz::UTC,
        ZoneRef::Floating => zones.default,
        ZoneRef::Iana(tz) => tz,
    };
    let start_date = match m.start.zone {
        // A fixed custom zone is written in UTC.
        ZoneRef::Custom(_) => m.start.utc(zones).date_naive(),
        _ => start.date(),
    };
    Ok(Recurrence::Pattern {
        pattern,
        range: RecurrenceRange {
            end,
            start_date,
            time_zone,
        },
    })
}

// ---------------------------------------------------------------------------
// Serialization helpers
// ---------------------------------------------------------------------------

fn ser_tz<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

fn ser_display<T: std::fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn ser_local<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&t.format("%Y-%m-%dT%H:%M:%S"))
}

fn ser_utc<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&t.format("%Y-%m-%dT%H:%M:%SZ"))
}

fn ser_opt_utc<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser_utc(t, s),
        None => s.serialize_none(),
    }
}

fn ser_base64<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    use base64::Engine as _;
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
}

// ---------------------------------------------------------------------------
// What `cutover verify` compares
// ---------------------------------------------------------------------------

/// How far from a series' first occurrence `cutover verify` compares its
/// occurrences: two years, so a daily series compares some 730 of them and
/// every rule (yearly ones included) is seen repeating.
pub const VERIFY_WINDOW_DAYS: i64 = 731;

/// Names of the event fields `cutover verify` compares, as every side
/// words them ([`verify_words`]): the subject (as Exchange shows it), start
/// and end in UTC, whether it is all-day, the occurrences in UTC over
/// [`verify_window`] and the attendees' addresses.
pub const VERIFY_FIELDS: [&str; 6] = ["subject", "start", "end", "isAllDay", "occurrences", "attendees"];

/// An instant as `cutover verify` words it: `2025-03-03T08:00:00Z` (the
/// same width for every year Exchange stores, so words sort as instants do).
pub fn utc_word(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The window `[from, to)` whose occurrences `cutover verify` compares for
/// an event or series first starting at `first`.
pub fn verify_window(first: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (first, first + Duration::days(VERIFY_WINDOW_DAYS))
}

/// Addresses as `cutover verify` words a list of them: trimmed,
/// lower-cased, sorted, each once, comma-separated.
pub fn addresses_word<'a>(addresses: impl IntoIterator<Item = &'a str>) -> String {
    let mut list: Vec<String> = addresses
        .into_iter()
        .map(|a| a.trim().trim_start_matches("mailto:").to_lowercase())
        .filter(|a| !a.is_empty())
        .collect();
    list.sort();
    list.dedup();
    list.join(",")
}

/// Occurrences as `cutover verify` words them: `start/end` in UTC, in
/// order, each once, comma-separated.
pub fn occurrences_word(spans: &[(DateTime<Utc>, DateTime<Utc>)]) -> String {
    let mut spans = spans.to_vec();
    spans.sort();
    spans.dedup();
    spans
        .iter()
        .map(|(s, e)| format!("{}/{}", utc_word(*s), utc_word(*e)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The fields `cutover verify` compares ([`VERIFY_FIELDS`]), from what any
/// side holds of an event: the one place they are worded, so a source
/// object and a target's listing agree whenever the event does.
pub fn verify_words<'a>(
    subject: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    all_day: bool,
    occurrences: &[(DateTime<Utc>, DateTime<Utc>)],
    attendees: impl IntoIterator<Item = &'a str>,
) -> Vec<(String, String)> {
    let values = [
        subject.trim().to_owned(),
        utc_word(start),
        utc_word(end),
        all_day.to_string(),
        occurrences_word(occurrences),
        addresses_word(attendees),
    ];
    VERIFY_FIELDS
        .iter()
        .zip(values)
        .map(|(name, value)| ((*name).to_owned(), value))
        .collect()
}

/// What a target should hold of `object`, in [`verify_words`]: the subject
/// as Exchange shows it (a cancelled event's prefixed "Canceled: ", as
/// Outlook keeps one), start and end of the series' first occurrence in
/// UTC (dates at midnight in the event's default zone), the occurrences
/// [`occurrences_utc`] finds over [`verify_window`] from that start, and
/// the attendees (the organizer is not one).
pub fn verify_fields(object: &CalendarObject) -> Vec<(String, String)> {
    let e = &object.event;
    let start = e.start.to_utc(e.default_zone);
    let end = e.end.to_utc(e.default_zone);
    let (from, to) = verify_window(start);
    let summary = e.summary.as_deref().unwrap_or("");
    let subject = if e.status == EventStatus::Cancelled {
        format!("Canceled: {summary}")
    } else {
        summary.to_owned()
    };
    verify_words(
        &subject,
        start,
        end,
        e.is_all_day,
        &occurrences_utc(object, from, to),
        e.attendees.iter().map(|a| a.email.as_str()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> String {
        let path = format!("{}/tests/data/pim/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn by_summary<'a>(objects: &'a [CalendarObject], summary: &str) -> &'a CalendarObject {
        objects
            .iter()
            .find(|o| o.event.summary.as_deref() == Some(summary))
            .unwrap_or_else(|| panic!("no event {summary:?}"))
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn zoned(s: &str, zone: Tz) -> EventTime {
        EventTime::Zoned { local: local(s), zone }
    }

    fn pattern(e: &Event) -> (&RecurrencePattern, &RecurrenceRange) {
        match &e.recurrence {
            Some(Recurrence::Pattern { pattern, range }) => (pattern, range),
            other => panic!("not a pattern: {other:?}"),
        }
    }

    fn expanded(e: &Event) -> (&str, &[Occurrence], bool) {
        match &e.recurrence {
            Some(Recurrence::Expanded {
                reason,
                occurrences,
                truncated,
            }) => (reason, occurrences, *truncated),
            other => panic!("not expanded: {other:?}"),
        }
    }

    /// One VEVENT (UID `t`) in a VCALENDAR, lines separated by `\n`.
    fn one(lines: &str) -> (Vec<CalendarObject>, Vec<ItemProblem>) {
        let text = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:t\r\n{}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            lines.trim().replace('\n', "\r\n")
        );
        split_calendar_in(&text, "Europe/Berlin")
    }

    fn one_event(lines: &str) -> Event {
        let (objects, problems) = one(lines);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(objects.len(), 1);
        objects.into_iter().next().unwrap().event
    }

    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    #[test]
    fn google_series_with_exdate_moved_and_cancelled_occurrences() {
        let (objects, problems) = split_calendar_in(&corpus("google.ics"), "Europe/Berlin");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(objects.len(), 5);
        let sync = by_summary(&objects, "Team sync");
        assert_eq!(sync.uid, "7kukuqrfedlm2f0m7mp1q4ag2c@google.com");
        let e = &sync.event;
        assert_eq!(e.start, zoned("2025-03-04T10:00", BERLIN));
        assert_eq!(e.end, zoned("2025-03-04T10:30", BERLIN));
        assert!(!e.is_all_day);
        let (p, r) = pattern(e);
        assert_eq!(p.kind, PatternKind::Weekly);
        assert_eq!(p.interval, 1);
        assert_eq!(p.days_of_week, vec![DayOfWeek::Tuesday]);
        assert_eq!(p.first_day_of_week, DayOfWeek::Monday);
        // UNTIL 08:59:59Z on 4 November is 09:59:59 in Berlin, before the
        // 10:00 occurrence: the last is on 28 October.
        assert_eq!(
            r.end,
            RangeEnd::EndDate {
                date: date("2025-11-03")
            }
        );
        assert_eq!(r.start_date, date("2025-03-04"));
        assert_eq!(r.time_zone, BERLIN);
        // The EXDATE and the occurrence Google marks cancelled.
        assert_eq!(
            e.cancelled_occurrences,
            vec![zoned("2025-04-15T10:00", BERLIN), zoned("2025-05-06T10:00", BERLIN)]
        );
        assert_eq!(e.overrides.len(), 1);
        let moved = &e.overrides[0];
        assert_eq!(moved.original_start, zoned("2025-04-22T10:00", BERLIN));
        assert_eq!(moved.event.start, zoned("2025-04-22T11:00", BERLIN));
        assert_eq!(moved.event.summary.as_deref(), Some("Team sync (moved)"));
        assert!(moved.event.recurrence.is_none());
        // The fields that matter.
        assert_eq!(e.location.as_deref(), Some("Room 4.12, Building A"));
        let d = e.description.as_ref().unwrap();
        assert!(d.text.starts_with(
            "Weekly sync of the platform team.\n\nJoin with Google Meet: https://meet.google.com/abc-defg-hij"
        ));
        assert_eq!(d.html, None);
        assert_eq!(
            e.organizer,
            Some(Person {
                email: "alice@example.com".into(),
                name: Some("Alice Example".into())
            })
        );
        assert_eq!(e.attendees.len(), 2);
        assert_eq!(e.attendees[1].email, "bob@example.com");
        assert_eq!(e.attendees[1].response, Response::None);
        assert_eq!(e.reminder_minutes_before_start, Some(10));
        assert_eq!(e.show_as, ShowAs::Busy);
        assert_eq!(e.sequence, Some(2));
        assert_eq!(e.last_modified, Some(utc("2025-03-01T09:00:00Z")));
        assert_eq!(e.status, EventStatus::Confirmed);
        assert_eq!(
            e.source_rule.as_deref(),
            Some("FREQ=WEEKLY;UNTIL=20251104T085959Z;BYDAY=TU;WKST=MO")
        );
        assert!(e.notes.is_empty(), "{:?}", e.notes);
    }

    #[test]
    fn weekly_berlin_event_keeps_its_local_time_across_both_dst_switches() {
        let (objects, _) = split_calendar_in(&corpus("google.ics"), "Europe/Berlin");
        let sync = by_summary(&objects, "Team sync");
        let occ = occurrences_utc(sync, utc("2025-03-01T00:00:00Z"), utc("2025-11-30T00:00:00Z"));
        // 35 Tuesdays from 4 March to 28 October, less the EXDATE and the
        // cancelled occurrence.
        assert_eq!(occ.len(), 33);
        let at = |s: &str| (utc(s), utc(s) + Duration::minutes(30));
        // 10:00 CET is 09:00 UTC; after the late-March switch 10:00 CEST is
        // 08:00 UTC; after the late-October switch 09:00 UTC again.
        assert_eq!(occ[0], at("2025-03-04T09:00:00Z"));
        assert_eq!(occ[3], at("2025-03-25T09:00:00Z"));
        assert_eq!(occ[4], at("2025-04-01T08:00:00Z"));
        assert!(occ.contains(&at("2025-10-21T08:00:00Z")));
        assert_eq!(*occ.last().unwrap(), at("2025-10-28T09:00:00Z"));
        // The EXDATE is gone, the cancelled one too, the moved one moved.
        assert!(!occ.contains(&at("2025-04-15T08:00:00Z")));
        assert!(!occ.contains(&at("2025-05-06T08:00:00Z")));
        assert!(!occ.contains(&at("2025-04-22T08:00:00Z")));
        assert!(occ.contains(&at("2025-04-22T09:00:00Z")));
        // A window in the middle counts only what overlaps it.
        let june = occurrences_utc(sync, utc("2025-06-01T00:00:00Z"), utc("2025-07-01T00:00:00Z"));
        assert_eq!(june.len(), 4);
        assert_eq!(june[0], at("2025-06-03T08:00:00Z"));
    }

    #[test]
    fn raw_is_a_self_contained_object_that_splits_to_itself() {
        let (objects, _) = split_calendar_in(&corpus("google.ics"), "Europe/Berlin");
        let sync = by_summary(&objects, "Team sync");
        let raw = &sync.raw;
        assert!(raw.starts_with("BEGIN:VCALENDAR\r\n") && raw.ends_with("END:VCALENDAR\r\n"));
        assert!(!raw.replace("\r\n", "").contains('\n'), "bare LF in {raw}");
        assert_eq!(raw.matches("BEGIN:VEVENT").count(), 3, "master and both overrides");
        assert!(raw.contains("TZID:Europe/Berlin"));
        assert!(!raw.contains("Australia/Sydney"), "only the zones the object uses");
        assert!(!raw.contains("METHOD"), "CalDAV objects carry no METHOD");
        assert!(raw.contains("X-WR-TIMEZONE:Europe/Berlin\r\n"));
        assert!(raw.contains("PRODID:-//Google Inc//Google Calendar 70.9054//EN\r\n"));
        // Folded lines stay as the source folded them.
        assert!(
            raw.contains("ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Alice \r\n Example")
        );
        for o in &objects {
            let (again, problems) = split_calendar_in(&o.raw, "Europe/Berlin");
            assert!(problems.is_empty());
            assert_eq!(again.len(), 1);
            assert_eq!(again[0].raw, o.raw, "raw is stable");
            assert_eq!(again[0].event, o.event);
        }
        // Objects do not share components.
        let holiday = by_summary(&objects, "Summer holiday");
        assert_eq!(holiday.raw.matches("BEGIN:VEVENT").count(), 1);
        assert!(!holiday.raw.contains("VTIMEZONE"));
    }

    #[test]
    fn google_all_day_sydney_meeting_and_birthday() {
        let (objects, _) = split_calendar_in(&corpus("google.ics"), "Europe/Berlin");
        let holiday = &by_summary(&objects, "Summer holiday").event;
        assert!(holiday.is_all_day);
        assert_eq!(
            holiday.start,
            EventTime::Date {
                date: date("2025-07-14")
            }
        );
        assert_eq!(
            holiday.end,
            EventTime::Date {
                date: date("2025-07-19")
            }
        );
        assert_eq!(holiday.show_as, ShowAs::Free);
        assert_eq!(holiday.description, None, "an empty DESCRIPTION is no description");
        assert_eq!(holiday.location, None);

        let sydney = by_summary(&objects, "Sydney office hours");
        let (p, r) = pattern(&sydney.event);
        assert_eq!(
            (p.kind, p.days_of_week.as_slice()),
            (PatternKind::Weekly, &[DayOfWeek::Wednesday][..])
        );
        assert_eq!(r.end, RangeEnd::Numbered { count: 3 });
        assert_eq!(r.time_zone, chrono_tz::Australia::Sydney);
        // Sydney leaves daylight saving on 6 April 2025: 09:00 is 22:00 UTC
        // the day before, then 23:00.
        let occ = occurrences_utc(sydney, utc("2025-01-01T00:00:00Z"), utc("2026-01-01T00:00:00Z"));
        let starts: Vec<_> = occ.iter().map(|o| o.0).collect();
        assert_eq!(
            starts,
            vec![
                utc("2025-04-01T22:00:00Z"),
                utc("2025-04-08T23:00:00Z"),
                utc("2025-04-15T23:00:00Z")
            ]
        );

        let planning = &by_summary(&objects, "Quarterly planning").event;
        assert_eq!(
            planning.start,
            EventTime::Utc {
                at: utc("2025-06-05T13:00:00Z")
            }
        );
        let who: Vec<(&str, AttendeeRole, Response)> = planning
            .attendees
            .iter()
            .map(|a| (a.email.as_str(), a.role, a.response))
            .collect();
        assert_eq!(
            who,
            vec![
                ("alice@example.com", AttendeeRole::Required, Response::Accepted),
                ("bob@example.com", AttendeeRole::Required, Response::Declined),
                ("carol@example.org", AttendeeRole::Optional, Response::Tentative),
                ("dave@example.net", AttendeeRole::Required, Response::None),
                (
                    "c_188abc@resource.calendar.google.com",
                    AttendeeRole::Resource,
                    Response::Accepted
                ),
            ]
        );
        assert_eq!(planning.attendees[1].name.as_deref(), Some("Bob Jones"));
        assert_eq!(planning.attendees[2].name.as_deref(), Some("Carol White"));

        let birthday = &by_summary(&objects, "Mum's birthday").event;
        let (p, r) = pattern(birthday);
        assert_eq!(
            (p.kind, p.month, p.day_of_month),
            (PatternKind::AbsoluteYearly, Some(5), Some(17))
        );
        assert_eq!(r.end, RangeEnd::NoEnd);
        assert_eq!(r.time_zone, BERLIN, "all-day series are in the mailbox's zone");
        assert_eq!(birthday.sensitivity, Sensitivity::Private);
    }

    #[test]
    fn outlook_windows_names_and_a_custom_zone_matched_by_its_rules() {
        let (objects, problems) = split_calendar_in(&corpus("outlook.ics"), "Europe/Berlin");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(objects.len(), 5);

        let review = &by_summary(&objects, "Month-end review").event;
        assert_eq!(
            review.start,
            zoned("2025-01-31T15:00", BERLIN),
            "W. Europe Standard Time"
        );
        let (p, r) = pattern(review);
        assert_eq!(p.kind, PatternKind::RelativeMonthly);
        assert_eq!(p.index, Some(WeekIndex::Last));
        assert_eq!(p.days_of_week, vec![DayOfWeek::Friday]);
        assert_eq!(
            r.end,
            RangeEnd::EndDate {
                date: date("2025-12-26")
            }
        );
        let d = review.description.as_ref().unwrap();
        assert_eq!(d.text, "Monthly review of the numbers.\n");
        assert_eq!(
            d.html.as_deref(),
            Some("<html><body><p>Monthly review of the <b>numbers</b>.</p></body></html>")
        );
        assert_eq!(review.reminder_minutes_before_start, Some(15));
        assert_eq!(review.show_as, ShowAs::Busy);
        assert_eq!(review.priority, Some(5));

        let run = &by_summary(&objects, "Stadtlauf").event;
        let (p, _) = pattern(run);
        assert_eq!(p.kind, PatternKind::RelativeYearly);
        assert_eq!((p.index, p.month), (Some(WeekIndex::Third), Some(3)));
        assert_eq!(p.days_of_week, vec![DayOfWeek::Sunday]);
        assert_eq!(run.show_as, ShowAs::Oof);
        assert_eq!(run.sensitivity, Sensitivity::Private);
        assert_eq!(run.priority, Some(1));

        // "Customized Time Zone" with US Eastern rules is New York.
        let ny = by_summary(&objects, "New York sync");
        let e = &ny.event;
        assert_eq!(e.start, zoned("2025-10-23T09:00", chrono_tz::America::New_York));
        assert!(
            e.notes.iter().any(|n| n.contains("matched to America/New_York")),
            "{:?}",
            e.notes
        );
        assert_eq!(e.show_as, ShowAs::Tentative);
        assert_eq!(e.organizer.as_ref().unwrap().name.as_deref(), Some("Dan Smith"));
        assert_eq!(e.attendees[1].role, AttendeeRole::Resource);
        // The US leaves daylight saving on 2 November 2025.
        let occ = occurrences_utc(ny, utc("2025-10-01T00:00:00Z"), utc("2025-12-01T00:00:00Z"));
        let starts: Vec<_> = occ.iter().map(|o| o.0).collect();
        assert_eq!(
            starts,
            vec![
                utc("2025-10-23T13:00:00Z"),
                utc("2025-10-30T13:00:00Z"),
                utc("2025-11-06T14:00:00Z"),
                utc("2025-11-13T14:00:00Z")
            ]
        );

        let vacation = &by_summary(&objects, "Vacation").event;
        assert!(vacation.is_all_day);
        assert_eq!(vacation.show_as, ShowAs::Oof);
        assert_eq!(vacation.sensitivity, Sensitivity::Confidential);
        assert_eq!(
            vacation.attachments,
            vec![Attachment {
                name: Some("itinerary.txt".into()),
                media_type: None,
                content: AttachmentContent::Inline {
                    bytes: b"Flight LH 400 FRA->JFK\nHotel: The Grand\n".to_vec()
                },
            }]
        );
    }

    #[test]
    fn a_custom_zone_matching_nothing_is_converted_with_its_own_rules() {
        let (objects, _) = split_calendar_in(&corpus("outlook.ics"), "Europe/Berlin");
        let island = &by_summary(&objects, "Island time").event;
        // 09:00 at +02:30 (its summer offset in June) is 06:30 UTC.
        assert_eq!(
            island.start,
            EventTime::Utc {
                at: utc("2025-06-04T06:30:00Z")
            }
        );
        assert_eq!(
            island.end,
            EventTime::Utc {
                at: utc("2025-06-04T07:30:00Z")
            }
        );
        assert!(
            island.notes.iter().any(|n| n.contains("converted to UTC")),
            "{:?}",
            island.notes
        );
        let (reason, occ, truncated) = expanded(island);
        assert!(reason.contains("matches no known zone"), "{reason}");
        assert!(!truncated);
        assert_eq!(occ.len(), 20);
        // Its DST ends on the first Sunday of October: 09:00 at +01:30.
        assert_eq!(
            occ[17].start,
            EventTime::Utc {
                at: utc("2025-10-01T06:30:00Z")
            }
        );
        assert_eq!(
            occ[18].start,
            EventTime::Utc {
                at: utc("2025-10-08T07:30:00Z")
            }
        );
    }

    #[test]
    fn icloud_weekday_series_floating_event_and_alarms() {
        let (objects, problems) = split_calendar_in(&corpus("icloud.ics"), "Europe/Berlin");
        assert!(problems.is_empty(), "{problems:?}");
        let standup = by_summary(&objects, "Standup");
        let (p, r) = pattern(&standup.event);
        // DAILY;BYDAY=MO..FR is Outlook's "every weekday".
        assert_eq!(p.kind, PatternKind::Weekly);
        assert_eq!(
            p.days_of_week,
            vec![
                DayOfWeek::Monday,
                DayOfWeek::Tuesday,
                DayOfWeek::Wednesday,
                DayOfWeek::Thursday,
                DayOfWeek::Friday
            ]
        );
        assert_eq!(
            r.end,
            RangeEnd::EndDate {
                date: date("2025-03-21")
            }
        );
        // The audio alarm counts; Apple's ACTION:NONE placeholder does not.
        assert_eq!(standup.event.reminder_minutes_before_start, Some(5));
        assert_eq!(standup.event.location.as_deref(), Some("Office"));
        let occ = occurrences_utc(standup, utc("2025-03-01T00:00:00Z"), utc("2025-04-01T00:00:00Z"));
        assert_eq!(occ.len(), 15);
        assert_eq!(occ[4].0, utc("2025-03-07T14:30:00Z"), "09:30 EST");
        assert_eq!(occ[5].0, utc("2025-03-10T13:30:00Z"), "09:30 EDT");

        let dinner = &by_summary(&objects, "Dinner with Sam").event;
        assert_eq!(
            dinner.start,
            EventTime::Floating {
                local: local("2025-06-10T19:00")
            }
        );
        assert_eq!(dinner.default_zone, BERLIN);
        assert_eq!(dinner.start.to_utc(dinner.default_zone), utc("2025-06-10T17:00:00Z"));
        assert_eq!(dinner.color.as_deref(), Some("crimson"));
        assert_eq!(dinner.url.as_deref(), Some("https://example.com/reservations/4711"));

        let midsummer = &by_summary(&objects, "Midsummer").event;
        assert!(midsummer.is_all_day);
        assert_eq!(
            midsummer.reminder_minutes_before_start,
            Some(900),
            "the day before at 09:00"
        );
    }

    #[test]
    fn thunderbird_rules_outlook_cannot_express_are_expanded() {
        let (objects, problems) = split_calendar_in(&corpus("thunderbird.ics"), "Europe/Berlin");
        assert!(problems.is_empty(), "{problems:?}");
        let payroll = &by_summary(&objects, "Payroll run").event;
        let (reason, occ, truncated) = expanded(payroll);
        assert!(reason.contains("BYSETPOS=2,-1"), "{reason}");
        assert!(reason.contains("copied as 6 single events"), "{reason}");
        assert!(!truncated);
        let starts: Vec<EventTime> = occ.iter().map(|o| o.start).collect();
        assert_eq!(
            starts,
            [
                "2025-01-02",
                "2025-01-31",
                "2025-02-04",
                "2025-02-28",
                "2025-03-04",
                "2025-03-31"
            ]
            .iter()
            .map(|d| zoned(&format!("{d}T09:00"), BERLIN))
            .collect::<Vec<_>>()
        );
        assert_eq!(occ[0].end, zoned("2025-01-02T09:30", BERLIN));
        assert_eq!(payroll.categories, vec!["Business".to_string(), "Finance".to_string()]);
        assert_eq!(payroll.reminder_minutes_before_start, Some(60));
        let singles = payroll.single_events().unwrap();
        assert_eq!(singles.len(), 6);
        assert!(
            singles
                .iter()
                .all(|s| s.recurrence.is_none() && s.summary.as_deref() == Some("Payroll run"))
        );

        let pills = &by_summary(&objects, "Medication").event;
        let (reason, occ, _) = expanded(pills);
        assert!(reason.contains("BYHOUR"), "{reason}");
        let starts: Vec<NaiveDateTime> = occ.iter().map(|o| o.start.local()).collect();
        assert_eq!(
            starts,
            [
                "2025-03-01T08:00",
                "2025-03-01T20:00",
                "2025-03-02T08:00",
                "2025-03-02T20:00",
                "2025-03-03T08:00",
                "2025-03-03T20:00"
            ]
            .iter()
            .map(|s| local(s))
            .collect::<Vec<_>>()
        );
        assert_eq!((pills.sensitivity, pills.priority), (Sensitivity::Private, Some(1)));

        let backup = &by_summary(&objects, "Quarterly backup check").event;
        let (p, _) = pattern(backup);
        assert_eq!(
            (p.kind, p.interval, p.day_of_month),
            (PatternKind::AbsoluteMonthly, 3, Some(15))
        );
        assert_eq!(backup.show_as, ShowAs::Tentative);
        assert_eq!(backup.status, EventStatus::Tentative);
    }

    #[test]
    fn malformed_items_become_problems_and_the_rest_goes_on() {
        let (objects, problems) = split_calendar_in(&corpus("malformed.ics"), "Europe/Berlin");
        let reasons: HashMap<&str, &str> = problems
            .iter()
            .map(|p| (p.uid_or_position.as_str(), p.reason.as_str()))
            .collect();
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(reasons["no-start@example.com"].contains("no start (DTSTART)"));
        assert!(reasons["backwards@example.com"].contains("ends (2025-01-01 09:00 UTC) before it starts"));
        assert!(reasons["far-future@example.com"].contains("year 9999"));
        assert!(reasons["bad-date@example.com"].contains("not a valid date"));
        assert!(reasons["task-1@example.com"].contains("task (VTODO)"));
        assert!(reasons["truncated@example.com"].contains("no END:VEVENT"));

        let uids: Vec<&str> = objects.iter().map(|o| o.uid.as_str()).collect();
        assert_eq!(objects.len(), 6, "{uids:?}");
        let junk = by_summary(&objects, "Fine apart from two junk lines");
        assert_eq!(junk.event.notes, vec!["2 malformed lines were left out".to_string()]);
        assert!(!junk.raw.contains("no colon") && !junk.raw.contains("BAD NAME"));

        let no_uid = by_summary(&objects, "No UID");
        assert!(no_uid.uid.starts_with("cutover-") && no_uid.uid.len() == 40);
        assert!(no_uid.raw.contains(&format!("UID:{}\r\n", no_uid.uid)));
        // The same text gives the same UID.
        let (again, _) = split_calendar_in(&corpus("malformed.ics"), "Europe/Berlin");
        assert_eq!(by_summary(&again, "No UID").uid, no_uid.uid);

        let dup = objects.iter().find(|o| o.uid == "dup@example.com").unwrap();
        assert_eq!(dup.event.summary.as_deref(), Some("New copy"));
        assert_eq!(dup.raw.matches("BEGIN:VEVENT").count(), 1);
        assert!(dup.event.notes[0].contains("appears twice"));

        let rule = by_summary(&objects, "Unreadable rule");
        let (reason, occ, _) = expanded(&rule.event);
        assert!(reason.contains("cannot be read"), "{reason}");
        assert_eq!(occ.len(), 1);

        let forever = by_summary(&objects, "Every second forever");
        let (_, occ, truncated) = expanded(&forever.event);
        assert_eq!(occ.len(), EXPAND_MAX_OCCURRENCES);
        assert!(truncated);

        let mars = by_summary(&objects, "Zone nobody knows");
        assert_eq!(mars.event.start, zoned("2025-04-01T12:00", BERLIN));
        assert!(mars.event.notes[0].contains("\"Mars/Olympus_Mons\" is unknown"));
    }

    #[test]
    fn recurrence_rules_outlook_can_and_cannot_express() {
        use PatternKind::*;
        let kind = |start: &str, rule: &str| -> Result<(PatternKind, RecurrencePattern, RecurrenceRange), String> {
            let e = one_event(&format!(
                "DTSTART;TZID=Europe/Berlin:{start}\nDURATION:PT1H\nRRULE:{rule}"
            ));
            match e.recurrence {
                Some(Recurrence::Pattern { pattern, range }) => Ok((pattern.kind, pattern, range)),
                Some(Recurrence::Expanded { reason, .. }) => Err(reason),
                None => panic!("no recurrence for {rule}"),
            }
        };
        let ok = |start: &str, rule: &str| kind(start, rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
        let no = |start: &str, rule: &str, why: &str| {
            let reason = kind(start, rule)
                .err()
                .unwrap_or_else(|| panic!("{rule} should be expanded"));
            assert!(reason.contains(why), "{rule}: {reason}");
        };

        let (k, p, r) = ok("20250106T090000", "FREQ=DAILY;INTERVAL=2");
        assert_eq!((k, p.interval, r.end), (Daily, 2, RangeEnd::NoEnd));
        let (k, p, _) = ok("20250106T090000", "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR");
        assert_eq!((k, p.days_of_week.len()), (Weekly, 5));
        no("20250106T090000", "FREQ=DAILY;INTERVAL=2;BYDAY=MO", "weekdays");
        let (k, p, _) = ok("20250106T090000", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;WKST=SU");
        assert_eq!((k, p.interval, p.first_day_of_week), (Weekly, 2, DayOfWeek::Sunday));
        assert_eq!(p.days_of_week, vec![DayOfWeek::Monday, DayOfWeek::Thursday]);
        let (k, p, _) = ok("20250115T090000", "FREQ=MONTHLY;BYMONTHDAY=15");
        assert_eq!((k, p.day_of_month), (AbsoluteMonthly, Some(15)));
        no("20250131T090000", "FREQ=MONTHLY", "day 29, 30 or 31");
        no("20250131T090000", "FREQ=MONTHLY;BYMONTHDAY=-1", "end of the month");
        no("20250101T090000", "FREQ=MONTHLY;BYMONTHDAY=1,15", "several days");
        let (k, p, _) = ok("20250114T090000", "FREQ=MONTHLY;BYDAY=2TU");
        assert_eq!(
            (k, p.index, p.days_of_week.clone()),
            (RelativeMonthly, Some(WeekIndex::Second), vec![DayOfWeek::Tuesday])
        );
        let (k, p, _) = ok("20250131T090000", "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1");
        assert_eq!(
            (k, p.index, p.days_of_week.len()),
            (RelativeMonthly, Some(WeekIndex::Last), 5)
        );
        no("20250131T090000", "FREQ=MONTHLY;BYDAY=5FR", "fifth");
        no("20250106T090000", "FREQ=MONTHLY;BYDAY=MO", "every such weekday");
        no("20250106T090000", "FREQ=MONTHLY;BYDAY=1MO,3MO", "several weekdays");
        let (k, p, _) = ok("20250316T100000", "FREQ=YEARLY;BYMONTH=3;BYDAY=3SU");
        assert_eq!((k, p.month, p.index), (RelativeYearly, Some(3), Some(WeekIndex::Third)));
        let (k, p, _) = ok("20250630T100000", "FREQ=YEARLY;BYMONTH=6;BYMONTHDAY=30");
        assert_eq!((k, p.month, p.day_of_month), (AbsoluteYearly, Some(6), Some(30)));
        no("20240229T100000", "FREQ=YEARLY", "29 February");
        no("20250101T100000", "FREQ=YEARLY;BYMONTH=1,7", "several months");
        no("20250512T100000", "FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO", "BYWEEKNO");
        no("20250101T100000", "FREQ=HOURLY;COUNT=3", "more than once a day");
        no("20250106T090000", "FREQ=DAILY;BYHOUR=9,17", "BYHOUR");
        // A BYHOUR that only repeats the start's hour changes nothing.
        let (k, _, _) = ok("20250106T090000", "FREQ=DAILY;BYHOUR=9;BYMINUTE=0");
        assert_eq!(k, Daily);
        // DTSTART on a Tuesday, rule on Wednesdays.
        no("20250107T090000", "FREQ=WEEKLY;BYDAY=WE", "own start");
        no(
            "20250107T090000",
            "FREQ=WEEKLY;UNTIL=20240101T000000Z",
            "ends (UNTIL) before",
        );
        // Ranges.
        let (_, _, r) = ok("20250106T090000", "FREQ=WEEKLY;COUNT=10");
        assert_eq!(r.end, RangeEnd::Numbered { count: 10 });
        let (_, _, r) = ok("20250106T090000", "FREQ=WEEKLY;UNTIL=20250303");
        assert_eq!(
            r.end,
            RangeEnd::EndDate {
                date: date("2025-03-03")
            },
            "a date UNTIL includes its day"
        );
        let (_, _, r) = ok("20250106T090000", "FREQ=WEEKLY;COUNT=4294967295");
        assert_eq!(r.end, RangeEnd::NoEnd, "beyond Graph's Int32");
    }

    #[test]
    fn rdate_and_until_before_start_are_expanded() {
        let e = one_event("DTSTART:20250106T090000Z\nDURATION:PT1H\nRRULE:FREQ=WEEKLY;COUNT=2\nRDATE:20250110T150000Z");
        let (reason, occ, _) = expanded(&e);
        assert!(reason.contains("RDATE"), "{reason}");
        let starts: Vec<EventTime> = occ.iter().map(|o| o.start).collect();
        assert_eq!(
            starts,
            vec![
                EventTime::Utc {
                    at: utc("2025-01-06T09:00:00Z")
                },
                EventTime::Utc {
                    at: utc("2025-01-10T15:00:00Z")
                },
                EventTime::Utc {
                    at: utc("2025-01-13T09:00:00Z")
                },
            ]
        );
        assert_eq!(
            occ[1].end,
            EventTime::Utc {
                at: utc("2025-01-10T16:00:00Z")
            }
        );

        let e = one_event("DTSTART:20250106T090000Z\nRRULE:FREQ=WEEKLY;UNTIL=20240101T000000Z");
        let (_, occ, _) = expanded(&e);
        assert_eq!(occ.len(), 1, "DTSTART always counts");
    }

    #[test]
    fn exdates_of_an_expanded_series_are_left_out_and_overrides_stand_alone() {
        let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20250106T090000Z\r\nDURATION:PT1H\r\n\
                    RRULE:FREQ=DAILY;COUNT=5;BYHOUR=9,18\r\nEXDATE:20250106T180000Z\r\nEND:VEVENT\r\n\
                    BEGIN:VEVENT\r\nUID:x\r\nRECURRENCE-ID:20250107T090000Z\r\nDTSTART:20250107T100000Z\r\n\
                    DURATION:PT1H\r\nSUMMARY:later\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let (objects, problems) = split_calendar(text);
        assert!(problems.is_empty(), "{problems:?}");
        let e = &objects[0].event;
        let (_, occ, _) = expanded(e);
        let starts: Vec<DateTime<Utc>> = occ.iter().map(|o| o.start.to_utc(Tz::UTC)).collect();
        // 06 09:00, (06 18:00 excluded), (07 09:00 overridden), 07 18:00, 08 09:00.
        assert_eq!(
            starts,
            vec![
                utc("2025-01-06T09:00:00Z"),
                utc("2025-01-07T18:00:00Z"),
                utc("2025-01-08T09:00:00Z")
            ]
        );
        assert!(e.cancelled_occurrences.is_empty());
        let singles = e.single_events().unwrap();
        assert_eq!(singles.len(), 4);
        assert_eq!(singles[3].summary.as_deref(), Some("later"));
        let verify = occurrences_utc(&objects[0], utc("2025-01-01T00:00:00Z"), utc("2025-02-01T00:00:00Z"));
        let starts: Vec<_> = verify.iter().map(|o| o.0).collect();
        assert_eq!(
            starts,
            vec![
                utc("2025-01-06T09:00:00Z"),
                utc("2025-01-07T10:00:00Z"),
                utc("2025-01-07T18:00:00Z"),
                utc("2025-01-08T09:00:00Z")
            ]
        );
    }

    #[test]
    fn occurrences_of_a_series_the_source_lacks_are_single_events() {
        // CalDAV keeps an invitation to one occurrence as an override alone.
        let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:inv\r\nRECURRENCE-ID:20250107T090000Z\r\n\
                    DTSTART:20250107T100000Z\r\nDTEND:20250107T110000Z\r\nSUMMARY:one\r\nEND:VEVENT\r\n\
                    BEGIN:VEVENT\r\nUID:inv\r\nRECURRENCE-ID:20250114T090000Z\r\nDTSTART:20250114T090000Z\r\n\
                    DTEND:20250114T100000Z\r\nSUMMARY:two\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let (objects, problems) = split_calendar(text);
        assert!(problems.is_empty(), "{problems:?}");
        let e = &objects[0].event;
        assert!(e.recurrence.is_none());
        assert_eq!(e.summary.as_deref(), Some("one"));
        let singles = e.single_events().unwrap();
        assert_eq!(
            singles.iter().map(|s| s.summary.clone().unwrap()).collect::<Vec<_>>(),
            ["one", "two"]
        );
        let occ = occurrences_utc(&objects[0], utc("2025-01-01T00:00:00Z"), utc("2025-02-01T00:00:00Z"));
        assert_eq!(occ.len(), 2);
    }

    #[test]
    fn floating_times_and_dates_take_the_callers_zone() {
        let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:f\r\nDTSTART:20250610T190000\r\nEND:VEVENT\r\n\
                    BEGIN:VEVENT\r\nUID:d\r\nDTSTART;VALUE=DATE:20250610\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let (utc_objects, _) = split_calendar(text);
        assert_eq!(utc_objects[0].event.default_zone, Tz::UTC);
        let (tokyo, _) = split_calendar_in(text, "Asia/Tokyo");
        let f = &tokyo[0];
        assert_eq!(
            f.event.start,
            EventTime::Floating {
                local: local("2025-06-10T19:00")
            }
        );
        assert_eq!(f.event.end, f.event.start, "no DTEND and no DURATION: zero length");
        let occ = occurrences_utc(f, utc("2025-06-01T00:00:00Z"), utc("2025-07-01T00:00:00Z"));
        assert_eq!(occ, vec![(utc("2025-06-10T10:00:00Z"), utc("2025-06-10T10:00:00Z"))]);
        let d = &tokyo[1].event;
        assert!(d.is_all_day);
        assert_eq!(
            d.end,
            EventTime::Date {
                date: date("2025-06-11")
            },
            "a date alone lasts a day"
        );
        // A Windows name works as the caller's zone too; nonsense falls back.
        let (w, _) = split_calendar_in(text, "Tokyo Standard Time");
        assert_eq!(w[0].event.default_zone, chrono_tz::Asia::Tokyo);
        let (_, problems) = split_calendar_in(text, "Nowhere/Special");
        assert!(problems[0].reason.contains("\"Nowhere/Special\" is unknown"));
    }

    #[test]
    fn all_day_flags_and_odd_ends() {
        // Outlook's all-day flag on midnight times.
        let e = one_event(
            "DTSTART;TZID=Europe/Berlin:20250804T000000\nDTEND;TZID=Europe/Berlin:20250806T000000\nX-MICROSOFT-CDO-ALLDAYEVENT:TRUE",
        );
        assert!(e.is_all_day);
        assert_eq!(
            (e.start, e.end),
            (
                EventTime::Date {
                    date: date("2025-08-04")
                },
                EventTime::Date {
                    date: date("2025-08-06")
                }
            )
        );
        // An all-day event ending on its first day lasts that day.
        let e = one_event("DTSTART;VALUE=DATE:20250804\nDTEND;VALUE=DATE:20250804");
        assert_eq!(
            e.end,
            EventTime::Date {
                date: date("2025-08-05")
            }
        );
        assert!(e.notes[0].contains("one day long"));
        // RELATED=END alarms count from the start.
        let e = one_event(
            "DTSTART:20250804T100000Z\nDTEND:20250804T110000Z\nBEGIN:VALARM\nACTION:DISPLAY\nTRIGGER;RELATED=END:-PT90M\nEND:VALARM",
        );
        assert_eq!(e.reminder_minutes_before_start, Some(30));
    }

    #[test]
    fn hostile_inputs_give_problems_and_never_panic() {
        // Truncated anywhere.
        let text = corpus("google.ics");
        let mut cut = 0;
        while cut < text.len() {
            if text.is_char_boundary(cut) {
                let (objects, _) = split_calendar_in(&text[..cut], "Europe/Berlin");
                for o in &objects {
                    let _ = occurrences_utc(o, utc("2025-01-01T00:00:00Z"), utc("2026-01-01T00:00:00Z"));
                }
            }
            cut += 97;
        }
        // Binary garbage.
        let mut rng = fastrand::Rng::with_seed(7);
        let bytes: Vec<u8> = (0..65_536).map(|_| rng.u8(..)).collect();
        let garbage = String::from_utf8_lossy(&bytes);
        let (objects, problems) = split_calendar(&garbage);
        assert!(objects.is_empty());
        assert!(problems[0].reason.contains("not iCalendar"), "{problems:?}");
        // Garbage between valid lines.
        let mut mixed = String::from("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:m\r\nDTSTART:20250101T000000Z\r\n");
        mixed.push_str(&garbage[..4000]);
        mixed.push_str("\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n");
        let _ = split_calendar(&mixed);
        // 10,000 nested BEGINs, closed and unclosed.
        let mut nested = String::from("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:n\r\nDTSTART:20250101T000000Z\r\n");
        nested.push_str(&"BEGIN:VEVENT\r\n".repeat(10_000));
        let (objects, problems) = split_calendar(&nested);
        assert!(objects.is_empty());
        assert_eq!(problems.len(), 1);
        nested.push_str(&"END:VEVENT\r\n".repeat(10_001));
        nested.push_str("END:VCALENDAR\r\n");
        let (objects, problems) = split_calendar(&nested);
        assert!(objects.is_empty());
        assert!(problems[0].reason.contains("nested more than"), "{problems:?}");
        // Absurd dates and rules.
        for lines in [
            "DTSTART:00000101T000000Z",
            "DTSTART;VALUE=DATE:16000101",
            "DTSTART:20250101T000000Z\nRRULE:FREQ=DAILY;UNTIL=99991231T000000Z",
            "DTSTART:20250101T000000Z\nRRULE:FREQ=YEARLY;INTERVAL=65535",
            "DTSTART:20250101T000000Z\nRRULE:FREQ=MONTHLY;BYSETPOS=366;BYDAY=MO",
            "DTSTART:20250101T000000Z\nRRULE:FREQ=DAILY;INTERVAL=0;COUNT=3",
            "DTSTART:20250101T000000Z\nRRULE:FREQ=MINUTELY;COUNT=4294967295;BYSECOND=0,1,2,3,4,5",
            "DTSTART:20250101T000000Z\nDURATION:P99999999W",
            "DTSTART:20250101T000000Z\nDTEND:20250101T000000Z\nEXDATE:99999999T999999Z",
            "DTSTART;TZID=\"\":20250101T000000",
            "DTSTART:45001231T230000Z\nDTEND:45011231T230000Z",
        ] {
            let (objects, _) = one(lines);
            for o in &objects {
                let _ = occurrences_utc(o, utc("2025-01-01T00:00:00Z"), utc("2026-01-01T00:00:00Z"));
                let _ = serde_json::to_string(&o.event);
            }
        }
        let started = std::time::Instant::now();
        let (objects, _) = one("DTSTART:20250101T000000Z\nRRULE:FREQ=SECONDLY;COUNT=4294967295");
        let occ = occurrences_utc(&objects[0], utc("2025-01-01T00:00:00Z"), utc("2030-01-01T00:00:00Z"));
        assert_eq!(occ.len(), VERIFY_MAX_OCCURRENCES);
        assert!(started.elapsed().as_secs() < 30);
        // A very long line.
        let long = format!("DTSTART:20250101T000000Z\nDESCRIPTION:{}", "x".repeat(1 << 20));
        let e = one_event(&long);
        assert_eq!(e.description.unwrap().text.len(), 1 << 20);
    }

    #[test]
    fn windows_names_for_graph() {
        assert_eq!(windows_zone_name(BERLIN), Some("W. Europe Standard Time"));
        assert_eq!(
            windows_zone_name(chrono_tz::Europe::Amsterdam),
            Some("W. Europe Standard Time")
        );
        assert_eq!(
            windows_zone_name(chrono_tz::Australia::Sydney),
            Some("AUS Eastern Standard Time")
        );
        assert_eq!(
            windows_zone_name(chrono_tz::America::New_York),
            Some("Eastern Standard Time")
        );
        assert_eq!(windows_zone_name(Tz::UTC), Some("UTC"));
        assert_eq!(windows_zone_name(chrono_tz::Asia::Kolkata), Some("India Standard Time"));
        // Links CLDR does not list find the zone with the same offsets.
        assert_eq!(windows_zone_name(chrono_tz::US::Eastern), Some("Eastern Standard Time"));
        assert_eq!(windows_zone_name(chrono_tz::Europe::Kyiv), Some("FLE Standard Time"));
    }

    #[test]
    fn events_serialize() {
        let (objects, _) = split_calendar_in(&corpus("google.ics"), "Europe/Berlin");
        let v = serde_json::to_value(&by_summary(&objects, "Team sync").event).unwrap();
        assert_eq!(
            v["start"],
            serde_json::json!({"kind": "zoned", "local": "2025-03-04T10:00:00", "zone": "Europe/Berlin"})
        );
        assert_eq!(v["recurrence"]["kind"], "pattern");
        assert_eq!(v["recurrence"]["pattern"]["kind"], "weekly");
        assert_eq!(
            v["recurrence"]["range"]["end"],
            serde_json::json!({"kind": "end_date", "date": "2025-11-03"})
        );
        assert_eq!(v["last_modified"], "2025-03-01T09:00:00Z");
        assert_eq!(v["default_zone"], "Europe/Berlin");
    }
}

#[cfg(test)]
mod color_tests {
    use super::color_category;

    #[test]
    fn colours_become_the_nearest_outlook_colour_category() {
        for (color, want) in [
            ("red", Some("Red category")),
            ("Turquoise", Some("Blue category")),
            ("gold", Some("Yellow category")),
            ("hotpink", Some("Purple category")),
            ("#0b8043", Some("Green category")),
            ("#f4511e", Some("Orange category")),
            ("#039be5", Some("Blue category")),
            ("#8e24aa", Some("Purple category")),
            ("#d50000", Some("Red category")),
            ("#fc0", Some("Yellow category")),
            ("#616161", None),
            ("white", None),
            ("not a colour", None),
            ("#12345", None),
        ] {
            assert_eq!(color_category(color), want, "{color}");
        }
    }

    #[test]
    fn calendar_colours_become_the_nearest_graph_calendar_colour() {
        for (color, want) in [
            ("#0B8043FF", Some("lightGreen")),
            ("#039BE5", Some("lightBlue")),
            ("#D50000", Some("lightRed")),
            ("#F4511E", Some("lightOrange")),
            ("#795548", Some("lightBrown")),
            ("#F6BF26", Some("lightYellow")),
            ("#009688", Some("lightTeal")),
            ("#8E24AA", Some("lightPink")),
            ("#616161", Some("lightGray")),
            ("blue", None),
        ] {
            assert_eq!(super::calendar_color(color), want, "{color}");
        }
    }
}
