//! Pure: a request's query string into what it asks for, and the users'
//! page (filter, sort, page over the snapshot in memory: 10,000 users sort
//! in a millisecond, and the browser only ever gets one page).

use std::cmp::Ordering;

use crate::checkpoint::{ItemQuery, ItemSort};

use super::snapshot::UserSummary;

/// The most users one page holds.
pub const MAX_USERS_PAGE: usize = 500;
const DEFAULT_PAGE: usize = 100;

/// `a=1&b=x%20y` as pairs, `+` read as a space; a malformed escape is
/// kept as written.
pub fn parse_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The value of `key` in the pairs, if any.
pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn number(pairs: &[(String, String)], key: &str, default: usize) -> usize {
    get(pairs, key).and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

fn descending(pairs: &[(String, String)]) -> bool {
    get(pairs, "dir").is_some_and(|d| d.eq_ignore_ascii_case("desc"))
}

/// How the users' list is sorted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserSort {
    #[default]
    Email,
    State,
    Progress,
    Copied,
    Source,
    Skipped,
    Failed,
    Bytes,
    Throttled,
    LastSync,
    Running,
    Syncs,
    Rate,
    Error,
}

impl UserSort {
    pub fn parse(s: &str) -> Option<UserSort> {
        Some(match s {
            "email" | "user" => UserSort::Email,
            "state" => UserSort::State,
            "progress" => UserSort::Progress,
            "copied" => UserSort::Copied,
            "source" | "source_messages" => UserSort::Source,
            "skipped" => UserSort::Skipped,
            "failed" => UserSort::Failed,
            "bytes" | "bytes_copied" => UserSort::Bytes,
            "throttled" => UserSort::Throttled,
            "last_sync" => UserSort::LastSync,
            "running" | "running_since" => UserSort::Running,
            "syncs" => UserSort::Syncs,
            "rate" | "last_rate" => UserSort::Rate,
            "error" | "last_error" => UserSort::Error,
            _ => return None,
        })
    }

    fn compare(self, a: &UserSummary, b: &UserSummary) -> Ordering {
        let (x, y) = (&a.status, &b.status);
        match self {
            UserSort::Email => x.email.cmp(&y.email),
            UserSort::State => x.state.cmp(&y.state),
            UserSort::Progress => a.progress.total_cmp(&b.progress),
            UserSort::Copied => x.copied.cmp(&y.copied),
            UserSort::Source => x.source_messages.cmp(&y.source_messages),
            UserSort::Skipped => x.skipped.cmp(&y.skipped),
            UserSort::Failed => x.failed.cmp(&y.failed),
            UserSort::Bytes => x.bytes_copied.cmp(&y.bytes_copied),
            UserSort::Throttled => x.throttled.cmp(&y.throttled),
            UserSort::LastSync => a.last_sync_unix.cmp(&b.last_sync_unix),
            UserSort::Running => a.running_since_unix.cmp(&b.running_since_unix),
            UserSort::Syncs => a.syncs.cmp(&b.syncs),
            UserSort::Rate => a.last_rate.unwrap_or(0.0).total_cmp(&b.last_rate.unwrap_or(0.0)),
            UserSort::Error => x.last_error.cmp(&y.last_error),
        }
    }
}

/// A page of the users' list: `q` (text in the address, state or last
/// error, case-insensitive), `state` (a state, or `running`, `problems`,
/// `throttled`), `sort`, `dir` (`asc`, `desc`), `offset`, `limit`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserQuery {
    pub text: String,
    pub state: Option<String>,
    pub sort: UserSort,
    pub descending: bool,
    pub offset: usize,
    pub limit: usize,
}

impl UserQuery {
    pub fn parse(query: &str) -> UserQuery {
        let pairs = parse_pairs(query);
        UserQuery {
            text: get(&pairs, "q").unwrap_or("").trim().to_lowercase(),
            state: get(&pairs, "state")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            sort: get(&pairs, "sort").and_then(UserSort::parse).unwrap_or_default(),
            descending: descending(&pairs),
            offset: number(&pairs, "offset", 0),
            limit: number(&pairs, "limit", DEFAULT_PAGE).clamp(1, MAX_USERS_PAGE),
        }
    }

    fn matches(&self, u: &UserSummary) -> bool {
        let s = &u.status;
        let state_ok = match self.state.as_deref() {
            None | Some("all") => true,
            Some("running") => u.running_since.is_some(),
            Some("problems") => {
                s.failed > 0 || s.last_error.is_some() || matches!(s.state.as_str(), "failed" | "partial")
            }
            Some("throttled") => s.throttled > 0,
            Some(state) => s.state == state,
        };
        state_ok
            && (self.text.is_empty()
                || s.email.to_lowercase().contains(&self.text)
                || s.state.to_lowercase().contains(&self.text)
                || s.last_error
                    .as_deref()
                    .is_some_and(|e| e.to_lowercase().contains(&self.text)))
    }

    /// The users matched (how many, and this page of them, sorted; ties
    /// by address, A to Z whatever the direction).
    pub fn page<'a>(&self, users: &'a [UserSummary]) -> (usize, Vec<&'a UserSummary>) {
        let mut matched: Vec<&UserSummary> = users.iter().filter(|u| self.matches(u)).collect();
        matched.sort_by(|a, b| {
            let o = self.sort.compare(a, b);
            let o = if self.descending { o.reverse() } else { o };
            o.then_with(|| a.status.email.cmp(&b.status.email))
        });
        let total = matched.len();
        let page = matched.into_iter().skip(self.offset).take(self.limit).collect();
        (total, page)
    }
}

/// The items' search a query string asks for: `q`, `user`, `state`,
/// `kind`, `sort`, `dir`, `offset`, `limit`.
pub fn item_query(query: &str) -> ItemQuery {
    let pairs = parse_pairs(query);
    let text = |k: &str| {
        get(&pairs, k)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    ItemQuery {
        text: text("q").unwrap_or_default(),
        user: text("user"),
        state: text("state"),
        kind: text("kind"),
        sort: get(&pairs, "sort").and_then(ItemSort::parse).unwrap_or_default(),
        descending: descending(&pairs),
        offset: number(&pairs, "offset", 0) as u64,
        limit: number(&pairs, "limit", DEFAULT_PAGE) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::UserStatus;

    fn user(email: &str, state: &str, copied: u64, failed: u64, error: Option<&str>) -> UserSummary {
        UserSummary {
            status: UserStatus {
                email: email.into(),
                state: state.into(),
                copied,
                failed,
                source_messages: 100,
                last_error: error.map(str::to_owned),
                ..Default::default()
            },
            progress: copied as f64 / 100.0,
            syncs: 1,
            running_since: (state == "syncing").then(|| "2026-01-01T00:00:00Z".into()),
            last_sync_counts: None,
            last_rate: None,
            contacts: None,
            events: None,
            last_sync_unix: 0,
            running_since_unix: 0,
        }
    }

    #[test]
    fn query_strings_decode() {
        let pairs = parse_pairs("q=a%40b+c&state=&x&sort=copied&bad=%zz");
        assert_eq!(get(&pairs, "q"), Some("a@b c"));
        assert_eq!(get(&pairs, "state"), Some(""));
        assert_eq!(get(&pairs, "x"), Some(""));
        assert_eq!(get(&pairs, "bad"), Some("%zz"));
        let q = UserQuery::parse("sort=nonsense&limit=999999&offset=-3");
        assert_eq!((q.sort, q.limit, q.offset), (UserSort::Email, MAX_USERS_PAGE, 0));
        let q = item_query("q=%25&sort=size&dir=desc&kind=event&limit=5");
        assert_eq!((q.text.as_str(), q.sort, q.descending), ("%", ItemSort::Size, true));
        assert_eq!((q.kind.as_deref(), q.limit), (Some("event"), 5));
    }

    #[test]
    fn users_filter_sort_and_page() {
        let users = vec![
            user("c@x.test", "done", 100, 0, None),
            user("a@x.test", "syncing", 40, 0, None),
            user("b@x.test", "failed", 10, 2, Some("LOGIN refused")),
            user("d@y.test", "done", 100, 0, None),
        ];
        let emails = |q: &str| -> (usize, Vec<String>) {
            let (n, page) = UserQuery::parse(q).page(&users);
            (n, page.iter().map(|u| u.status.email.clone()).collect())
        };
        assert_eq!(emails("").1, ["a@x.test", "b@x.test", "c@x.test", "d@y.test"]);
        assert_eq!(
            emails("sort=copied&dir=desc").1,
            ["c@x.test", "d@y.test", "a@x.test", "b@x.test"]
        );
        assert_eq!(emails("dir=desc").1, ["d@y.test", "c@x.test", "b@x.test", "a@x.test"]);
        assert_eq!(emails("state=done"), (2, vec!["c@x.test".into(), "d@y.test".into()]));
        assert_eq!(emails("state=problems").1, ["b@x.test"]);
        assert_eq!(emails("state=running").1, ["a@x.test"]);
        assert_eq!(emails("q=REFUSED").1, ["b@x.test"]);
        assert_eq!(emails("q=y.test").1, ["d@y.test"]);
        assert_eq!(
            emails("sort=progress&offset=1&limit=2"),
            (4, vec!["a@x.test".into(), "c@x.test".into()])
        );
    }
}
