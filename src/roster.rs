//! The users CSV, in the format of Microsoft's IMAP migration
//! (`EmailAddress,UserName,Password`, optional `UserRoot`, and for IMAP
//! targets without an admin login `TargetUserName,TargetPassword`), so an
//! admin can reuse the file they already have. A file with any bad row is
//! refused whole, before anything is copied, with every problem listed by
//! line number.

use std::collections::HashMap;
use std::path::Path;

use crate::secret::Secret;

/// One mailbox to migrate.
#[derive(Clone, Debug)]
pub struct UserJob {
    /// The target mailbox and the key of this user everywhere.
    pub email: String,
    /// The source login, passed to the server as is (admin forms such as
    /// `user*admin` included).
    pub username: String,
    pub password: Secret,
    pub user_root: Option<String>,
    pub target_username: Option<String>,
    pub target_password: Option<Secret>,
    /// Line of the CSV the row came from, for messages.
    pub line: u64,
}

impl UserJob {
    /// What the source is opened with.
    pub fn source_login(&self) -> crate::model::SourceLogin {
        crate::model::SourceLogin {
            email: self.email.clone(),
            login: self.username.clone(),
            secret: self.password.clone(),
            user_root: self.user_root.clone(),
        }
    }

    /// What the target is opened with.
    pub fn target_login(&self) -> crate::model::TargetLogin {
        crate::model::TargetLogin {
            email: self.email.clone(),
            login: self.target_username.clone(),
            secret: self.target_password.clone(),
            users_file_line: self.line,
        }
    }
}

/// Why a users file was refused: every problem found, each naming its
/// line, so the admin fixes them all in one go.
#[derive(Debug, thiserror::Error)]
#[error(
    "users file {file} was refused, nothing was copied; fix these and run again:{}",
    problems.iter().map(|p| format!("\n  {p}")).collect::<String>()
)]
pub struct RosterError {
    pub file: String,
    pub problems: Vec<String>,
}

const REQUIRED: [&str; 3] = ["emailaddress", "username", "password"];
const OPTIONAL: [&str; 3] = ["userroot", "targetusername", "targetpassword"];

pub fn read_users_file(path: &Path) -> Result<Vec<UserJob>, RosterError> {
    let data = std::fs::read(path).map_err(|e| RosterError {
        file: path.display().to_string(),
        problems: vec![format!("cannot read it: {e}")],
    })?;
    parse_users(&data).map_err(|problems| RosterError {
        file: path.display().to_string(),
        problems,
    })
}

/// Parses the CSV bytes; on failure returns every problem found.
pub fn parse_users(data: &[u8]) -> Result<Vec<UserJob>, Vec<String>> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    // Fields are trimmed one by one below: passwords are kept as written,
    // spaces included, or the login would fail.
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::None)
        .from_reader(data);
    let headers = match reader.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(vec![format!("line 1: cannot read the header: {e}")]),
    };
    let mut columns: HashMap<String, usize> = HashMap::new();
    let mut problems = Vec::new();
    // A file without its header line has a user where the header should
    // be: say so instead of listing that user's fields (and password) as
    // unknown columns.
    if headers
        .iter()
        .any(|raw| looks_like_address(String::from_utf8_lossy(raw).trim()))
    {
        return Err(vec![
            "line 1 is a user, not the header: add the header line EmailAddress,UserName,Password (and optionally UserRoot, TargetUserName, TargetPassword) as the first line".to_owned(),
        ]);
    }
    for (i, raw) in headers.iter().enumerate() {
        let name = String::from_utf8_lossy(raw).trim().to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        if !REQUIRED.contains(&name.as_str()) && !OPTIONAL.contains(&name.as_str()) {
            // Only a cell that looks like a misspelt column name is shown;
            // anything else may be a password.
            let shown = if plausible_column_name(&name) {
                format!("{:?}", String::from_utf8_lossy(raw).trim())
            } else {
                format!("number {} (its text is not shown: it may be a password)", i + 1)
            };
            problems.push(format!(
                "line 1: unknown column {shown} (expected EmailAddress, UserName, Password, and optionally UserRoot, TargetUserName, TargetPassword)"
            ));
            continue;
        }
        if columns.insert(name.clone(), i).is_some() {
            problems.push(format!("line 1: column {name:?} appears twice"));
        }
    }
    for required in REQUIRED {
        if !columns.contains_key(required) {
            problems.push(format!(
                "line 1: missing column {:?} (the header must be EmailAddress,UserName,Password)",
                display_column(required)
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let mut users = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    // The csv crate's own line count drifts on CRLF files; count newlines
    // up to each record's first byte instead.
    let mut lines = LineCounter::new(data);
    for record in reader.byte_records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| lines.line_at(p.byte()));
                problems.push(format!("line {line}: cannot be read: {e}"));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| lines.line_at(p.byte()));
        if record.iter().all(|f| f.trim_ascii().is_empty()) {
            continue;
        }
        if record.len() < headers.len() {
            problems.push(format!(
                "line {line}: has {} fields, the header has {}",
                record.len(),
                headers.len()
            ));
            continue;
        }
        let field = |name: &str| -> Result<Option<String>, String> {
            let Some(&i) = columns.get(name) else {
                return Ok(None);
            };
            let raw = record.get(i).unwrap_or_default();
            let secret = name == "password" || name == "targetpassword";
            match std::str::from_utf8(raw).map(|s| if secret { s } else { s.trim() }) {
                Ok("") => Ok(None),
                Ok(s) => Ok(Some(s.to_owned())),
                Err(_) => Err(format!(
                    "line {line}: {} is not valid UTF-8 (save the file as UTF-8)",
                    display_column(name)
                )),
            }
        };
        let mut row_problems = Vec::new();
        let mut get = |name: &str| match field(name) {
            Ok(v) => v,
            Err(p) => {
                row_problems.push(p);
                None
            }
        };
        let email = get("emailaddress");
        let username = get("username");
        let password = get("password");
        let user_root = get("userroot");
        let target_username = get("targetusername");
        let target_password = get("targetpassword");
        match &email {
            None => row_problems.push(format!("line {line}: EmailAddress is empty")),
            Some(e) if !looks_like_address(e) => {
                row_problems.push(format!("line {line}: EmailAddress {e:?} is not an email address"))
            }
            Some(e) => {
                if let Some(first) = seen.insert(e.to_ascii_lowercase(), line) {
                    row_problems.push(format!("line {line}: EmailAddress {e} is already on line {first}"));
                }
            }
        }
        if username.is_none() {
            row_problems.push(format!("line {line}: UserName is empty"));
        }
        if password.is_none() {
            row_problems.push(format!("line {line}: Password is empty"));
        }
        if !row_problems.is_empty() {
            problems.extend(row_problems);
            continue;
        }
        users.push(UserJob {
            email: email.unwrap_or_default(),
            username: username.unwrap_or_default(),
            password: Secret::new(password.unwrap_or_default()),
            user_root,
            target_username,
            target_password: target_password.map(Secret::new),
            line,
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if users.is_empty() {
        return Err(vec!["the file lists no users".to_owned()]);
    }
    Ok(users)
}

/// Line numbers from byte offsets, counted forward as records come in order.
struct LineCounter<'a> {
    data: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(data: &'a [u8]) -> Self {
        LineCounter {
            data,
            offset: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, byte: u64) -> u64 {
        let mut target = (byte as usize).min(self.data.len());
        // A record may be reported as starting on the line end before it.
        while target < self.data.len() && matches!(self.data[target], b'\r' | b'\n') {
            target += 1;
        }
        if target < self.offset {
            self.offset = 0;
            self.line = 1;
        }
        self.line += self.data[self.offset..target].iter().filter(|&&b| b == b'\n').count() as u64;
        self.offset = target;
        self.line
    }
}

fn looks_like_address(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// Whether an unknown header cell looks like a misspelt column name (a few
/// letters off one of ours), so that showing it cannot leak a password.
fn plausible_column_name(name: &str) -> bool {
    name.len() <= 20
        && name
            .chars()
            .all(|c| c.is_ascii_alphabetic() || c == ' ' || c == '_' || c == '-')
        && REQUIRED
            .iter()
            .chain(&OPTIONAL)
            .any(|known| edit_distance(&name.replace([' ', '_', '-'], ""), known) <= 3)
}

/// Levenshtein distance between two short ASCII strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<u8> = b.bytes().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

fn display_column(name: &str) -> &'static str {
    match name {
        "emailaddress" => "EmailAddress",
        "username" => "UserName",
        "password" => "Password",
        "userroot" => "UserRoot",
        "targetusername" => "TargetUserName",
        _ => "TargetPassword",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bom_crlf_quotes_and_any_header_case() {
        let csv = "\u{feff}emailaddress,USERNAME,Password,UserRoot\r\n\
                   a@x.test,a*admin,\"pa,ss\"\"word\",\r\n\
                   b@x.test,b,secret,shared/b\r\n";
        let users = parse_users(csv.as_bytes()).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].email, "a@x.test");
        assert_eq!(users[0].username, "a*admin");
        assert_eq!(users[0].password.expose(), "pa,ss\"word");
        assert_eq!(users[0].user_root, None);
        assert_eq!(users[1].user_root.as_deref(), Some("shared/b"));
        assert_eq!(users[1].line, 3);
    }

    #[test]
    fn reports_every_bad_row_with_its_line() {
        let csv = "EmailAddress,UserName,Password\n\
                   a@x.test,a,p\n\
                   ,b,p\n\
                   A@X.test,a2,p\n\
                   c@x.test,,p\n\
                   d@x.test,d\n";
        let problems = parse_users(csv.as_bytes()).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].starts_with("line 3: EmailAddress is empty"));
        assert!(problems[1].contains("line 4") && problems[1].contains("already on line 2"));
        assert!(problems[2].starts_with("line 5: UserName is empty"));
        assert!(problems[3].starts_with("line 6: has 2 fields"));
    }

    #[test]
    fn refuses_missing_columns_and_empty_files() {
        let problems = parse_users(b"EmailAddress,Password\na@x.test,p\n").unwrap_err();
        assert!(problems[0].contains("missing column \"UserName\""), "{problems:?}");
        assert!(parse_users(b"EmailAddress,UserName,Password\n").is_err());
        assert!(parse_users(b"").is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let users = parse_users(b"EmailAddress,UserName,Password\na@x.test,a,TopSecret1\n").unwrap();
        assert!(!format!("{users:?}").contains("TopSecret1"));
    }

    #[test]
    fn a_file_without_its_header_never_shows_a_field_of_the_first_user() {
        for csv in [
            "alice@x.test,alice,S3cretPw!\nbob@x.test,bob,Other1\n",
            "alice,alice@x.test,hunter2\n",
        ] {
            let problems = parse_users(csv.as_bytes()).unwrap_err();
            let text = problems.join("\n");
            assert!(text.contains("not the header"), "{text}");
            for field in ["S3cretPw!", "hunter2", "alice", "Other1"] {
                assert!(!text.contains(field), "{field:?} shown in {text}");
            }
        }
    }

    #[test]
    fn unknown_columns_are_named_only_when_they_look_like_a_misspelt_name() {
        let problems = parse_users(b"EmailAddress,UserName,Pasword,Tr0ub4dor&3\na@x.test,a,p,q\n").unwrap_err();
        let text = problems.join("\n");
        assert!(text.contains("unknown column \"Pasword\""), "{text}");
        assert!(text.contains("unknown column number 4"), "{text}");
        assert!(!text.contains("Tr0ub4dor&3"), "{text}");
        // A plain word far from every column name is not shown either.
        let problems = parse_users(b"EmailAddress,UserName,Password,correcthorse\na@x.test,a,p,q\n").unwrap_err();
        assert!(!problems.join("\n").contains("correcthorse"), "{problems:?}");
    }

    #[test]
    fn passwords_keep_their_spaces_other_fields_are_trimmed() {
        let csv = "EmailAddress , UserName,Password,TargetUserName,TargetPassword\n \
                   a@x.test , a ,  two  spaces ,t , pw \n";
        let users = parse_users(csv.as_bytes()).unwrap();
        assert_eq!(users[0].email, "a@x.test");
        assert_eq!(users[0].username, "a");
        assert_eq!(users[0].password.expose(), "  two  spaces ");
        assert_eq!(users[0].target_username.as_deref(), Some("t"));
        assert_eq!(users[0].target_password.as_ref().map(|p| p.expose()), Some(" pw "));
    }
}
