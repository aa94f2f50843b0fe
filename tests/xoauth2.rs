//! OAuth logins to the IMAP source (SASL XOAUTH2), as Gmail Workspace and
//! Exchange Online require: a real Dovecot with its oauth2 passdb checks
//! every token against a local OAuth endpoint (RFC 7662 introspection),
//! which also serves an Entra ID style token endpoint for the client
//! credentials flow. The users file's passwords are wrong on purpose: only
//! the token can open the mailbox.

mod common;
mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

use common::{ADMIN_PASSWORD, explain, user};
use support::dovecot::{Dovecot, DovecotOptions};
use support::mailgen;

/// What the local OAuth server saw.
#[derive(Default)]
struct Seen {
    introspected: Vec<String>,
    token_requests: Vec<HashMap<String, String>>,
}

/// A tiny OAuth server on a free loopback port. Introspection: a token is
/// active when `valid` maps it to a login. Token endpoint
/// (`POST /{tenant}/oauth2/v2.0/token`): client credentials with
/// `app-secret` get `app_token`.
fn oauth_server(valid: HashMap<String, String>, app_token: &'static str) -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (valid, record) = (valid.clone(), record.clone());
            // One thread per connection: clients keep theirs open.
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                // Dovecot keeps the connection alive: serve requests until it closes.
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        break;
                    }
                    let mut length = 0;
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        if h == "\r\n" || h.is_empty() {
                            break;
                        }
                        if let Some((n, v)) = h.split_once(':')
                            && n.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let form: HashMap<String, String> = url_decode_form(&String::from_utf8_lossy(&body));
                    let path = request_line.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let reply = if path == "/google/token" {
                        // JWT bearer grant: the user's token is named after
                        // the assertion's subject.
                        record.lock().unwrap().token_requests.push(form.clone());
                        let jwt = form.get("assertion").cloned().unwrap_or_default();
                        let payload = jwt.split('.').nth(1).unwrap_or("");
                        let claims: serde_json::Value = serde_json::from_slice(
                            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                                .unwrap(),
                        )
                        .unwrap();
                        format!(
                            r#"{{"access_token":"gmail-token-for-{}","expires_in":3599,"token_type":"Bearer"}}"#,
                            claims["sub"].as_str().unwrap()
                        )
                    } else if path.ends_with("/oauth2/v2.0/token") {
                        record.lock().unwrap().token_requests.push(form.clone());
                        if form.get("client_secret").map(String::as_str) == Some("app-secret") {
                            format!(r#"{{"token_type":"Bearer","expires_in":3599,"access_token":"{app_token}"}}"#)
                        } else {
                            r#"{"error":"invalid_client"}"#.to_owned()
                        }
                    } else {
                        let token = form.get("token").cloned().unwrap_or_default();
                        record.lock().unwrap().introspected.push(token.clone());
                        match valid.get(&token) {
                            Some(login) => format!(r#"{{"active":true,"username":"{login}"}}"#),
                            None => r#"{"active":false}"#.to_owned(),
                        }
                    };
                    let status = if reply.contains("invalid_client") {
                        "401 Unauthorized"
                    } else {
                        "200 OK"
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                }
            });
        }
    });
    (base, seen)
}

fn url_decode_form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

struct Setup {
    source: Dovecot,
    target: Dovecot,
    dir: tempfile::TempDir,
    email: String,
}

fn setup(introspection: &str) -> Setup {
    let (email, password) = user(1);
    let source = Dovecot::start(DovecotOptions {
        users: vec![(email.clone(), password.clone())],
        oauth2_introspection_url: Some(introspection.to_owned()),
        ..Default::default()
    });
    source.deliver(&email, "INBOX", &mailgen::generate(3, 20, 800));
    let target = Dovecot::start(DovecotOptions {
        users: vec![(email.clone(), password)],
        master: Some(("admin".into(), ADMIN_PASSWORD.into())),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    // The users file's password is wrong: only the token can log in.
    std::fs::write(
        dir.path().join("users.csv"),
        format!("EmailAddress,UserName,Password\r\n{email},{email},not-the-password\r\n"),
    )
    .unwrap();
    Setup {
        source,
        target,
        dir,
        email,
    }
}

fn migrate(s: &Setup, source_auth: &str) -> Output {
    let config = format!(
        "[source]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\nauth = \"xoauth2\"\n{source_auth}\n\n\
         [target]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\
         login = \"{{email}}*admin\"\npassword_env = \"CUTOVER_TEST_ADMIN_PW\"\n\n\
         [state]\npath = \"state.db\"\n",
        s.source.port(),
        s.target.port()
    );
    let path = s.dir.path().join("cutover.toml");
    std::fs::write(&path, config).unwrap();
    // At trace level, into a log file the token must not reach either.
    std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["-vvv", "--log-file", "trace.log"])
        .args(["migrate", "--config", path.to_str().unwrap(), "--users"])
        .arg(s.dir.path().join("users.csv"))
        .env("RUST_LOG", "trace")
        .env("CUTOVER_TEST_ADMIN_PW", ADMIN_PASSWORD)
        .env("CUTOVER_TEST_APP_SECRET", "app-secret")
        .current_dir(s.dir.path())
        .output()
        .unwrap()
}

fn state_dir_has_no(dir: &Path, needle: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let data = std::fs::read(&p).unwrap();
            assert!(
                !data.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} holds the token",
                p.display()
            );
        }
    }
}

#[test]
fn token_command_logs_in_with_xoauth2_and_a_refused_token_fails_that_user() {
    let (email, _) = user(1);
    let token = format!("tok-{email}");
    let (base, seen) = oauth_server(HashMap::from([(token.clone(), email.clone())]), "unused");
    let s = setup(&format!("{base}/introspect"));
    let out = migrate(&s, "token_command = \"printf 'tok-%s' \\\"$CUTOVER_LOGIN\\\"\"");
    assert!(out.status.success(), "{}", explain(&out));
    assert_eq!(s.target.messages(&s.email).len(), 20, "copied with the token's login");
    assert!(
        seen.lock().unwrap().introspected.contains(&token),
        "Dovecot checked our token"
    );
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!output.contains(&token), "the token is never printed");
    let trace = std::fs::read_to_string(s.dir.path().join("trace.log")).unwrap();
    assert!(
        trace.contains("TRACE") || trace.contains("DEBUG"),
        "trace output was written"
    );
    state_dir_has_no(s.dir.path(), &token);
    // Nor the SASL response that carries it, as sent on the wire.
    let sasl = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("user={email}\x01auth=Bearer {token}\x01\x01"),
    );
    state_dir_has_no(s.dir.path(), &sasl);

    // A token the server does not accept fails the user with a clear
    // message, without the token in it.
    std::fs::remove_file(s.dir.path().join("state.db")).unwrap();
    let out = migrate(&s, "token_command = \"echo expired-token-123\"");
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(output.contains("XOAUTH2 login as"), "{output}");
    assert!(!output.contains("expired-token-123"), "{output}");
}

#[test]
fn microsoft_client_credentials_get_one_app_token_for_exchange_imap() {
    let (email, _) = user(1);
    let (base, seen) = oauth_server(
        HashMap::from([("app-token-xyz".to_owned(), email.clone())]),
        "app-token-xyz",
    );
    let s = setup(&format!("{base}/introspect"));
    let out = migrate(
        &s,
        &format!(
            "oauth_tenant_id = \"contoso.onmicrosoft.com\"\noauth_client_id = \"app-1\"\n\
             oauth_client_secret_env = \"CUTOVER_TEST_APP_SECRET\"\noauth_authority = \"{base}\""
        ),
    );
    assert!(out.status.success(), "{}", explain(&out));
    assert_eq!(s.target.messages(&s.email).len(), 20);
    let seen = seen.lock().unwrap();
    let req = seen.token_requests.first().expect("a token request");
    assert_eq!(req["grant_type"], "client_credentials");
    assert_eq!(req["client_id"], "app-1");
    assert_eq!(req["scope"], "https://outlook.office365.com/.default");
    assert!(
        seen.token_requests.len() <= 2,
        "the app token is cached, not asked for per connection: {}",
        seen.token_requests.len()
    );
    assert!(seen.introspected.iter().all(|t| t == "app-token-xyz"));
}

#[test]
fn a_google_service_account_gets_a_token_per_user_with_a_signed_jwt() {
    let (email, _) = user(1);
    let (base, seen) = oauth_server(
        HashMap::from([(format!("gmail-token-for-{email}"), email.clone())]),
        "unused",
    );
    let s = setup(&format!("{base}/introspect"));
    let key_pem =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/graph-test-key.pem")).unwrap();
    let key_file = serde_json::json!({
        "type": "service_account",
        "client_email": "migrator@project.iam.gserviceaccount.com",
        "private_key": key_pem,
        "token_uri": format!("{base}/google/token"),
    });
    std::fs::write(s.dir.path().join("sa.json"), key_file.to_string()).unwrap();
    let out = migrate(&s, "oauth_service_account_file = \"sa.json\"");
    assert!(out.status.success(), "{}", explain(&out));
    assert_eq!(s.target.messages(&s.email).len(), 20);

    let seen = seen.lock().unwrap();
    let req = seen.token_requests.first().expect("a token request");
    assert_eq!(req["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
    let jwt = &req["assertion"];
    let parts: Vec<&str> = jwt.split('.').collect();
    let b64 = |p: &str| base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, p).unwrap();
    let header: serde_json::Value = serde_json::from_slice(&b64(parts[0])).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&b64(parts[1])).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["sub"], email.as_str(), "delegated to the user");
    assert_eq!(claims["iss"], "migrator@project.iam.gserviceaccount.com");
    assert_eq!(claims["scope"], "https://mail.google.com/");
    assert_eq!(claims["aud"], format!("{base}/google/token"));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    // The signature verifies with the service account's public key.
    let der = rustls_pemfile::private_key(&mut key_pem.as_bytes()).unwrap().unwrap();
    let pair = match der {
        tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(k) => {
            ring::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der())
        }
        tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs1(k) => {
            ring::signature::RsaKeyPair::from_der(k.secret_pkcs1_der())
        }
        _ => panic!("RSA test key"),
    }
    .unwrap();
    use ring::signature::KeyPair;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref())
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &b64(parts[2]))
        .expect("RS256 signature by the service account key");
}

#[test]
fn the_imap_target_logs_in_with_xoauth2_too() {
    let (email, password) = user(1);
    let token = format!("target-tok-{email}");
    let (base, seen) = oauth_server(HashMap::from([(token.clone(), email.clone())]), "unused");
    let source = Dovecot::start(DovecotOptions {
        users: vec![(email.clone(), password.clone())],
        ..Default::default()
    });
    source.deliver(&email, "INBOX", &mailgen::generate(4, 12, 800));
    // No master user and no password for cutover: only the token opens it.
    let target = Dovecot::start(DovecotOptions {
        users: vec![(email.clone(), "target-only-password".into())],
        oauth2_introspection_url: Some(format!("{base}/introspect")),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.csv"),
        format!("EmailAddress,UserName,Password\r\n{email},{email},{password}\r\n"),
    )
    .unwrap();
    let config = format!(
        "[source]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\n\
         [target]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\
         auth = \"xoauth2\"\ntoken_command = \"printf 'target-tok-%s' \\\"$CUTOVER_LOGIN\\\"\"\n\n\
         [state]\npath = \"state.db\"\n",
        source.port(),
        target.port()
    );
    let path = dir.path().join("cutover.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["migrate", "--config", path.to_str().unwrap(), "--users"])
        .arg(dir.path().join("users.csv"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", explain(&out));
    assert_eq!(target.messages(&email).len(), 12);
    assert!(seen.lock().unwrap().introspected.contains(&token));
}
