//! What `cutover serve` reads besides the per-user figures `status` and
//! `report` read ([`Checkpoint::user_status`], [`Checkpoint::pim_counts`]):
//! each table in one pass (a dashboard over 10,000 users cannot afford a
//! query per user per refresh for what is cheap to read at once), one page
//! of the skipped, failed and converted items searched, sorted and paged
//! in SQL, the copies per minute, and the schedule `migrate --every`
//! writes. Reads only; the dashboard opens the DB with
//! [`Checkpoint::open_read_only`].

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params, params_from_iter};

use super::queries::{SYNC_COLUMNS, sync_record};
use super::{Checkpoint, Result, SyncRecord, format_time};

/// A `users` row as it is, to tell which users changed since the last read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserRow {
    pub email: String,
    pub state: String,
    pub last_sync: Option<i64>,
    pub last_error: Option<String>,
    pub throttled: u64,
    pub last_throttle: Option<i64>,
    pub last_throttle_reason: Option<String>,
    /// What the mailbox waits on, as the run last wrote it (shown only
    /// while the run goes: see [`Checkpoint::user_status`]).
    pub waiting_on: Option<String>,
    pub waiting_since: Option<i64>,
}

/// The schedule of `cutover migrate --every` (its `schedule` table; unix
/// seconds).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Schedule {
    pub every_seconds: i64,
    /// The pass running, or the last one.
    pub pass: i64,
    pub pass_started_at: Option<i64>,
    /// `None` while a pass runs.
    pub next_pass_at: Option<i64>,
    pub updated_at: i64,
}

/// How a list of items is sorted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ItemSort {
    #[default]
    User,
    Kind,
    Place,
    Item,
    State,
    Reason,
    Size,
    Date,
}

impl ItemSort {
    /// The sort a URL names (`user`, `kind`, `place`, `item`, `state`,
    /// `reason`, `size`, `date`).
    pub fn parse(s: &str) -> Option<ItemSort> {
        Some(match s {
            "user" | "email" => ItemSort::User,
            "kind" => ItemSort::Kind,
            "place" | "folder" => ItemSort::Place,
            "item" | "uid" => ItemSort::Item,
            "state" => ItemSort::State,
            "reason" => ItemSort::Reason,
            "size" => ItemSort::Size,
            "date" => ItemSort::Date,
            _ => return None,
        })
    }

    /// Its column: a fixed name, never text from the request.
    fn column(self) -> &'static str {
        match self {
            ItemSort::User => "email",
            ItemSort::Kind => "kind",
            ItemSort::Place => "place",
            ItemSort::Item => "seq, item",
            ItemSort::State => "state",
            ItemSort::Reason => "reason",
            ItemSort::Size => "size",
            ItemSort::Date => "date",
        }
    }
}

/// A search over every skipped, failed or converted message and every
/// contact or event that failed or was written with notes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemQuery {
    /// Words to find (case-insensitive, ASCII) in the user, folder or
    /// collection, UID, subject or reason; empty: every item.
    pub text: String,
    /// One user's items only.
    pub user: Option<String>,
    /// `skipped`, `failed`, `converted`, `update failed` or `written`.
    pub state: Option<String>,
    /// `mail`, `contact` or `event`.
    pub kind: Option<String>,
    pub sort: ItemSort,
    pub descending: bool,
    pub offset: u64,
    pub limit: u64,
}

/// One item of a search.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ItemRow {
    /// `mail`, `contact` or `event`.
    pub kind: String,
    pub email: String,
    /// The folder of a message, the collection of a contact or event.
    pub place: String,
    /// A message's UID; a contact's or event's UID (or source key).
    pub item: String,
    pub subject: Option<String>,
    pub state: String,
    pub reason: String,
    /// A message's size.
    pub size: Option<u64>,
    /// When a message was received; when a contact or event was last
    /// written or tried (UTC, RFC 3339).
    pub date: Option<String>,
}

/// A page of a search and how many items matched in all.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ItemPage {
    pub matched: u64,
    pub offset: u64,
    pub rows: Vec<ItemRow>,
}

/// The most items one page holds.
pub const MAX_PAGE: u64 = 500;

/// Every item a search may find, in one shape: messages as
/// [`Checkpoint::problem_items`] selects them, contacts and events as
/// [`Checkpoint::pim_problems`] does (states worded as `report` words
/// them; `?1` is the reason of a write never confirmed).
const MAIL_ITEMS: &str = "SELECT 'mail' AS kind, f.email AS email, f.path AS place, m.uid AS seq,
        CAST(m.uid AS TEXT) AS item, NULLIF(m.subject, '') AS subject,
        CASE m.state WHEN 'copied' THEN 'converted' ELSE m.state END AS state,
        COALESCE(m.reason, '') AS reason, m.size AS size, m.internal_date AS date
    FROM messages m JOIN folders f ON f.id = m.folder_id
    WHERE (m.state IN ('skipped', 'failed') OR (m.state = 'copied' AND m.reason IS NOT NULL))
      AND NOT (m.state = 'skipped' AND m.reason = 'copied from another folder')";
const PIM_ITEMS: &str = "SELECT c.kind AS kind, c.email AS email, c.display_name AS place, 0 AS seq,
        CASE WHEN trim(i.uid) = '' THEN i.source_key ELSE i.uid END AS item, NULL AS subject,
        CASE WHEN i.state = 'written' THEN 'written'
             WHEN i.state = 'failed' AND i.written_version IS NOT NULL THEN 'update failed'
             ELSE 'failed' END AS state,
        COALESCE(CASE WHEN i.state = 'written' THEN i.notes
                      WHEN i.state = 'writing' THEN ?1
                      ELSE i.reason END, '') AS reason,
        NULL AS size, i.updated AS date
    FROM pim_items i JOIN pim_collections c ON c.id = i.collection_id
    WHERE i.state = 'failed'
       OR (i.state = 'writing' AND i.written_version IS NULL)
       OR (i.state = 'written' AND i.notes IS NOT NULL)";

/// `text` as a LIKE pattern that matches it anywhere, its wildcards
/// taken literally (escaped with `\`).
pub fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl ItemQuery {
    /// The SQL of the page and of the count, and their parameters: what
    /// the request asked for is only ever a parameter; the SQL text is
    /// made of fixed pieces. `with_pim`: the DB has the contacts and
    /// events tables.
    pub fn sql(&self, with_pim: bool, unconfirmed: &str) -> (String, String, Vec<Value>) {
        let mut params: Vec<Value> = vec![Value::Text(unconfirmed.to_owned())];
        let mut filters: Vec<String> = Vec::new();
        let text = self.text.trim();
        if !text.is_empty() {
            params.push(Value::Text(like_pattern(text)));
            let n = params.len();
            filters.push(format!(
                "(email LIKE ?{n} ESCAPE '\\' OR place LIKE ?{n} ESCAPE '\\' OR item LIKE ?{n} ESCAPE '\\' \
                 OR subject LIKE ?{n} ESCAPE '\\' OR reason LIKE ?{n} ESCAPE '\\')"
            ));
        }
        for (column, value) in [("email", &self.user), ("state", &self.state), ("kind", &self.kind)] {
            if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                let v = if column == "email" {
                    super::user_key(v)
                } else {
                    v.to_owned()
                };
                params.push(Value::Text(v));
                filters.push(format!("{column} = ?{}", params.len()));
            }
        }
        let from = if with_pim {
            format!("({MAIL_ITEMS}\n UNION ALL\n {PIM_ITEMS})")
        } else {
            // `?1` must still be used: a statement's parameters are counted.
            format!("({MAIL_ITEMS} AND ?1 IS NOT NULL)")
        };
        let filter = if filters.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filters.join(" AND "))
        };
        let dir = if self.descending { "DESC" } else { "ASC" };
        let order = self
            .sort
            .column()
            .split(", ")
            .map(|c| format!("{c} {dir}"))
            .collect::<Vec<_>>()
            .join(", ");
        let limit = self.limit.clamp(1, MAX_PAGE);
        let page = format!(
            "SELECT kind, email, place, item, subject, state, reason, size, date FROM {from}{filter}
             ORDER BY {order}, email, place, seq, item LIMIT {limit} OFFSET {}",
            self.offset
        );
        let count = format!("SELECT COUNT(*) FROM {from}{filter}");
        (page, count, params)
    }
}

impl Checkpoint {
    /// Whether the DB has this table (a DB an earlier version wrote may
    /// lack the newer ones; `schedule` exists once `migrate --every` ran).
    pub fn has_table(&self, name: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                params![name],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    /// A number that changes whenever another connection (a run) commits
    /// to the DB: when it has not, nothing needs to be read again.
    pub fn data_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(self.err())
    }

    /// Every `users` row, by address.
    pub fn user_rows(&self) -> Result<Vec<UserRow>> {
        self.query_rows(
            "SELECT email, state, last_sync, last_error, throttled, last_throttle, last_throttle_reason,
                waiting_on, waiting_since
             FROM users ORDER BY email",
            [],
            |r| {
                Ok(UserRow {
                    email: r.get(0)?,
                    state: r.get(1)?,
                    last_sync: r.get(2)?,
                    last_error: r.get(3)?,
                    throttled: r.get::<_, i64>(4)?.max(0) as u64,
                    last_throttle: r.get(5)?,
                    last_throttle_reason: r.get(6)?,
                    waiting_on: r.get(7)?,
                    waiting_since: r.get(8)?,
                })
            },
        )
    }

    /// Every sync of every user, by user and then oldest first (as
    /// [`Checkpoint::syncs`] lists one user's).
    pub fn all_syncs(&self) -> Result<Vec<SyncRecord>> {
        self.query_rows(
            &format!("SELECT {SYNC_COLUMNS}, email FROM syncs ORDER BY email, started, id"),
            [],
            |r| sync_record(r, r.get(12)?),
        )
    }

    /// Messages and bytes copied per minute since `since` (unix seconds):
    /// (start of the minute, messages, bytes), oldest first.
    pub fn copied_per_minute(&self, since: i64) -> Result<Vec<(i64, u64, u64)>> {
        self.query_rows(
            "SELECT copied_at / 60 * 60, COUNT(*), COALESCE(SUM(size), 0) FROM messages
             WHERE copied_at >= ?1 GROUP BY 1 ORDER BY 1",
            params![since],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, i64>(1)?.max(0) as u64,
                    r.get::<_, i64>(2)?.max(0) as u64,
                ))
            },
        )
    }

    /// The schedule of `migrate --every`; `None` when the DB has none.
    pub fn schedule(&self) -> Result<Option<Schedule>> {
        if !self.has_table("schedule")? {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT every_seconds, pass, pass_started_at, next_pass_at, updated_at FROM schedule WHERE id = 1",
                [],
                |r| {
                    Ok(Schedule {
                        every_seconds: r.get(0)?,
                        pass: r.get(1)?,
                        pass_started_at: r.get(2)?,
                        next_pass_at: r.get(3)?,
                        updated_at: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(self.err())
    }

    /// One page of the items `query` finds, and how many it finds in all.
    /// `unconfirmed` is the reason shown for a contact or event whose
    /// write was never confirmed (none was recorded).
    pub fn search_items(&self, query: &ItemQuery, unconfirmed: &str) -> Result<ItemPage> {
        let with_pim = self.has_table("pim_items")? && self.has_table("pim_collections")?;
        let (page, count, values) = query.sql(with_pim, unconfirmed);
        let matched: i64 = self
            .conn
            .query_row(&count, params_from_iter(values.iter()), |r| r.get(0))
            .map_err(self.err())?;
        let rows = self.query_rows(&page, params_from_iter(values.iter()), |r| {
            Ok(ItemRow {
                kind: r.get(0)?,
                email: r.get(1)?,
                place: r.get(2)?,
                item: r.get(3)?,
                subject: r.get(4)?,
                state: r.get(5)?,
                reason: r.get(6)?,
                size: r.get::<_, Option<i64>>(7)?.map(|n| n.max(0) as u64),
                date: r.get::<_, Option<i64>>(8)?.map(format_time),
            })
        })?;
        Ok(ItemPage {
            matched: matched.max(0) as u64,
            offset: query.offset,
            rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::tests::{meta, setup};
    use crate::checkpoint::{PimRecord, Record};
    use crate::model::{ItemKind, SkipReason};

    /// The schedule is read when its table has a row, and is `None`
    /// without a row or without the table (a DB no `migrate --every` of
    /// this version has opened).
    #[test]
    fn the_schedule_is_read_if_there_is_one() {
        let (dir, cp, _) = setup();
        let path = dir.path().join("state.db");
        cp.conn.execute_batch("DROP TABLE IF EXISTS schedule").unwrap();
        assert_eq!(Checkpoint::open_read_only(&path).unwrap().schedule().unwrap(), None);
        cp.conn
            .execute_batch(
                "CREATE TABLE schedule (id INTEGER PRIMARY KEY CHECK (id = 1), every_seconds INTEGER NOT NULL, \
                 pass INTEGER NOT NULL, pass_started_at INTEGER, next_pass_at INTEGER, updated_at INTEGER NOT NULL)",
            )
            .unwrap();
        assert_eq!(Checkpoint::open_read_only(&path).unwrap().schedule().unwrap(), None);
        cp.conn
            .execute_batch("INSERT INTO schedule VALUES (1, 3600, 2, 100, NULL, 150)")
            .unwrap();
        let s = Checkpoint::open_read_only(&path).unwrap().schedule().unwrap().unwrap();
        assert_eq!(
            (s.every_seconds, s.pass, s.pass_started_at, s.next_pass_at),
            (3600, 2, Some(100), None)
        );
    }

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_pattern("a"), "%a%");
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    /// Whatever the request holds becomes a parameter; the sort and the
    /// direction come from fixed words; the page size is bounded.
    #[test]
    fn the_sql_holds_no_request_text() {
        let q = ItemQuery {
            text: "x' OR 1=1 --".into(),
            user: Some("Bob@X.test".into()),
            state: Some("failed".into()),
            kind: Some("mail'; DROP TABLE users".into()),
            sort: ItemSort::Size,
            descending: true,
            offset: 20,
            limit: 1_000_000,
        };
        let (page, count, params) = q.sql(true, "unconfirmed");
        for sql in [&page, &count] {
            assert!(
                !sql.contains("1=1") && !sql.contains("DROP") && !sql.contains("Bob"),
                "{sql}"
            );
        }
        assert!(page.contains("ORDER BY size DESC, email"), "{page}");
        assert!(page.ends_with(&format!("LIMIT {MAX_PAGE} OFFSET 20")), "{page}");
        assert_eq!(
            params,
            [
                Value::Text("unconfirmed".into()),
                Value::Text("%x' OR 1=1 --%".into()),
                Value::Text("bob@x.test".into()),
                Value::Text("failed".into()),
                Value::Text("mail'; DROP TABLE users".into()),
            ]
        );
        let (page, _, params) = ItemQuery::default().sql(false, "u");
        assert!(!page.contains("WHERE email") && !page.contains("pim_items"), "{page}");
        assert!(page.contains("ORDER BY email ASC"), "{page}");
        assert_eq!(params.len(), 1);
        assert_eq!(ItemSort::parse("date"), Some(ItemSort::Date));
        assert_eq!(ItemSort::parse("1; DROP"), None);
    }

    /// Messages and contacts found, filtered, sorted and paged, on a DB
    /// opened read-only; the schedule table is optional.
    #[test]
    fn search_finds_messages_and_contacts() {
        let (dir, mut cp, f) = setup();
        let metas: Vec<_> = (1..=5)
            .map(|uid| meta(uid, &format!("<m{uid}>"), u64::from(uid) * 100))
            .collect();
        cp.store_scan(f, 1, 6, 5, &metas, false).unwrap();
        cp.apply(&[
            Record::Skipped {
                folder_id: f,
                uid: 1,
                reason: SkipReason::TooLarge,
            },
            Record::Failed {
                folder_id: f,
                uid: 2,
                reason: "the target said 50%_no".into(),
            },
            Record::Failed {
                folder_id: f,
                uid: 3,
                reason: "boom".into(),
            },
        ])
        .unwrap();
        let book = cp
            .pim_collection("a@x.test", ItemKind::Contact, "/book/", "Friends")
            .unwrap();
        cp.apply_pim(&[PimRecord::Failed {
            collection_id: book.id,
            source_key: "/book/c1.vcf".into(),
            uid: "c1".into(),
            version: "v1".into(),
            reason: "no name".into(),
        }])
        .unwrap();
        drop(cp);
        let ro = Checkpoint::open_read_only(&dir.path().join("state.db")).unwrap();
        let all = ro.search_items(&ItemQuery::default(), "u").unwrap();
        assert_eq!(all.matched, 4);
        let q = |text: &str| ItemQuery {
            text: text.into(),
            limit: 10,
            ..Default::default()
        };
        let found = ro.search_items(&q("50%_"), "u").unwrap();
        assert_eq!(found.matched, 1);
        assert_eq!(found.rows[0].item, "2");
        assert_eq!(ro.search_items(&q("50%x"), "u").unwrap().matched, 0, "% is literal");
        let contacts = ro
            .search_items(
                &ItemQuery {
                    kind: Some("contact".into()),
                    limit: 10,
                    ..Default::default()
                },
                "u",
            )
            .unwrap();
        assert_eq!(contacts.rows.len(), 1);
        assert_eq!(
            (contacts.rows[0].place.as_str(), contacts.rows[0].reason.as_str()),
            ("Friends", "no name")
        );
        let by_size = ro
            .search_items(
                &ItemQuery {
                    kind: Some("mail".into()),
                    sort: ItemSort::Size,
                    descending: true,
                    offset: 1,
                    limit: 1,
                    ..Default::default()
                },
                "u",
            )
            .unwrap();
        assert_eq!((by_size.matched, by_size.rows[0].size), (3, Some(200)));
        assert_eq!(ro.schedule().unwrap(), None);
        assert_eq!(ro.user_rows().unwrap()[0].email, "a@x.test");
        assert!(ro.conn.execute_batch("DELETE FROM users").is_err(), "read-only");
    }
}
