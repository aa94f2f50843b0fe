//! Real Radicale (3.1, Debian's `radicale` package) as a CalDAV/CardDAV
//! test fixture, for the same reason Dovecot is the IMAP one: what matters
//! is what a real server does with sync tokens, ETags, multigets and
//! preconditions, not what a mock of our own assumptions would do.
//!
//! Each [`Radicale`] runs `/usr/bin/radicale` (Debian's python3) from a
//! generated config in its own temporary directory, on a free loopback
//! port, with plain-text htpasswd users and `owner_only` rights: user
//! `alice`'s collections live at `/alice/NAME/` and only she may read them.
//! It is stopped through the pid of the child we spawned when dropped.
//!
//! Test setup goes over HTTP with a tiny blocking client of its own
//! ([`Radicale::mkcalendar`], [`Radicale::mkaddressbook`], [`Radicale::put`],
//! [`Radicale::delete`]), never through the code under test.
//!
//! Requires Debian's `radicale`: `scripts/install-deps` installs it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Radicale {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
    users: Vec<(String, String)>,
}

impl Radicale {
    /// Starts Radicale with these `(login, password)` users.
    pub fn start(users: &[(&str, &str)]) -> Radicale {
        assert!(
            Path::new("/usr/bin/radicale").exists(),
            "/usr/bin/radicale is missing: run scripts/install-deps (Debian package radicale)"
        );
        let dir = tempfile::Builder::new()
            .prefix("radicale-")
            .tempdir()
            .expect("temp dir");
        let htpasswd: String = users.iter().map(|(u, p)| format!("{u}:{p}\n")).collect();
        std::fs::write(dir.path().join("users"), htpasswd).expect("write users");
        std::fs::create_dir(dir.path().join("collections")).expect("mkdir collections");
        let port = free_port();
        let config = format!(
            "[server]\nhosts = 127.0.0.1:{port}\n\
             [auth]\ntype = htpasswd\nhtpasswd_filename = {users}\nhtpasswd_encryption = plain\ndelay = 0\n\
             [storage]\nfilesystem_folder = {storage}\n\
             [rights]\ntype = owner_only\n\
             [logging]\nlevel = info\n",
            users = dir.path().join("users").display(),
            storage = dir.path().join("collections").display(),
        );
        let config_path = dir.path().join("config");
        std::fs::write(&config_path, config).expect("write config");
        let log = std::fs::File::create(dir.path().join("log")).expect("log file");
        let child = Command::new("/usr/bin/radicale")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start /usr/bin/radicale");
        let mut server = Radicale {
            port,
            child,
            dir,
            users: users.iter().map(|(u, p)| (u.to_string(), p.to_string())).collect(),
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "Radicale exited ({status}) before listening; its log:\n{}",
                    std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "Radicale did not listen on 127.0.0.1:{} within {START_TIMEOUT:?}; its log:\n{}",
            self.port,
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server root, as an admin would give it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn password(&self, user: &str) -> &str {
        &self.users.iter().find(|(u, _)| u == user).expect("a fixture user").1
    }

    /// Creates `/USER/NAME/` as a calendar holding `components` (e.g.
    /// `["VEVENT"]`, `["VTODO"]`).
    pub fn mkcalendar(&self, user: &str, name: &str, display_name: &str, components: &[&str]) -> String {
        let display_name = escape(display_name);
        let comps: String = components.iter().map(|c| format!(r#"<C:comp name="{c}"/>"#)).collect();
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:I="http://apple.com/ns/ical/"><D:set><D:prop><D:displayname>{display_name}</D:displayname><I:calendar-color>#3366CCFF</I:calendar-color><C:supported-calendar-component-set>{comps}</C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"#
        );
        let path = format!("/{user}/{name}/");
        let (status, _, text) = self.request(user, "MKCALENDAR", &path, &[], Some(&body));
        assert_eq!(status, 201, "MKCALENDAR {path}: {text}");
        path
    }

    /// Creates `/USER/NAME/` as an address book (extended MKCOL).
    pub fn mkaddressbook(&self, user: &str, name: &str, display_name: &str) -> String {
        let display_name = escape(display_name);
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><D:mkcol xmlns:D="DAV:" xmlns:A="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype><D:collection/><A:addressbook/></D:resourcetype><D:displayname>{display_name}</D:displayname></D:prop></D:set></D:mkcol>"#
        );
        let path = format!("/{user}/{name}/");
        let (status, _, text) = self.request(user, "MKCOL", &path, &[], Some(&body));
        assert_eq!(status, 201, "MKCOL {path}: {text}");
        path
    }

    /// Stores `body` at `path` (unconditionally) and returns its ETag.
    pub fn put(&self, user: &str, path: &str, body: &str) -> String {
        let content_type = if path.ends_with(".vcf") {
            "text/vcard"
        } else {
            "text/calendar"
        };
        let (status, headers, text) = self.request(user, "PUT", path, &[("Content-Type", content_type)], Some(body));
        assert!(status == 201 || status == 204, "PUT {path}: {status} {text}");
        header(&headers, "etag").unwrap_or_default()
    }

    /// How many `method` requests for `path` the server has logged (it
    /// logs each request line at level info).
    pub fn requests(&self, method: &str, path: &str) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        let needle = format!("{method} request for {path:?}");
        let needle_single = format!("{method} request for '{path}'");
        log.lines()
            .filter(|l| l.contains(&needle) || l.contains(&needle_single))
            .count()
    }

    /// Writes items straight into a collection's storage directory, for
    /// tests that need many (a PUT each would take seconds): Radicale reads
    /// them like items stored over HTTP. `collection` is `/USER/NAME/` as
    /// made by [`Radicale::mkcalendar`] or [`Radicale::mkaddressbook`];
    /// `items` are (file name, body).
    pub fn store_directly(&self, collection: &str, items: &[(String, String)]) {
        let dir = self
            .dir
            .path()
            .join("collections/collection-root")
            .join(collection.trim_matches('/'));
        assert!(dir.is_dir(), "{collection} does not exist: create it first");
        for (name, body) in items {
            std::fs::write(dir.join(name), body).unwrap_or_else(|e| panic!("write {name}: {e}"));
        }
    }

    /// Every item `user` holds, as (href, text), read straight from the
    /// storage directory: how a test finds what was written into an
    /// account without going through the code under test.
    pub fn stored(&self, user: &str) -> Vec<(String, String)> {
        let root = self.dir.path().join("collections/collection-root").join(user);
        let mut out = Vec::new();
        for collection in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            if !collection.path().is_dir() {
                continue;
            }
            let name = collection.file_name().to_string_lossy().into_owned();
            for item in std::fs::read_dir(collection.path()).into_iter().flatten().flatten() {
                let file = item.file_name().to_string_lossy().into_owned();
                // Radicale's own files (.Radicale.props, caches) start with a dot.
                if file.starts_with('.') || !item.path().is_file() {
                    continue;
                }
                let text = std::fs::read_to_string(item.path()).unwrap_or_default();
                out.push((format!("/{user}/{name}/{file}"), text));
            }
        }
        out.sort();
        out
    }

    pub fn delete(&self, user: &str, path: &str) {
        let (status, _, text) = self.request(user, "DELETE", path, &[], None);
        assert!((200..300).contains(&status), "DELETE {path}: {status} {text}");
    }

    /// GET of one item's text, `None` when it does not exist.
    pub fn get(&self, user: &str, path: &str) -> Option<String> {
        let (status, _, text) = self.request(user, "GET", path, &[], None);
        (status == 200).then_some(text)
    }

    /// One HTTP/1.1 request with Basic auth: (status, raw headers, body).
    fn request(
        &self,
        user: &str,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, String, String) {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", self.password(user)));
        let body = body.unwrap_or("");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Basic {auth}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to Radicale");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read Radicale's answer");
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (headers, text) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = headers
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer from Radicale: {raw:?}"));
        (status, headers.to_owned(), text.to_owned())
    }
}

/// Text safe inside an XML element.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn header(headers: &str, name: &str) -> Option<String> {
    headers.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

impl Drop for Radicale {
    fn drop(&mut self) {
        // Our own child only, by its pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A small, realistic VEVENT with this UID and SUMMARY.
pub fn event(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//cutover tests//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n\
         DTSTAMP:20240105T090000Z\r\nDTSTART;TZID=Europe/Berlin:20240110T100000\r\n\
         DTEND;TZID=Europe/Berlin:20240110T110000\r\nSUMMARY:{summary}\r\nLOCATION:Room 4 & 5\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// A small VTODO with this UID.
pub fn todo(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//cutover tests//EN\r\nBEGIN:VTODO\r\nUID:{uid}\r\n\
         DTSTAMP:20240105T090000Z\r\nSUMMARY:{summary}\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
}

/// A small vCard 3.0 with this UID and name.
pub fn contact(uid: &str, name: &str) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n\
         EMAIL;TYPE=INTERNET:{uid}@example.com\r\nEND:VCARD\r\n"
    )
}
