//! The dashboard's token: where it comes from, and whether a request
//! carries it. Only digests are kept and compared (in constant time), and
//! the cookie holds a digest of the token, not the token: the token
//! itself is never written anywhere by the dashboard.

use std::path::Path;

use sha2::{Digest, Sha256};

/// The environment variable that may hold the token.
pub const TOKEN_ENV: &str = "CUTOVER_SERVE_TOKEN";
/// The cookie a first page load with `?token=` sets.
pub const COOKIE: &str = "cutover_session";
/// Shorter tokens are refused: a guessable token protects nothing.
pub const MIN_TOKEN_LEN: usize = 16;

/// What to do to make a token, in the words of every token error.
const HOW: &str =
    "make one with `openssl rand -hex 32 > serve.token && chmod 600 serve.token` and pass --token-file serve.token";

/// The accepted token, as digests.
#[derive(Clone)]
pub struct Token {
    /// SHA-256 of the token, for the header and the query parameter.
    digest: [u8; 32],
    /// The cookie's value: hex of a digest derived from the token.
    cookie: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

fn sha(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Whether two digests are equal, looking at every byte whatever the
/// first difference (the time taken says nothing about the token).
pub fn equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= std::hint::black_box(x ^ y);
    }
    diff == 0
}

impl Token {
    pub fn new(token: &str) -> Result<Token, String> {
        let token = token.trim();
        if token.is_empty() {
            return Err(format!("the dashboard token is empty; {HOW}"));
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "the dashboard token is too short (at least {MIN_TOKEN_LEN} characters); {HOW}"
            ));
        }
        if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!("the dashboard token holds spaces or control characters; {HOW}"));
        }
        let cookie: String = sha(&[b"cutover serve cookie\0", token.as_bytes()])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Token {
            digest: sha(&[token.as_bytes()]),
            cookie,
        })
    }

    /// The token from `--token-file` (its first line), or else from
    /// [`TOKEN_ENV`]; `None` when neither gives one.
    pub fn load(file: Option<&Path>) -> Result<Option<Token>, String> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --token-file {}: {e}", path.display()))?;
            warn_if_readable_by_others(path);
            let first = text.lines().next().unwrap_or("");
            return Token::new(first)
                .map(Some)
                .map_err(|e| format!("--token-file {}: {e}", path.display()));
        }
        match std::env::var(TOKEN_ENV) {
            Ok(v) if !v.trim().is_empty() => Token::new(&v).map(Some).map_err(|e| format!("{TOKEN_ENV}: {e}")),
            _ => Ok(None),
        }
    }

    /// Whether `candidate` is the token.
    pub fn matches(&self, candidate: &str) -> bool {
        equal(&self.digest, &sha(&[candidate.trim().as_bytes()]))
    }

    /// Whether `value` is the cookie this token sets.
    pub fn matches_cookie(&self, value: &str) -> bool {
        equal(&sha(&[self.cookie.as_bytes()]), &sha(&[value.trim().as_bytes()]))
    }

    /// The `Set-Cookie` header value of a session: HttpOnly, SameSite=Strict,
    /// for this server only.
    pub fn set_cookie(&self) -> String {
        format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", self.cookie)
    }
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: --token-file {} can be read by other users; chmod 600 it",
            path.display()
        );
    }
}

/// Whether a request carries the token: `Authorization: Bearer`, the
/// session cookie, or (`query_token`, the page only) `?token=`.
pub fn authorized(
    token: &Token,
    authorization: Option<&str>,
    cookies: Option<&str>,
    query_token: Option<&str>,
) -> bool {
    if let Some(bearer) = authorization.and_then(|a| {
        a.split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t)
    }) && token.matches(bearer)
    {
        return true;
    }
    if let Some(cookies) = cookies {
        for c in cookies.split(';') {
            if let Some((name, value)) = c.trim().split_once('=')
                && name == COOKIE
                && token.matches_cookie(value)
            {
                return true;
            }
        }
    }
    query_token.is_some_and(|t| token.matches(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "0123456789abcdef0123";

    #[test]
    fn tokens_are_checked() {
        let t = Token::new(T).unwrap();
        assert!(t.matches(T) && !t.matches("0123456789abcdef0124") && !t.matches(""));
        assert!(authorized(&t, Some(&format!("Bearer {T}")), None, None));
        assert!(authorized(&t, Some(&format!("bearer {T}")), None, None));
        assert!(!authorized(&t, Some(&format!("Basic {T}")), None, None));
        assert!(!authorized(&t, Some("Bearer nope-nope-nope-nope"), None, None));
        assert!(authorized(&t, None, None, Some(T)));
        assert!(!authorized(&t, None, None, None));
        // The cookie holds a digest, not the token; the token is no cookie.
        let set = t.set_cookie();
        assert!(!set.contains(T) && set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        let value = set.split(';').next().unwrap();
        assert!(authorized(&t, None, Some(&format!("a=b; {value}")), None));
        assert!(!authorized(&t, None, Some(&format!("{COOKIE}={T}")), None));
        assert!(!format!("{t:?}").contains(T));
    }

    #[test]
    fn weak_tokens_are_refused_with_what_to_do() {
        for bad in ["", "   ", "short", "0123456789abcdef 0123"] {
            let e = Token::new(bad).unwrap_err();
            assert!(e.contains("openssl rand"), "{e}");
        }
        assert!(equal(&[7; 32], &[7; 32]) && !equal(&[7; 32], &[8; 32]));
    }
}
