//! Time zones, `dateTimeTimeZone` and Graph's `patternedRecurrence`, with the
//! engine that expands a recurring event into its occurrences.
//!
//! Graph does not take iCalendar RRULEs: a series is a `recurrencePattern`
//! (how often) plus a `recurrenceRange` (for how long)
//! (learn.microsoft.com/graph/api/resources/patternedrecurrence). cutover must
//! translate source calendars into that model, so the emulator validates it as
//! Graph documents it and expands it itself, in the event's own time zone:
//! a weekly 09:00 Europe/Berlin meeting stays at 09:00 local across a DST
//! change, which is exactly what a migration that converts to UTC too early
//! gets wrong.

use std::str::FromStr;

use chrono::offset::LocalResult;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

/// Windows time zone names Exchange Online accepts, with the IANA zone each
/// maps to (CLDR `windowsZones.xml`, territory 001). Only these Windows names
/// are known to the emulator; any other non-IANA name is refused.
const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("Dateline Standard Time", "Etc/GMT+12"),
    ("UTC-11", "Etc/GMT+11"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time", "America/Denver"),
    ("Central America Standard Time", "America/Guatemala"),
    ("Central Standard Time", "America/Chicago"),
    ("Canada Central Standard Time", "America/Regina"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("Eastern Standard Time", "America/New_York"),
    ("US Eastern Standard Time", "America/Indianapolis"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("SA Western Standard Time", "America/La_Paz"),
    ("Newfoundland Standard Time", "America/St_Johns"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("Argentina Standard Time", "America/Buenos_Aires"),
    ("UTC-02", "Etc/GMT+2"),
    ("Azores Standard Time", "Atlantic/Azores"),
    ("UTC", "Etc/UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("W. Central Africa Standard Time", "Africa/Lagos"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("Egypt Standard Time", "Africa/Cairo"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Arab Standard Time", "Asia/Riyadh"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("E. Africa Standard Time", "Africa/Nairobi"),
    ("Iran Standard Time", "Asia/Tehran"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("Afghanistan Standard Time", "Asia/Kabul"),
    ("Pakistan Standard Time", "Asia/Karachi"),
    ("India Standard Time", "Asia/Calcutta"),
    ("Nepal Standard Time", "Asia/Katmandu"),
    ("Bangladesh Standard Time", "Asia/Dhaka"),
    ("SE Asia Standard Time", "Asia/Bangkok"),
    ("China Standard Time", "Asia/Shanghai"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("Taipei Standard Time", "Asia/Taipei"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("Cen. Australia Standard Time", "Australia/Adelaide"),
    ("AUS Central Standard Time", "Australia/Darwin"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("Tasmania Standard Time", "Australia/Hobart"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("UTC+12", "Etc/GMT-12"),
    ("Tonga Standard Time", "Pacific/Tongatapu"),
];

/// Resolves a time zone name as `dateTimeTimeZone.timeZone` takes it: a
/// Windows name from [`WINDOWS_ZONES`] (case-insensitive, as Exchange
/// compares them) or an IANA name.
pub fn resolve_zone(name: &str) -> Option<Tz> {
    if let Some((_, iana)) = WINDOWS_ZONES.iter().find(|(w, _)| w.eq_ignore_ascii_case(name)) {
        return Tz::from_str(iana).ok();
    }
    Tz::from_str(name).ok()
}

/// A wall-clock time in a named zone, as `dateTimeTimeZone` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZonedTime {
    pub local: NaiveDateTime,
    /// The zone name as the client wrote it (echoed as originalStartTimeZone).
    pub zone: String,
}

impl ZonedTime {
    pub fn tz(&self) -> Tz {
        resolve_zone(&self.zone).unwrap_or(Tz::UTC)
    }

    pub fn utc(&self) -> DateTime<Utc> {
        local_to_utc(self.tz(), self.local)
    }
}

/// Converts a wall-clock time to UTC. An ambiguous time (the hour repeated
/// when DST ends) is its first instance; a time that does not exist (the hour
/// skipped when DST starts) is moved later by the gap, as Outlook does.
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            let shifted = local + Duration::hours(1);
            match tz.from_local_datetime(&shifted) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
                LocalResult::None => Utc.from_utc_datetime(&local),
            }
        }
    }
}

/// Graph's rendering of a wall-clock time (`2026-03-20T09:00:00.0000000`).
pub fn fmt_local(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S.0000000").to_string()
}

/// Parses `dateTimeTimeZone.dateTime`: `{date}T{time}` without an offset,
/// seconds and up to seven fractional digits optional.
pub fn parse_local(s: &str) -> Option<NaiveDateTime> {
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t);
        }
    }
    None
}

/// Why a `dateTimeTimeZone` or `patternedRecurrence` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// Wrong JSON type: `(property, expected Graph type)`.
    BadValue(String, &'static str),
    /// A property the type does not define: `(property, type)`.
    Unknown(String, &'static str),
    /// A time zone name Exchange does not know.
    Zone(String),
    /// A documented rule broken (message).
    Rule(String),
}

/// Parses a `dateTimeTimeZone` object.
pub fn parse_zoned(prop: &str, v: &Value) -> Result<ZonedTime, Invalid> {
    const TY: &str = "microsoft.graph.dateTimeTimeZone";
    let o = v.as_object().ok_or_else(|| Invalid::BadValue(prop.into(), TY))?;
    for k in o.keys() {
        if !matches!(k.as_str(), "dateTime" | "timeZone" | "@odata.type") {
            return Err(Invalid::Unknown(k.clone(), TY));
        }
    }
    let dt = o
        .get("dateTime")
        .and_then(Value::as_str)
        .ok_or_else(|| Invalid::BadValue(prop.into(), TY))?;
    let local = parse_local(dt).ok_or_else(|| Invalid::BadValue(prop.into(), TY))?;
    // The docs make timeZone part of the type; a value without one is refused
    // rather than read as UTC.
    let zone = o.get("timeZone").and_then(Value::as_str).unwrap_or("");
    if resolve_zone(zone).is_none() {
        return Err(Invalid::Zone(zone.to_string()));
    }
    Ok(ZonedTime {
        local,
        zone: zone.to_string(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternType {
    Daily,
    Weekly,
    AbsoluteMonthly,
    RelativeMonthly,
    AbsoluteYearly,
    RelativeYearly,
}

const PATTERN_TYPES: &[(&str, PatternType)] = &[
    ("daily", PatternType::Daily),
    ("weekly", PatternType::Weekly),
    ("absoluteMonthly", PatternType::AbsoluteMonthly),
    ("relativeMonthly", PatternType::RelativeMonthly),
    ("absoluteYearly", PatternType::AbsoluteYearly),
    ("relativeYearly", PatternType::RelativeYearly),
];

const WEEKDAYS: &[(&str, Weekday)] = &[
    ("sunday", Weekday::Sun),
    ("monday", Weekday::Mon),
    ("tuesday", Weekday::Tue),
    ("wednesday", Weekday::Wed),
    ("thursday", Weekday::Thu),
    ("friday", Weekday::Fri),
    ("saturday", Weekday::Sat),
];

/// `weekIndex` values; `last` is index 4.
const WEEK_INDEXES: &[&str] = &["first", "second", "third", "fourth", "last"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeType {
    EndDate,
    NoEnd,
    Numbered,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub kind: PatternType,
    pub interval: u32,
    pub month: u32,
    pub day_of_month: u32,
    pub days_of_week: Vec<Weekday>,
    pub first_day_of_week: Weekday,
    /// 0..=3 for first..fourth, 4 for last.
    pub index: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub kind: RangeType,
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
    pub count: u32,
    pub zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    pub pattern: Pattern,
    pub range: Range,
}

fn weekday_name(d: Weekday) -> &'static str {
    WEEKDAYS
        .iter()
        .find(|(_, w)| *w == d)
        .map(|(n, _)| *n)
        .unwrap_or("sunday")
}

fn rule(msg: impl Into<String>) -> Invalid {
    Invalid::Rule(msg.into())
}

/// Parses a date (`2026-03-02`) as recurrenceRange dates take it.
fn parse_date(prop: &str, v: &Value) -> Result<NaiveDate, Invalid> {
    v.as_str()
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .ok_or_else(|| Invalid::BadValue(prop.into(), "Edm.Date"))
}

fn parse_int(prop: &str, v: &Value) -> Result<i64, Invalid> {
    v.as_i64().ok_or_else(|| Invalid::BadValue(prop.into(), "Edm.Int32"))
}

/// Parses a `patternedRecurrence` (or `null`: no recurrence). Properties a
/// pattern or range type does not use must be absent or carry the value Graph
/// itself reports for "unused" (0, `[]`, `first`, `sunday`, `0001-01-01`), so
/// a round-tripped GET body is accepted but a contradictory one is not.
pub fn parse(v: &Value) -> Result<Option<Recurrence>, Invalid> {
    if v.is_null() {
        return Ok(None);
    }
    const TY: &str = "microsoft.graph.patternedRecurrence";
    let o = v
        .as_object()
        .ok_or_else(|| Invalid::BadValue("recurrence".into(), TY))?;
    for k in o.keys() {
        if !matches!(k.as_str(), "pattern" | "range" | "@odata.type") {
            return Err(Invalid::Unknown(k.clone(), TY));
        }
    }
    let pattern = parse_pattern(
        o.get("pattern")
            .ok_or_else(|| rule("recurrence.pattern is required."))?,
    )?;
    let range = parse_range(o.get("range").ok_or_else(|| rule("recurrence.range is required."))?)?;
    Ok(Some(Recurrence { pattern, range }))
}

fn parse_pattern(v: &Value) -> Result<Pattern, Invalid> {
    const TY: &str = "microsoft.graph.recurrencePattern";
    let o = v.as_object().ok_or_else(|| Invalid::BadValue("pattern".into(), TY))?;
    for k in o.keys() {
        if !matches!(
            k.as_str(),
            "type" | "interval" | "month" | "dayOfMonth" | "daysOfWeek" | "firstDayOfWeek" | "index" | "@odata.type"
        ) {
            return Err(Invalid::Unknown(k.clone(), TY));
        }
    }
    let kind_name = o
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| rule("recurrence.pattern.type is required."))?;
    let kind = PATTERN_TYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(kind_name))
        .map(|(_, k)| *k)
        .ok_or_else(|| Invalid::BadValue("type".into(), "microsoft.graph.recurrencePatternType"))?;
    let interval = match o.get("interval") {
        Some(v) => parse_int("interval", v)?,
        None => return Err(rule("recurrence.pattern.interval is required.")),
    };
    if interval < 1 {
        return Err(rule("recurrence.pattern.interval must be at least 1."));
    }
    let month = match o.get("month") {
        None | Some(Value::Null) => 0,
        Some(v) => parse_int("month", v)?,
    };
    let day_of_month = match o.get("dayOfMonth") {
        None | Some(Value::Null) => 0,
        Some(v) => parse_int("dayOfMonth", v)?,
    };
    let days_of_week = match o.get("daysOfWeek") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for d in items {
                let day = d
                    .as_str()
                    .and_then(|s| WEEKDAYS.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)))
                    .map(|(_, w)| *w)
                    .ok_or_else(|| Invalid::BadValue("daysOfWeek".into(), "microsoft.graph.dayOfWeek"))?;
                if !out.contains(&day) {
                    out.push(day);
                }
            }
            out
        }
        Some(_) => {
            return Err(Invalid::BadValue(
                "daysOfWeek".into(),
                "Collection(microsoft.graph.dayOfWeek)",
            ));
        }
    };
    let first_day_of_week = match o.get("firstDayOfWeek") {
        None | Some(Value::Null) => Weekday::Sun,
        Some(v) => v
            .as_str()
            .and_then(|s| WEEKDAYS.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)))
            .map(|(_, w)| *w)
            .ok_or_else(|| Invalid::BadValue("firstDayOfWeek".into(), "microsoft.graph.dayOfWeek"))?,
    };
    let index = match o.get("index") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_str()
            .and_then(|s| WEEK_INDEXES.iter().position(|n| n.eq_ignore_ascii_case(s)))
            .ok_or_else(|| Invalid::BadValue("index".into(), "microsoft.graph.weekIndex"))?,
    };
    use PatternType::*;
    // Which properties each type requires and which it may carry
    // (learn.microsoft.com/graph/api/resources/recurrencepattern).
    let (needs_month, needs_day, needs_weekdays, may_index, may_first_day) = match kind {
        Daily => (false, false, false, false, false),
        Weekly => (false, false, true, false, true),
        AbsoluteMonthly => (false, true, false, false, false),
        RelativeMonthly => (false, false, true, true, false),
        AbsoluteYearly => (true, true, false, false, false),
        RelativeYearly => (true, false, true, true, false),
    };
    let name = PATTERN_TYPES
        .iter()
        .find(|(_, k)| *k == kind)
        .map(|(n, _)| *n)
        .unwrap_or("");
    if needs_month && !(1..=12).contains(&month) {
        return Err(rule(format!(
            "recurrence.pattern.month must be 1 to 12 for a {name} pattern."
        )));
    }
    if !needs_month && month != 0 {
        return Err(rule(format!(
            "recurrence.pattern.month is not valid for a {name} pattern."
        )));
    }
    if needs_day && !(1..=31).contains(&day_of_month) {
        return Err(rule(format!(
            "recurrence.pattern.dayOfMonth must be 1 to 31 for a {name} pattern."
        )));
    }
    if !needs_day && day_of_month != 0 {
        return Err(rule(format!(
            "recurrence.pattern.dayOfMonth is not valid for a {name} pattern."
        )));
    }
    if needs_weekdays && days_of_week.is_empty() {
        return Err(rule(format!(
            "recurrence.pattern.daysOfWeek is required for a {name} pattern."
        )));
    }
    if !needs_weekdays && !days_of_week.is_empty() {
        return Err(rule(format!(
            "recurrence.pattern.daysOfWeek is not valid for a {name} pattern."
        )));
    }
    if !may_index && index != 0 {
        return Err(rule(format!(
            "recurrence.pattern.index is not valid for a {name} pattern."
        )));
    }
    if !may_first_day && first_day_of_week != Weekday::Sun {
        return Err(rule(format!(
            "recurrence.pattern.firstDayOfWeek is not valid for a {name} pattern."
        )));
    }
    Ok(Pattern {
        kind,
        interval: interval as u32,
        month: month as u32,
        day_of_month: day_of_month as u32,
        days_of_week,
        first_day_of_week,
        index,
    })
}

/// The `endDate` Graph reports for a range that has none.
const NO_DATE: &str = "0001-01-01";

fn parse_range(v: &Value) -> Result<Range, Invalid> {
    const TY: &str = "microsoft.graph.recurrenceRange";
    let o = v.as_object().ok_or_else(|| Invalid::BadValue("range".into(), TY))?;
    for k in o.keys() {
        if !matches!(
            k.as_str(),
            "type" | "startDate" | "endDate" | "numberOfOccurrences" | "recurrenceTimeZone" | "@odata.type"
        ) {
            return Err(Invalid::Unknown(k.clone(), TY));
        }
    }
    let kind = match o.get("type").and_then(Value::as_str) {
        None => return Err(rule("recurrence.range.type is required.")),
        Some(s) if s.eq_ignore_ascii_case("endDate") => RangeType::EndDate,
        Some(s) if s.eq_ignore_ascii_case("noEnd") => RangeType::NoEnd,
        Some(s) if s.eq_ignore_ascii_case("numbered") => RangeType::Numbered,
        Some(_) => return Err(Invalid::BadValue("type".into(), "microsoft.graph.recurrenceRangeType")),
    };
    let start = parse_date(
        "startDate",
        o.get("startDate")
            .ok_or_else(|| rule("recurrence.range.startDate is required."))?,
    )?;
    let end = match o.get("endDate") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == NO_DATE => None,
        Some(v) => Some(parse_date("endDate", v)?),
    };
    let count = match o.get("numberOfOccurrences") {
        None | Some(Value::Null) => 0,
        Some(v) => parse_int("numberOfOccurrences", v)?,
    };
    let zone = match o.get("recurrenceTimeZone") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => {
            if resolve_zone(s).is_none() {
                return Err(Invalid::Zone(s.clone()));
            }
            Some(s.clone())
        }
        Some(_) => return Err(Invalid::BadValue("recurrenceTimeZone".into(), "Edm.String")),
    };
    match kind {
        RangeType::EndDate => match end {
            None => return Err(rule("recurrence.range.endDate is required for an endDate range.")),
            Some(e) if e < start => {
                return Err(rule("recurrence.range.endDate must not be before its startDate."));
            }
            _ => {}
        },
        _ if end.is_some() => {
            return Err(rule("recurrence.range.endDate is only valid for an endDate range."));
        }
        _ => {}
    }
    match kind {
        RangeType::Numbered if count <= 0 => {
            return Err(rule(
                "recurrence.range.numberOfOccurrences must be positive for a numbered range.",
            ));
        }
        RangeType::Numbered => {}
        _ if count != 0 => {
            return Err(rule(
                "recurrence.range.numberOfOccurrences is only valid for a numbered range.",
            ));
        }
        _ => {}
    }
    Ok(Range {
        kind,
        start,
        end,
        count: count as u32,
        zone,
    })
}

impl Recurrence {
    /// The resource as Graph reports it, unused properties at their defaults.
    pub fn to_json(&self) -> Value {
        let p = &self.pattern;
        let r = &self.range;
        let kind = PATTERN_TYPES
            .iter()
            .find(|(_, k)| *k == p.kind)
            .map(|(n, _)| *n)
            .unwrap_or("daily");
        let range_kind = match r.kind {
            RangeType::EndDate => "endDate",
            RangeType::NoEnd => "noEnd",
            RangeType::Numbered => "numbered",
        };
        let mut pattern = Map::new();
        pattern.insert("type".into(), json!(kind));
        pattern.insert("interval".into(), json!(p.interval));
        pattern.insert("month".into(), json!(p.month));
        pattern.insert("dayOfMonth".into(), json!(p.day_of_month));
        if !p.days_of_week.is_empty() {
            let days: Vec<&str> = p.days_of_week.iter().map(|d| weekday_name(*d)).collect();
            pattern.insert("daysOfWeek".into(), json!(days));
        }
        pattern.insert("firstDayOfWeek".into(), json!(weekday_name(p.first_day_of_week)));
        pattern.insert("index".into(), json!(WEEK_INDEXES[p.index]));
        json!({
            "pattern": pattern,
            "range": {
                "type": range_kind,
                "startDate": r.start.format("%Y-%m-%d").to_string(),
                "endDate": r.end.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_else(|| NO_DATE.into()),
                "recurrenceTimeZone": r.zone.clone().unwrap_or_default(),
                "numberOfOccurrences": r.count,
            }
        })
    }

    /// Every occurrence date of the series up to `until` (inclusive), in
    /// order, counted from the range's start whatever the window so that a
    /// numbered range ends where Graph ends it. Cancelled occurrences are
    /// still part of the pattern and count towards `numberOfOccurrences`.
    pub fn dates(&self, until: NaiveDate) -> Vec<NaiveDate> {
        let r = &self.range;
        let last = match (r.kind, r.end) {
            (RangeType::EndDate, Some(e)) => e.min(until),
            _ => until,
        };
        let limit = match r.kind {
            RangeType::Numbered => r.count as usize,
            _ => usize::MAX,
        };
        let mut out = Vec::new();
        let mut push = |d: NaiveDate| -> bool {
            if d < r.start {
                return true;
            }
            if d > last || out.len() >= limit {
                return false;
            }
            out.push(d);
            true
        };
        let p = &self.pattern;
        let step = p.interval as i64;
        match p.kind {
            PatternType::Daily => {
                let mut d = r.start;
                while push(d) {
                    d += Duration::days(step);
                }
            }
            PatternType::Weekly => {
                // Weeks begin on firstDayOfWeek; the series' first week is the
                // one holding the range start.
                let back =
                    (r.start.weekday().num_days_from_sunday() + 7 - p.first_day_of_week.num_days_from_sunday()) % 7;
                let mut week = r.start - Duration::days(back as i64);
                'weeks: while week <= last {
                    for offset in 0..7 {
                        let d = week + Duration::days(offset);
                        if p.days_of_week.contains(&d.weekday()) && !push(d) {
                            break 'weeks;
                        }
                    }
                    week += Duration::days(7 * step);
                }
            }
            PatternType::AbsoluteMonthly | PatternType::RelativeMonthly => {
                let mut month_index = r.start.year() as i64 * 12 + r.start.month0() as i64;
                loop {
                    let (y, m) = ((month_index / 12) as i32, (month_index % 12) as u32 + 1);
                    let Some(first) = NaiveDate::from_ymd_opt(y, m, 1) else {
                        break;
                    };
                    if first > last {
                        break;
                    }
                    if let Some(d) = self.day_in_month(y, m)
                        && !push(d)
                    {
                        break;
                    }
                    month_index += step;
                }
            }
            PatternType::AbsoluteYearly | PatternType::RelativeYearly => {
                let mut y = r.start.year();
                while let Some(first) = NaiveDate::from_ymd_opt(y, 1, 1) {
                    if first > last {
                        break;
                    }
                    if let Some(d) = self.day_in_month(y, p.month)
                        && !push(d)
                    {
                        break;
                    }
                    y += step as i32;
                }
            }
        }
        out
    }

    /// The pattern's day in a month: `dayOfMonth` (the month's last day when
    /// it is shorter, as Outlook schedules "day 31"), or the `index`-th day
    /// among `daysOfWeek` (`last`: the final one).
    fn day_in_month(&self, y: i32, m: u32) -> Option<NaiveDate> {
        let p = &self.pattern;
        let first = NaiveDate::from_ymd_opt(y, m, 1)?;
        let next = if m == 12 {
            NaiveDate::from_ymd_opt(y + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(y, m + 1, 1)?
        };
        let days_in_month = (next - first).num_days() as u32;
        match p.kind {
            PatternType::AbsoluteMonthly | PatternType::AbsoluteYearly => {
                NaiveDate::from_ymd_opt(y, m, p.day_of_month.min(days_in_month))
            }
            _ => {
                let matching: Vec<NaiveDate> = (0..days_in_month)
                    .map(|i| first + Duration::days(i as i64))
                    .filter(|d| p.days_of_week.contains(&d.weekday()))
                    .collect();
                if p.index == 4 {
                    matching.last().copied()
                } else {
                    matching.get(p.index).copied()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: Value) -> Recurrence {
        parse(&v).unwrap().unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn relative_monthly_last_friday_and_numbered_range() {
        let r = rec(json!({
            "pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
            "range": {"type": "numbered", "startDate": "2026-01-01", "numberOfOccurrences": 3}
        }));
        assert_eq!(
            r.dates(d("2030-01-01")),
            vec![d("2026-01-30"), d("2026-02-27"), d("2026-03-27")]
        );
    }

    #[test]
    fn weekly_every_other_week_from_monday_weeks() {
        let r = rec(json!({
            "pattern": {"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "thursday"], "firstDayOfWeek": "monday"},
            "range": {"type": "endDate", "startDate": "2026-03-05", "endDate": "2026-03-31"}
        }));
        // Week of Mon 2 March holds the start (Thu 5); the next is the week of 16 March.
        assert_eq!(
            r.dates(d("2027-01-01")),
            vec![d("2026-03-05"), d("2026-03-16"), d("2026-03-19"), d("2026-03-30")]
        );
    }

    #[test]
    fn absolute_monthly_day_31_falls_on_the_last_day() {
        let r = rec(json!({
            "pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
            "range": {"type": "noEnd", "startDate": "2026-01-31"}
        }));
        assert_eq!(
            r.dates(d("2026-03-31")),
            vec![d("2026-01-31"), d("2026-02-28"), d("2026-03-31")]
        );
    }

    #[test]
    fn pattern_rules_refused() {
        let bad = |p: Value| {
            parse(&json!({"pattern": p, "range": {"type": "noEnd", "startDate": "2026-01-01"}})).unwrap_err()
        };
        assert!(matches!(
            bad(json!({"type": "weekly", "interval": 1})),
            Invalid::Rule(_)
        ));
        assert!(matches!(bad(json!({"type": "daily", "interval": 0})), Invalid::Rule(_)));
        assert!(matches!(
            bad(json!({"type": "daily", "interval": 1, "dayOfMonth": 3})),
            Invalid::Rule(_)
        ));
        assert!(matches!(
            bad(json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["monday"], "index": "fifth"})),
            Invalid::BadValue(..)
        ));
    }

    #[test]
    fn dst_gap_moves_later_and_windows_names_resolve() {
        let tz = resolve_zone("W. Europe Standard Time").unwrap();
        let gap = parse_local("2026-03-29T02:30:00").unwrap();
        assert_eq!(local_to_utc(tz, gap).to_rfc3339(), "2026-03-29T01:30:00+00:00");
        assert!(resolve_zone("Mars Standard Time").is_none());
    }
}
