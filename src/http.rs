//! What cutover's two HTTP clients have in common: Microsoft Graph
//! ([`crate::target::graph`]) and the OAuth token endpoints
//! ([`crate::oauth`]). Both must read Retry-After the same way, turn a
//! request that got no answer into an error that says what to check without
//! leaking a URL (upload-session URLs carry a credential), and accept only
//! https base URLs from the configuration (plain http to loopback, for tests
//! and emulators). Kept apart so that neither client depends on the other.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::error::Error;
use crate::imap::is_loopback_host;

/// Retry-After in seconds, or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let secs = (when.timestamp() - chrono::Utc::now().timestamp()).max(0);
    Some(Duration::from_secs(secs as u64))
}

/// A request that got no HTTP answer, as a transient error naming `what`,
/// and whether the server may have acted on it anyway (a timeout or a
/// reset after the request was sent, unlike a refused connection).
pub fn transport_error(what: &str, e: &reqwest::Error, timeout: Duration) -> (Error, bool) {
    // The URL is dropped from the message: upload-session URLs carry a
    // credential in their query.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    let text = strip_urls(&text);
    let (message, maybe_applied) = if e.is_timeout() {
        (
            format!("{what}: no answer within {} s; retrying", timeout.as_secs()),
            true,
        )
    } else if e.is_connect() {
        (
            format!("{what}: cannot connect ({text}); check network access to the endpoint"),
            false,
        )
    } else {
        (format!("{what}: connection failed ({text})"), true)
    };
    (Error::transient(message), maybe_applied)
}

/// Removes anything that looks like a URL from an error text.
fn strip_urls(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            let w2 = w.trim_start_matches(['(', '"', '\'']);
            if w2.starts_with("http://") || w2.starts_with("https://") {
                "[url]"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks the configuration value `[section] key = value` as an https base
/// URL (plain http only to loopback, as for IMAP) and returns it without a
/// trailing slash.
pub fn base_url(section: &str, key: &str, value: &str) -> Result<String, String> {
    let url =
        reqwest::Url::parse(value.trim()).map_err(|e| format!("[{section}] {key} = {value:?} is not a URL: {e}"))?;
    let host = url.host_str().unwrap_or("");
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(host) => {}
        "http" => {
            return Err(format!(
                "[{section}] {key} = {value:?}: plain http is only allowed to loopback addresses; use https"
            ));
        }
        other => {
            return Err(format!("[{section}] {key} = {value:?}: scheme {other} is not http(s)"));
        }
    }
    if host.is_empty()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(format!(
            "[{section}] {key} = {value:?} must be a plain base URL such as https://graph.microsoft.com"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "12".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(12)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        h.insert(RETRY_AFTER, later.parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(d >= Duration::from_secs(118) && d <= Duration::from_secs(120), "{d:?}");
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn urls_never_reach_error_texts() {
        let t =
            strip_urls("error sending request for url (https://outlook.office.com/api/upload?authtoken=SECRET): reset");
        assert!(!t.contains("SECRET"), "{t}");
    }
}
