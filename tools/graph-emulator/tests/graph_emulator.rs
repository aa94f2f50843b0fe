//! Integration tests of the Graph emulator (`tools/graph-emulator`).
//!
//! Each test starts the real binary on port 0, reads the port from its first
//! stdout line and talks HTTP to it with reqwest, asserting the documented
//! Graph behaviour the product relies on.

// The same harness cutover's own tests start the emulator with.
mod common;

#[allow(dead_code)]
#[path = "../../../tests/support/emulator.rs"]
mod emulator;
use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use common::{batch_statuses, error_code, send_json};
use emulator::{CLIENT, Emulator, RunningEmulator, TENANT};
const SECRET: &str = "s3cret-value";
const USER: &str = "alice@contoso.test";

/// Test-only key pair: the certificate is given to the emulator, the key signs assertions.
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDKdwUZbsR+AiJr\n\
gVLw0NzjXXVsqEt1gjBxeX/OS3BP1cg1am8LG8HhkVc8X+u8iGaMF67yEBeA2Suy\n\
qMLSq+aXAc/sYMlJBc1A8yMT9HJzRxTpMAwWC6Jc9Ldehel6ZjirkRAZvQo4YXlX\n\
EsXe+3Y0cOoqPGgDVnmc2+KCrz5jQGjjk6P1rVqNsY4/T4uPBN4XPG+DJkr8XsNn\n\
VL1J7Q/g7rDOcNa+zE+70PRt0iaX7vJMarcxrFQkCmJrnBojpxcU5Oc+btcxvlTp\n\
OscvdoYSZe7PyjeamuQGxB2ng+oswTl49Oh0s+Bggu2yMds9IO3S4O4F80ZCW6sy\n\
B1/GUSxNAgMBAAECggEAOC0d9RiO3IerFTkk0jyhjVR5KFTp2wjseA/GLm8wEna2\n\
vltxxBtHiFbTZaUXu4/9JBHOMMvWOaIIReIdbGbV7EBMeMHCF8jMUqEjsn2449Nt\n\
MeZq9BL2UeR0nH17csK6JqBxXzLcixhAmrBSxrPu8E4EKwPnuEVeKO+5wZjuLotJ\n\
+SLIRqA3TGXVN6Ec1hT+aF3PYy38/K0Ce9xZdXebSEfgh/vGLGX5+hehWODIjG+U\n\
VevJzowKZLiMtOQzNe3TmD900PcM9D09PACzNWLgdv8Dg7Em/aph1z+xNqD4rs6U\n\
eOd79yDXRIunyWMLz0Xq3PNHTCViejh4XcxSth2s4QKBgQDyX9DnNRVDJD2Lez8N\n\
4Cvv89ogyXFKihqPV0jPL4U5N2JosPeG/bPuGyGoBFp4owWooFHq0T4Cqnd2EdLg\n\
A7/3ylAZR8wTVD5eCMwllhSdQZEcuvvZDI8hi9G51z5FFtbJmVs3ZoIN3M0nCCyw\n\
m9nxyg2ZMIPxVwmS+Qd6Yt4/0wKBgQDV2NbgqQxZ6MLwcYhgEtV8/FsaVxVLh9zS\n\
92XYALY3TCLaFL2zpst697jvmcEXht+XTp155rZF+e06xlhftj6cjyC6XEh3y8lg\n\
RxBfvVZW01EDJfjnhnsKpp/UA1+r2KhHcqKFQ2Y3WhwXryk/GGlrCzeCV8pacYer\n\
HKoRR0lvXwKBgQDrTKn6TEaAEEbPiq8EQYVmRk6VVftuafSvBAXjXjbv/RzElkk3\n\
/EUZ+60I+HD8fQeZVUsxtEGHRQcE0PjwEbPkU7y/TjyI51hE4jWOp80LfgPq6Hxn\n\
kxHBd4P770K8wBd1UDSF7DaGTr28DuuT6ToEyiu5dKgjPGRHEwx3fFRXkQKBgCZD\n\
C/9af9k+alK3HZ2DASvBw1MtLaQ8BOjCVziUuAWg28OFXoPcXh/8XtyP+BqLiUn7\n\
SPXcr9RJaYbQolNNulosycBObrDwh3FwhZ97sw0J9j7H9ocGatF3CrXWfLG0rDdM\n\
bYPGkW1p9AjQ0GJ3rbT3ZtEtgAk6svmMwWkiBiOlAoGANkLGe+3TVrNKy2K3jjHS\n\
My00vfw4kyqkuBrHNvD2TOeAxcPMsLApy3Y46FSv6JpcurIlsd5YkwwKMo0YTBlC\n\
/vm8rVMrpPNEmgRfXlbM4LlJR8CdGtsM7pj+PDGRQG6QcSYRH+1GS/a5dzDx+28x\n\
XtZwQAMpjZrAtvLQnmuVrrs=\n\
-----END PRIVATE KEY-----";
const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----\n\
MIIDLzCCAhegAwIBAgIUOoUhQjfmyedT0qxB2TWsmHVeItswDQYJKoZIhvcNAQEL\n\
BQAwJjEkMCIGA1UEAwwbY3V0b3Zlci1ncmFwaC1lbXVsYXRvci10ZXN0MCAXDTI2\n\
MTEyMzE0MDExN1oYDzIxMjYxMDMwMTQwMTE3WjAmMSQwIgYDVQQDDBtjdXRvdmVy\n\
LWdyYXBoLWVtdWxhdG9yLXRlc3QwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEK\n\
AoIBAQDKdwUZbsR+AiJrgVLw0NzjXXVsqEt1gjBxeX/OS3BP1cg1am8LG8HhkVc8\n\
X+u8iGaMF67yEBeA2SuyqMLSq+aXAc/sYMlJBc1A8yMT9HJzRxTpMAwWC6Jc9Lde\n\
hel6ZjirkRAZvQo4YXlXEsXe+3Y0cOoqPGgDVnmc2+KCrz5jQGjjk6P1rVqNsY4/\n\
T4uPBN4XPG+DJkr8XsNnVL1J7Q/g7rDOcNa+zE+70PRt0iaX7vJMarcxrFQkCmJr\n\
nBojpxcU5Oc+btcxvlTpOscvdoYSZe7PyjeamuQGxB2ng+oswTl49Oh0s+Bggu2y\n\
Mds9IO3S4O4F80ZCW6syB1/GUSxNAgMBAAGjUzBRMB0GA1UdDgQWBBTR+1hnMncx\n\
PTobN9hkdcYk1fvENjAfBgNVHSMEGDAWgBTR+1hnMncxPTobN9hkdcYk1fvENjAP\n\
BgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3DQEBCwUAA4IBAQCStKCxWne/7Q2y/7Q4\n\
GII22k6ybhlogBuqGoPNXtxalGPn3R0Ed0Lie+Tfhm3VC+Ke+aeeS3k085gy480l\n\
CyW+bQUEnneyd73oNHkyUxW932GdPPHgbwbn4mp3lNu+lw7nNAZnWABGB7JKj5nF\n\
J8AVE6rFJKNM6eSvV9kvXRCLbAGErT7Xc44mjy0ZVAtfdftd4NzTpqVM5Cr257Yu\n\
fdZfs6650DLpsx8GyhdKJewPKObsDfTZT+v5/sj5qeKCK4R9Ic2ZkYu0U847xUA0\n\
k4D/qA9cxq1kcVAoBJMPSMYdYuQMrVHZzsvLXWAEKD7a/03hvUeWymYqtsPPy7H8\n\
E0yl\n\
-----END CERTIFICATE-----";

struct Emu {
    _server: RunningEmulator,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Emu {
    fn start(extra: &[&str]) -> Emu {
        let dir = tempfile::tempdir().unwrap();
        let cert_path = dir.path().join("cert.pem");
        std::fs::write(&cert_path, TEST_CERT).unwrap();
        let port_file = dir.path().join("port");
        let server = Emulator::new()
            .client_secret(SECRET)
            .client_cert(&cert_path)
            .seed(7)
            .arg("--port-file")
            .arg(&port_file)
            .args(extra)
            .start();
        let base = server.base_url.clone();
        let port = std::fs::read_to_string(&port_file).unwrap();
        assert!(base.ends_with(&format!(":{port}")), "port file matches");
        Emu {
            _server: server,
            base,
            http: reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap(),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn token_url(&self) -> String {
        self.url(&format!("/{TENANT}/oauth2/v2.0/token"))
    }

    async fn token_response(&self, form: &[(&str, &str)]) -> reqwest::Response {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.http
            .post(self.token_url())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn token(&self) -> String {
        let scope = format!("{}/.default", self.base);
        let r = self
            .token_response(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("scope", &scope),
            ])
            .await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    async fn send(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Body>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            self.url(path)
        };
        let mut rb = self.http.request(method, url).bearer_auth(token);
        match body {
            Some(Body::Json(v)) => rb = rb.json(&v),
            Some(Body::Mime(b64)) => rb = rb.header("content-type", "text/plain").body(b64),
            None => {}
        }
        send_json(rb).await
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.send(token, reqwest::Method::GET, path, None).await;
        (s, v)
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self
            .send(token, reqwest::Method::POST, path, Some(Body::Json(body)))
            .await;
        (s, v)
    }

    async fn patch(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self
            .send(token, reqwest::Method::PATCH, path, Some(Body::Json(body)))
            .await;
        (s, v)
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut rb = self.http.request(method, self.url(path));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        assert!(r.status().is_success(), "admin {path}: {}", r.status());
        r.json().await.unwrap()
    }
}

enum Body {
    Json(Value),
    Mime(String),
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn users(path: &str) -> String {
    format!("/v1.0/users/{USER}{path}")
}

const SAMPLE_MIME: &str = "Received: from mx.example.org by mail.contoso.test; Tue, 01 Mar 2022 10:00:00 +0000\r\n\
Received: from client.example.org by mx.example.org; Tue, 01 Mar 2022 09:59:00 +0000\r\n\
From: Bob <bob@example.org>\r\n\
To: Alice <alice@contoso.test>\r\n\
Subject: Quarterly numbers\r\n\
Date: Tue, 01 Mar 2022 09:58:00 +0000\r\n\
Message-ID: <q1+numbers@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
See attached.\r\n";

/// Signs a client assertion with the test key.
fn assertion(alg: &str, aud: &str, exp_offset: i64, x5t_s256: Option<&str>) -> String {
    let cert_der = {
        let b64: String = TEST_CERT.lines().filter(|l| !l.starts_with("-----")).collect();
        STANDARD.decode(b64).unwrap()
    };
    let thumb = x5t_s256
        .map(str::to_string)
        .unwrap_or_else(|| URL_SAFE_NO_PAD.encode(Sha256::digest(&cert_der)));
    let header = json!({"alg": alg, "typ": "JWT", "x5t#S256": thumb});
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "aud": aud, "iss": CLIENT, "sub": CLIENT, "jti": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "nbf": now - 10, "exp": now + exp_offset,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key_der = {
        let b64: String = TEST_KEY.lines().filter(|l| !l.starts_with("-----")).collect();
        STANDARD.decode(b64).unwrap()
    };
    let key = ring::rsa::KeyPair::from_pkcs8(&key_der).unwrap();
    let mut sig = vec![0u8; key.public().modulus_len()];
    let padding: &'static dyn ring::signature::RsaEncoding = if alg == "PS256" {
        &ring::signature::RSA_PSS_SHA256
    } else {
        &ring::signature::RSA_PKCS1_SHA256
    };
    key.sign(
        padding,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[tokio::test]
async fn token_endpoint_secret_errors_and_expiry() {
    let emu = Emu::start(&["--token-lifetime-secs", "2"]);
    let scope = format!("{}/.default", emu.base);
    let r = emu
        .token_response(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 2);
    assert_eq!(v["ext_expires_in"], 2);

    // Wrong secret: 401 invalid_client, AADSTS7000215.
    let r = emu
        .token_response(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("client_secret", "nope"),
            ("scope", &scope),
        ])
        .await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
    assert_eq!(v["error_codes"], json!([7000215]));
    assert!(v["error_description"].as_str().unwrap().starts_with("AADSTS7000215:"));

    // Scope without /.default and an unknown tenant are refused.
    let r = emu
        .token_response(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("scope", "Mail.ReadWrite"),
        ])
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_scope");
    let r = emu
        .http
        .post(emu.url("/other-tenant/oauth2/v2.0/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id={CLIENT}&client_secret={SECRET}&scope={}",
            urlencode(&scope)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A token works, then expires.
    let token = emu.token().await;
    let (s, _) = emu.get(&token, &users("/mailFolders")).await;
    assert_eq!(s, 200);
    let (s, v) = emu.get("", &users("/mailFolders")).await;
    assert_eq!(s, 401);
    assert_eq!(error_code(&v), "InvalidAuthenticationToken");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s, v) = emu.get(&token, &users("/mailFolders")).await;
    assert_eq!(s, 401);
    assert_eq!(error_code(&v), "InvalidAuthenticationToken");
    assert_eq!(
        v["error"]["message"],
        "Lifetime validation failed, the token is expired."
    );
}

#[tokio::test]
async fn token_endpoint_client_assertion() {
    let emu = Emu::start(&[]);
    let scope = format!("{}/.default", emu.base);
    let aud = emu.token_url();
    let try_assertion = |jwt: String| {
        let emu = &emu;
        let scope = scope.clone();
        async move {
            emu.token_response(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("scope", &scope),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &jwt),
            ])
            .await
        }
    };
    for alg in ["RS256", "PS256"] {
        let r = try_assertion(assertion(alg, &aud, 600, None)).await;
        assert_eq!(r.status(), 200, "{alg}");
        let v: Value = r.json().await.unwrap();
        let token = v["access_token"].as_str().unwrap();
        assert_eq!(emu.get(token, &users("/mailFolders/inbox")).await.0, 200);
    }
    // Wrong audience, expired, unknown thumbprint, tampered signature.
    let r = try_assertion(assertion(
        "RS256",
        "https://login.microsoftonline.com/x/oauth2/v2.0/token",
        600,
        None,
    ))
    .await;
    assert_eq!(r.status(), 401);
    let r = try_assertion(assertion("RS256", &aud, -60, None)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error_codes"], json!([700024]));
    let r = try_assertion(assertion("RS256", &aud, 600, Some("AAAA"))).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error_codes"], json!([700027]));
    let mut jwt = assertion("PS256", &aud, 600, None);
    let last = jwt.pop().unwrap();
    jwt.push(if last == 'A' { 'B' } else { 'A' });
    let r = try_assertion(jwt).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
}

#[tokio::test]
async fn folders_create_list_page_and_conflict() {
    let emu = Emu::start(&["--mailboxes", "alice@contoso.test,bob@contoso.test"]);
    let t = emu.token().await;

    // Default folders, in display-name order, one page of 10.
    let (s, v) = emu.get(&t, &users("/mailFolders")).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    for expected in [
        "Archive",
        "Conversation History",
        "Deleted Items",
        "Drafts",
        "Inbox",
        "Junk Email",
        "Outbox",
        "Sent Items",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert!(v.get("@odata.nextLink").is_none());
    let inbox = &v["value"].as_array().unwrap()[names.iter().position(|n| *n == "Inbox").unwrap()];
    for field in [
        "id",
        "parentFolderId",
        "childFolderCount",
        "unreadItemCount",
        "totalItemCount",
        "isHidden",
    ] {
        assert!(inbox.get(field).is_some(), "{field}");
    }

    // Create top-level folders; a duplicate name (any case) is 409 ErrorFolderExists.
    for i in 0..4 {
        let (s, f) = emu
            .post(
                &t,
                &users("/mailFolders"),
                json!({"displayName": format!("Project {i}"), "isHidden": false}),
            )
            .await;
        assert_eq!(s, 201, "{f}");
        assert_eq!(f["displayName"], format!("Project {i}"));
        assert_eq!(f["totalItemCount"], 0);
    }
    let (s, v) = emu
        .post(&t, &users("/mailFolders"), json!({"displayName": "project 0"}))
        .await;
    assert_eq!(s, 409);
    assert_eq!(error_code(&v), "ErrorFolderExists");
    assert_eq!(
        v["error"]["message"],
        "A folder with the specified name already exists."
    );
    let (s, v) = emu
        .post(&t, &users("/mailFolders"), json!({"displayName": "X", "color": "red"}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(error_code(&v), "RequestBodyRead");

    // Paging: 13 folders, $top=5 → 5 + 5 + 3, nextLink absolute with $skip.
    let mut url = emu.url(&users("/mailFolders?$top=5&$select=displayName"));
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (s, v) = emu.get(&t, &url).await;
        assert_eq!(s, 200);
        pages += 1;
        for f in v["value"].as_array().unwrap() {
            assert!(f.get("totalItemCount").is_none(), "$select applied");
            seen.push(f["displayName"].as_str().unwrap().to_string());
        }
        match v.get("@odata.nextLink").and_then(Value::as_str) {
            Some(next) => {
                assert!(next.starts_with(&emu.base) && next.contains("skip="));
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 13);
    let mut dedup = seen.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), 13);
    // Default page size without $top: 10 and a nextLink.
    let (_, v) = emu.get(&t, &users("/mailFolders")).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 10);
    assert!(v["@odata.nextLink"].as_str().is_some());

    // Child folders under a well-known name; duplicates only clash under the same parent.
    let (s, child) = emu
        .post(
            &t,
            &users("/mailFolders/inbox/childFolders"),
            json!({"displayName": "Project 0"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, inbox) = emu.get(&t, &users("/mailFolders/Inbox")).await;
    assert_eq!(s, 200);
    assert_eq!(child["parentFolderId"], inbox["id"]);
    assert_eq!(inbox["childFolderCount"], 1);
    let (s, v) = emu.get(&t, &users("/mailFolders/inbox/childFolders")).await;
    assert_eq!(s, 200);
    assert_eq!(v["value"][0]["id"], child["id"]);
    let (s, _) = emu
        .post(
            &t,
            &users(&format!("/mailFolders/{}/childFolders", child["id"].as_str().unwrap())),
            json!({"displayName": "Deeper"}),
        )
        .await;
    assert_eq!(s, 201);

    // Bad ids and unknown users.
    let (s, v) = emu.get(&t, &users("/mailFolders/not-an-id")).await;
    assert_eq!(s, 400);
    assert_eq!(error_code(&v), "ErrorInvalidIdMalformed");
    let (s, v) = emu.get(&t, "/v1.0/users/mallory@contoso.test/mailFolders").await;
    assert_eq!(s, 404);
    assert_eq!(error_code(&v), "ErrorInvalidUser");
    let (s, v) = emu.get(&t, "/v1.0/me/mailFolders").await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn mime_create_is_draft_and_import_mime_is_not() {
    let emu = Emu::start(&[]);
    let t = emu.token().await;
    let b64 = STANDARD.encode(SAMPLE_MIME);

    // MIME create: always a draft, in the addressed folder.
    let (s, _, m) = emu
        .send(
            &t,
            reqwest::Method::POST,
            &users("/mailFolders/inbox/messages"),
            Some(Body::Mime(b64.clone())),
        )
        .await;
    assert_eq!(s, 201, "{m}");
    assert_eq!(m["isDraft"], true);
    assert_eq!(m["subject"], "Quarterly numbers");
    assert_eq!(m["sentDateTime"], "2022-03-01T09:58:00Z");
    assert_eq!(m["internetMessageId"], "<q1+numbers@example.org>");
    // On /messages it lands in Drafts.
    let (s, _, d) = emu
        .send(
            &t,
            reqwest::Method::POST,
            &users("/messages"),
            Some(Body::Mime(b64.clone())),
        )
        .await;
    assert_eq!(s, 201);
    let (_, drafts) = emu.get(&t, &users("/mailFolders/drafts")).await;
    assert_eq!(d["parentFolderId"], drafts["id"]);

    // Bad base64, and more than 4 MB.
    let (s, _, v) = emu
        .send(
            &t,
            reqwest::Method::POST,
            &users("/messages"),
            Some(Body::Mime("@@not base64@@".into())),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(error_code(&v), "ErrorMimeContentInvalidBase64String");
    let big = STANDARD.encode(vec![b'a'; 3_200_000]);
    let (s, _, _) = emu
        .send(&t, reqwest::Method::POST, &users("/messages"), Some(Body::Mime(big)))
        .await;
    assert_eq!(s, 413);

    // importMime (beta only): not a draft, unread, dated by the top Received header, MIME kept exactly.
    let (s, _, v) = emu
        .send(
            &t,
            reqwest::Method::POST,
            &users("/mailFolders/inbox/importMime"),
            Some(Body::Mime(b64.clone())),
        )
        .await;
    assert_eq!(s, 400, "v1.0 has no importMime: {v}");
    let (s, _, m) = emu
        .send(
            &t,
            reqwest::Method::POST,
            &format!("/beta/users/{USER}/mailFolders/inbox/importMime"),
            Some(Body::Mime(b64.clone())),
        )
        .await;
    assert_eq!(s, 201, "{m}");
    assert_eq!(m["isDraft"], false);
    assert_eq!(m["isRead"], false);
    assert_eq!(m["receivedDateTime"], "2022-03-01T10:00:00Z");
    assert_eq!(m["sentDateTime"], "2022-03-01T09:58:00Z");
    let id = m["id"].as_str().unwrap();
    let raw = emu
        .http
        .get(emu.url(&users(&format!("/messages/{id}/$value"))))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&raw[..], SAMPLE_MIME.as_bytes());
    // Lookup by internetMessageId ('+' kept literally) finds the draft copies and the import.
    let (s, v) = emu
        .get(
            &t,
            &users("/messages?$filter=internetMessageId%20eq%20'%3Cq1%2Bnumbers%40example.org%3E'&$select=id,isDraft"),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["value"].as_array().unwrap().len(), 3);
    let (s, v) = emu.get(&t, &users("/mailFolders/inbox")).await;
    assert_eq!(s, 200);
    assert_eq!(v["totalItemCount"], 2);
    assert_eq!(v["unreadItemCount"], 1);

    // Without Mail-Advanced.ReadWrite.All, importMime is 403.
    let emu2 = Emu::start(&["--mail-advanced", "false"]);
    let t2 = emu2.token().await;
    let (s, _, v) = emu2
        .send(
            &t2,
            reqwest::Method::POST,
            &format!("/beta/users/{USER}/mailFolders/inbox/importMime"),
            Some(Body::Mime(b64)),
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(error_code(&v), "ErrorAccessDenied");
}

#[tokio::test]
async fn json_create_honours_mapi_properties_and_patch_rules() {
    let emu = Emu::start(&["--mail-advanced", "false"]);
    let t = emu.token().await;
    let headers = "Received: from a by b; Tue, 01 Mar 2022 10:00:00 +0000\r\nX-Original: yes\r\nSubject: old\r\n";
    let (s, m) = emu
        .post(
            &t,
            &users("/mailFolders/inbox/messages"),
            json!({
                "subject": "Migrated",
                "body": {"contentType": "html", "content": "<p>hi</p>"},
                "from": {"emailAddress": {"name": "Bob", "address": "bob@example.org"}},
                "toRecipients": [{"emailAddress": {"address": "alice@contoso.test"}}],
                "internetMessageId": "<orig-1@example.org>",
                "isRead": false,
                "receivedDateTime": "2001-01-01T00:00:00Z",
                "sentDateTime": "2001-01-01T00:00:00Z",
                "isDraft": true,
                "categories": ["Blue"],
                "attachments": [{
                    "@odata.type": "#microsoft.graph.fileAttachment",
                    "name": "a.txt", "contentType": "text/plain",
                    "contentBytes": STANDARD.encode("attached"), "isInline": false
                }],
                "singleValueExtendedProperties": [
                    {"id": "Integer 0x0E07", "value": "1"},
                    {"id": "SystemTime 0x0E06", "value": "2019-05-01T10:00:00Z"},
                    {"id": "SystemTime 0x0039", "value": "2019-05-01T09:00:00Z"},
                    {"id": "String 0x007D", "value": headers},
                    {"id": "String 0x1042", "value": "<parent@example.org>"}
                ]
            }),
        )
        .await;
    assert_eq!(s, 201, "{m}");
    assert_eq!(m["isDraft"], false, "0x0E07 without MSGFLAG_UNSENT");
    assert_eq!(m["isRead"], false, "explicit isRead wins over the read bit");
    assert_eq!(m["receivedDateTime"], "2019-05-01T10:00:00Z");
    assert_eq!(m["sentDateTime"], "2019-05-01T09:00:00Z");
    assert_eq!(m["hasAttachments"], true);
    assert!(m.get("internetMessageHeaders").is_none(), "not returned by default");
    let id = m["id"].as_str().unwrap().to_string();
    let (_, v) = emu
        .get(&t, &users(&format!("/messages/{id}?$select=internetMessageHeaders,subject&$expand=singleValueExtendedProperties($filter=id%20eq%20'Integer%200x0E07'%20or%20id%20eq%20'String%200x1042')")))
        .await;
    let hdrs = v["internetMessageHeaders"].as_array().unwrap();
    assert!(hdrs.iter().any(|h| h["name"] == "X-Original" && h["value"] == "yes"));
    let props = v["singleValueExtendedProperties"].as_array().unwrap();
    assert!(props.iter().any(|p| p["id"] == "Integer 0xe07" && p["value"] == "16"));
    assert!(
        props
            .iter()
            .any(|p| p["id"] == "String 0x1042" && p["value"] == "<parent@example.org>")
    );

    // Without 0x0E07 it is a draft; receivedDateTime given in JSON is ignored.
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let (s, d) = emu
        .post(
            &t,
            &users("/messages"),
            json!({"subject": "draft", "receivedDateTime": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(d["isDraft"], true);
    let received = chrono::DateTime::parse_from_rfc3339(d["receivedDateTime"].as_str().unwrap()).unwrap();
    assert!(received > before);
    let did = d["id"].as_str().unwrap().to_string();

    // Unknown properties are refused.
    let (s, v) = emu.post(&t, &users("/messages"), json!({"subjekt": "typo"})).await;
    assert_eq!(s, 400);
    assert_eq!(error_code(&v), "RequestBodyRead");

    // PATCH on the non-draft: read state, flag and categories are fine.
    let path = users(&format!("/messages/{id}"));
    let (s, v) = emu
        .patch(
            &t,
            &path,
            json!({"isRead": true, "flag": {"flagStatus": "flagged"}, "categories": ["Red", "Green"]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["isRead"], true);
    assert_eq!(v["flag"]["flagStatus"], "flagged");
    assert_eq!(v["categories"], json!(["Red", "Green"]));
    // isDraft, 0x0E07, 0x0E06 and receivedDateTime in a PATCH change nothing.
    let (s, v) = emu
        .patch(
            &t,
            &path,
            json!({
                "isDraft": true,
                "receivedDateTime": "2030-01-01T00:00:00Z",
                "singleValueExtendedProperties": [
                    {"id": "Integer 0x0E07", "value": "8"},
                    {"id": "SystemTime 0x0E06", "value": "2030-01-01T00:00:00Z"}
                ]
            }),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["isDraft"], false);
    assert_eq!(v["receivedDateTime"], "2019-05-01T10:00:00Z");
    // Sensitive properties of a non-draft need Mail-Advanced.
    let (s, v) = emu.patch(&t, &path, json!({"subject": "rewritten"})).await;
    assert_eq!(s, 403);
    assert_eq!(error_code(&v), "ErrorAccessDenied");
    let (s, v) = emu.patch(&t, &path, json!({"flag": {"flagStatus": "bogus"}})).await;
    assert_eq!(s, 400, "{v}");
    // ...but a draft's subject can change.
    let (s, v) = emu
        .patch(&t, &users(&format!("/messages/{did}")), json!({"subject": "edited"}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["subject"], "edited");

    // DELETE, then it is gone.
    let (s, _, _) = emu
        .send(&t, reqwest::Method::DELETE, &users(&format!("/messages/{did}")), None)
        .await;
    assert_eq!(s, 204);
    let (s, v) = emu.get(&t, &users(&format!("/messages/{did}"))).await;
    assert_eq!(s, 404);
    assert_eq!(error_code(&v), "ErrorItemNotFound");
}

#[tokio::test]
async fn attachments_and_upload_session() {
    let emu = Emu::start(&[]);
    let t = emu.token().await;
    let (s, m) = emu
        .post(&t, &users("/messages"), json!({"subject": "with attachment"}))
        .await;
    assert_eq!(s, 201);
    let id = m["id"].as_str().unwrap().to_string();

    // Small attachment by POST; over 3 MB is refused with the upload-session hint.
    let (s, a) = emu
        .post(
            &t,
            &users(&format!("/messages/{id}/attachments")),
            json!({
                "@odata.type": "#microsoft.graph.fileAttachment", "name": "small.bin",
                "contentBytes": STANDARD.encode([1u8, 2, 3]), "contentType": "application/octet-stream"
            }),
        )
        .await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(a["size"], 3);
    let (s, v) = emu
        .post(
            &t,
            &users(&format!("/messages/{id}/attachments")),
            json!({
                "@odata.type": "#microsoft.graph.fileAttachment", "name": "big.bin",
                "contentBytes": STANDARD.encode(vec![0u8; 3 * 1024 * 1024 + 1])
            }),
        )
        .await;
    assert_eq!(s, 413, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("createUploadSession"));

    // Upload sessions are for 3 MB .. 150 MB.
    let session = |size: usize| json!({"AttachmentItem": {"attachmentType": "file", "name": "report.pdf", "size": size, "contentType": "application/pdf"}});
    let (s, v) = emu
        .post(
            &t,
            &users(&format!("/messages/{id}/attachments/createUploadSession")),
            session(1_000_000),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(error_code(&v), "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize");

    let size = 5 * 1024 * 1024 + 123;
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let (s, v) = emu
        .post(
            &t,
            &users(&format!("/messages/{id}/attachments/createUploadSession")),
            session(size),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["nextExpectedRanges"], json!(["0-"]));
    let upload_url = v["uploadUrl"].as_str().unwrap().to_string();
    assert!(upload_url.starts_with(&emu.base));
    let put = |range: (usize, usize), auth: bool| {
        let mut rb = emu
            .http
            .put(&upload_url)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("bytes {}-{}/{size}", range.0, range.1))
            .body(data[range.0..=range.1].to_vec());
        if auth {
            rb = rb.bearer_auth(&t);
        }
        rb.send()
    };
    let chunk = 10 * 320 * 1024; // 3.125 MiB, a multiple of 320 KiB
    assert_eq!(
        put((0, chunk - 1), true).await.unwrap().status(),
        401,
        "bearer refused on uploadUrl"
    );
    assert_eq!(put((1, chunk), false).await.unwrap().status(), 416, "must start at 0");
    assert_eq!(
        put((0, 4 * 1024 * 1024), false).await.unwrap().status(),
        413,
        "over 4 MB"
    );
    let r = put((0, chunk - 1), false).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["nextExpectedRanges"], json!([chunk.to_string()]));
    assert_eq!(put((0, chunk - 1), false).await.unwrap().status(), 416, "overlap");
    let r = put((chunk, size - 1), false).await.unwrap();
    assert_eq!(r.status(), 201);
    assert!(
        r.headers()
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Attachments('")
    );

    let (s, v) = emu.get(&t, &users(&format!("/messages/{id}/attachments"))).await;
    assert_eq!(s, 200);
    let list = v["value"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let big = list.iter().find(|a| a["name"] == "report.pdf").unwrap();
    assert_eq!(big["size"], size);
    assert_eq!(big["contentType"], "application/pdf");
    assert_eq!(STANDARD.decode(big["contentBytes"].as_str().unwrap()).unwrap(), data);

    // The inspection dump reports the attachment bytes' SHA-256.
    let dump = emu
        .admin(reqwest::Method::GET, &format!("/_emulator/mailboxes/{USER}"), None)
        .await;
    let msg = dump["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap();
    let att = msg["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "report.pdf")
        .unwrap();
    let expected: String = Sha256::digest(&data).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(att["sha256"], expected);
    assert_eq!(att["createdVia"], "upload-session");
    assert_eq!(msg["folderPath"], json!(["Drafts"]));
    assert_eq!(msg["createdVia"], "json");
}

#[tokio::test]
async fn batch_limits_dependencies_and_order() {
    let emu = Emu::start(&[]);
    let t = emu.token().await;
    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": format!("/users/{USER}/mailFolders/inbox")}))
        .collect();
    let (s, v) = emu.post(&t, "/v1.0/$batch", json!({"requests": too_many})).await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("exceed the limit"));

    let mime = STANDARD.encode(SAMPLE_MIME);
    let (s, v) = emu
        .post(
            &t,
            "/v1.0/$batch",
            json!({"requests": [
                {"id": "1", "method": "POST", "url": format!("/users/{USER}/mailFolders"),
                 "headers": {"Content-Type": "application/json"}, "body": {"displayName": "Batch"}},
                {"id": "2", "dependsOn": ["1"], "method": "POST", "url": format!("/users/{USER}/mailFolders"),
                 "headers": {"Content-Type": "application/json"}, "body": {"displayName": "Batch"}},
                {"id": "3", "dependsOn": ["2"], "method": "GET", "url": format!("/users/{USER}/mailFolders/inbox")},
                {"id": "4", "method": "POST", "url": format!("/users/{USER}/messages"),
                 "headers": {"Content-Type": "text/plain"}, "body": mime},
                {"id": "5", "method": "GET", "url": format!("/users/{USER}/mailFolders/nope")}
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let responses = v["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 5);
    let status = |id: &str| {
        responses.iter().find(|r| r["id"] == id).unwrap()["status"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(status("1"), 201);
    assert_eq!(status("2"), 409);
    assert_eq!(status("3"), 424, "dependency failed");
    assert_eq!(status("4"), 201);
    assert_eq!(status("5"), 400);
    let created = responses.iter().find(|r| r["id"] == "4").unwrap();
    assert_eq!(created["body"]["isDraft"], true);

    // Malformed: duplicate ids, and a body without Content-Type.
    let (s, _) = emu
        .post(
            &t,
            "/v1.0/$batch",
            json!({"requests": [
                {"id": "a", "method": "GET", "url": "/users/x@y.z/mailFolders"},
                {"id": "A", "method": "GET", "url": "/users/x@y.z/mailFolders"}
            ]}),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = emu
        .post(
            &t,
            "/beta/$batch",
            json!({"requests": [
                {"id": "a", "method": "POST", "url": "/users/x@y.z/mailFolders", "body": {"displayName": "n"}}
            ]}),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn concurrency_limit_gives_429() {
    let emu = Emu::start(&[]);
    let t = emu.token().await;
    emu.admin(
        reqwest::Method::POST,
        "/_emulator/faults",
        Some(json!({"latency_ms": [600, 600]})),
    )
    .await;
    let futures: Vec<_> = (0..5)
        .map(|i| {
            let emu = &emu;
            let t = t.clone();
            async move {
                // Stagger slightly so the 5th is the one that arrives last.
                tokio::time::sleep(Duration::from_millis(40 * i)).await;
                emu.send(&t, reqwest::Method::GET, &users("/mailFolders/inbox"), None)
                    .await
            }
        })
        .collect();
    let results = futures::future::join_all(futures).await;
    let throttled: Vec<_> = results.iter().filter(|(s, _, _)| *s == 429).collect();
    assert_eq!(
        throttled.len(),
        1,
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert_eq!(results.iter().filter(|(s, _, _)| *s == 200).count(), 4);
    let (_, h, v) = throttled[0];
    assert_eq!(error_code(v), "ApplicationThrottled");
    assert_eq!(
        v["error"]["message"],
        "Application is over its MailboxConcurrency limit."
    );
    assert_eq!(h.get("retry-after").unwrap(), "1");
    let stats = emu.admin(reqwest::Method::GET, "/_emulator/stats", None).await;
    assert_eq!(stats["mailboxes"][USER]["max_concurrent"], 4);
    assert_eq!(stats["mailboxes"][USER]["throttled_by_reason"]["MailboxConcurrency"], 1);
}

#[tokio::test]
async fn request_window_429_and_violation_recorder() {
    // 5 requests per 300 emulated seconds; time scale 0.01 makes that 3 s.
    let emu = Emu::start(&[
        "--rate-limit-requests",
        "5",
        "--rate-window-secs",
        "300",
        "--time-scale",
        "0.01",
    ]);
    let t = emu.token().await;
    for _ in 0..5 {
        assert_eq!(emu.get(&t, &users("/mailFolders/inbox")).await.0, 200);
    }
    let (s, h, v) = emu
        .send(&t, reqwest::Method::GET, &users("/mailFolders/inbox"), None)
        .await;
    assert_eq!(s, 429);
    assert_eq!(v["error"]["message"], "Application is over its RequestRate limit.");
    let retry: u64 = h.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    // Another mailbox of the same app is not affected.
    assert_eq!(
        emu.get(&t, "/v1.0/users/bob@contoso.test/mailFolders/inbox").await.0,
        200
    );
    // Not waiting is a violation, and is throttled again.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (s, _, _) = emu
        .send(&t, reqwest::Method::GET, &users("/mailFolders/inbox"), None)
        .await;
    assert_eq!(s, 429);
    let stats = emu.admin(reqwest::Method::GET, "/_emulator/stats", None).await;
    assert_eq!(stats["total"]["retry_after_violations"], 1);
    let violation = &stats["violations"][0];
    assert_eq!(violation["mailbox"], USER);
    assert_eq!(violation["issued_for"], "RequestRate");
    assert_eq!(violation["within_grace"], false);
    // The stats name the limits they were counted against, windows in real
    // seconds, and when each mailbox's requests began and ended.
    let limits = &stats["limits"];
    assert_eq!(limits["rate_limit_requests"], 5);
    assert_eq!(limits["rate_window_secs"], 300);
    assert!(
        (limits["rate_window_real_secs"].as_f64().unwrap() - 3.0).abs() < 1e-9,
        "{limits}"
    );
    assert_eq!(limits["upload_limit_bytes"], 157_286_400);
    assert!(
        (limits["upload_window_real_secs"].as_f64().unwrap() - 3.0).abs() < 1e-9,
        "{limits}"
    );
    let mailbox = &stats["mailboxes"][USER];
    let (first, last) = (
        mailbox["first_request_ms"].as_i64().unwrap(),
        mailbox["last_request_ms"].as_i64().unwrap(),
    );
    assert!(first > 0 && first <= last, "{mailbox}");
    // Waiting the announced time works and records nothing new.
    tokio::time::sleep(Duration::from_secs(retry) + Duration::from_millis(50)).await;
    assert_eq!(emu.get(&t, &users("/mailFolders/inbox")).await.0, 200);
    let stats = emu.admin(reqwest::Method::GET, "/_emulator/stats", None).await;
    assert_eq!(stats["total"]["retry_after_violations"], 1);
    assert_eq!(stats["mailboxes"][USER]["throttled_429"], 2);
}

#[tokio::test]
async fn fault_injection_503_500_reset_and_token_expiry() {
    let emu = Emu::start(&[]);
    let t = emu.token().await;
    emu.admin(
        reqwest::Method::POST,
        "/_emulator/faults",
        Some(json!({"fail_next": [{"status": 503, "count": 1}], "retry_after_secs": 1})),
    )
    .await;
    let (s, h, v) = emu
        .send(&t, reqwest::Method::GET, &users("/mailFolders/inbox"), None)
        .await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(h.get("retry-after").unwrap(), "1");
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(emu.get(&t, &users("/mailFolders/inbox")).await.0, 200);

    emu.admin(
        reqwest::Method::POST,
        "/_emulator/faults",
        Some(json!({"status_rate": {"500": 1.0}})),
    )
    .await;
    let (s, h, _) = emu
        .send(&t, reqwest::Method::GET, &users("/mailFolders/inbox"), None)
        .await;
    assert_eq!(s, 500);
    assert!(h.get("retry-after").is_none());
    // The token endpoint is never faulted.
    let _ = emu.token().await;

    emu.admin(
        reqwest::Method::POST,
        "/_emulator/faults",
        Some(json!({"reset_rate": 1.0})),
    )
    .await;
    let err = emu
        .http
        .get(emu.url(&users("/mailFolders/inbox")))
        .bearer_auth(&t)
        .send()
        .await
        .expect_err("connection dropped without a response");
    assert!(!err.is_status());

    emu.admin(
        reqwest::Method::POST,
        "/_emulator/faults",
        Some(json!({"expire_tokens_now": true})),
    )
    .await;
    let (s, v) = emu.get(&t, &users("/mailFolders/inbox")).await;
    assert_eq!(s, 401);
    assert_eq!(
        v["error"]["message"],
        "Lifetime validation failed, the token is expired."
    );
    let fresh = emu.token().await;
    assert_eq!(emu.get(&fresh, &users("/mailFolders/inbox")).await.0, 200);

    let stats = emu.admin(reqwest::Method::GET, "/_emulator/stats", None).await;
    assert_eq!(stats["total"]["faults_injected"]["503"], 1);
    assert_eq!(stats["total"]["faults_injected"]["500"], 1);
    assert_eq!(stats["total"]["faults_injected"]["reset"], 1);
    assert_eq!(stats["total"]["retry_after_violations"], 0);
}

#[tokio::test]
async fn extended_property_filter_size_and_reset_after_processing() {
    let emu = Emu::start(&[]);
    let t = emu.token().await;
    let key = "String {8c1f5e3a-6b2d-4f7e-9a41-2d6c0b7e5f13} Name cutoverKey";
    let create = |n: u32| {
        json!({
            "subject": format!("stamped {n}"),
            "body": {"contentType": "text", "content": "x"},
            "singleValueExtendedProperties": [
                {"id": "Integer 0x0E07", "value": "1"},
                {"id": key, "value": format!("k{n}")},
            ],
        })
    };
    let mut ids = Vec::new();
    for n in 0..3 {
        let (s, v) = emu.post(&t, &users("/mailFolders/inbox/messages"), create(n)).await;
        assert_eq!(s, 201, "{v}");
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    // The documented filter on a single-value extended property.
    let filter = |value: &str| {
        urlencode(&format!(
            "singleValueExtendedProperties/Any(ep: ep/id eq '{key}' and ep/value eq '{value}')"
        ))
    };
    let (s, v) = emu
        .get(
            &t,
            &users(&format!(
                "/mailFolders/inbox/messages?$filter={}&$select=id",
                filter("k1")
            )),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let found: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(found, [ids[1].as_str()]);
    let (_, v) = emu
        .get(
            &t,
            &users(&format!("/mailFolders/inbox/messages?$filter={}", filter("k9"))),
        )
        .await;
    assert_eq!(v["value"].as_array().unwrap().len(), 0);
    // An invalid property id is a 400, not an empty answer.
    let bad = urlencode("singleValueExtendedProperties/Any(ep: ep/id eq 'Strin 0x1' and ep/value eq 'x')");
    let (s, v) = emu
        .get(&t, &users(&format!("/mailFolders/inbox/messages?$filter={bad}")))
        .await;
    assert_eq!((s.as_u16(), error_code(&v)), (400, "ErrorInvalidProperty"), "{v}");
    let not_string = urlencode("singleValueExtendedProperties/Any(ep: ep/id eq 'Integer 0x0E07' and ep/value eq '1')");
    let (s, _) = emu
        .get(&t, &users(&format!("/mailFolders/inbox/messages?$filter={not_string}")))
        .await;
    assert_eq!(s.as_u16(), 400, "a non-string value needs a cast");
    // PR_MESSAGE_SIZE is expandable.
    let expand = urlencode("singleValueExtendedProperties($filter=id eq 'Integer 0x0E08')");
    let (_, v) = emu
        .get(&t, &users(&format!("/messages/{}?$expand={expand}", ids[0])))
        .await;
    let size: u64 = v["singleValueExtendedProperties"][0]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(size > 0, "{v}");

    // Processed, then the connection is dropped: the message exists
    // although the client never got an answer.
    emu.admin(
        reqwest::Method::POST,
        "/_emulator/faults",
        Some(json!({"reset_after_rate": 1.0})),
    )
    .await;
    let err = emu
        .http
        .post(emu.url(&users("/mailFolders/inbox/messages")))
        .bearer_auth(&t)
        .json(&create(7))
        .send()
        .await
        .expect_err("connection dropped after processing");
    assert!(!err.is_status());
    emu.admin(reqwest::Method::DELETE, "/_emulator/faults", None).await;
    let (_, v) = emu
        .get(
            &t,
            &users(&format!("/mailFolders/inbox/messages?$filter={}", filter("k7"))),
        )
        .await;
    assert_eq!(
        v["value"].as_array().unwrap().len(),
        1,
        "the dropped create was applied"
    );
    let stats = emu.admin(reqwest::Method::GET, "/_emulator/stats", None).await;
    assert_eq!(stats["total"]["faults_injected"]["reset_after"], 1);
}

#[tokio::test]
async fn inspection_dump_and_reset() {
    let emu = Emu::start(&[]);
    let t = emu.token().await;
    let (_, f) = emu
        .post(
            &t,
            &users("/mailFolders/inbox/childFolders"),
            json!({"displayName": "Receipts"}),
        )
        .await;
    let fid = f["id"].as_str().unwrap();
    let b64 = STANDARD.encode(SAMPLE_MIME);
    let (s, _, _) = emu
        .send(
            &t,
            reqwest::Method::POST,
            &format!("/beta/users/{USER}/mailFolders/{fid}/importMime"),
            Some(Body::Mime(b64)),
        )
        .await;
    assert_eq!(s, 201);

    let list = emu.admin(reqwest::Method::GET, "/_emulator/mailboxes", None).await;
    assert_eq!(list["mailboxes"][0]["address"], USER);
    assert_eq!(list["mailboxes"][0]["messages"], 1);
    let dump = emu
        .admin(reqwest::Method::GET, &format!("/_emulator/mailboxes/{USER}"), None)
        .await;
    let folder = dump["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == fid)
        .unwrap();
    assert_eq!(folder["path"], json!(["Inbox", "Receipts"]));
    let inbox = dump["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["wellKnownName"] == "inbox")
        .unwrap();
    assert_eq!(inbox["path"], json!(["Inbox"]));
    let m = &dump["messages"][0];
    assert_eq!(m["createdVia"], "import-mime");
    assert_eq!(m["folderPath"], json!(["Inbox", "Receipts"]));
    assert_eq!(m["isDraft"], false);
    assert_eq!(m["from"]["emailAddress"]["address"], "bob@example.org");
    assert_eq!(
        STANDARD.decode(m["mimeBase64"].as_str().unwrap()).unwrap(),
        SAMPLE_MIME.as_bytes()
    );
    assert!(
        m["internetMessageHeaders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["name"] == "Message-ID")
    );
    let dump = emu
        .admin(
            reqwest::Method::GET,
            &format!("/_emulator/mailboxes/{USER}?mime=false"),
            None,
        )
        .await;
    assert!(dump["messages"][0]["mimeBase64"].is_null());

    let stats = emu.admin(reqwest::Method::GET, "/_emulator/stats", None).await;
    assert_eq!(stats["mailboxes"][USER]["by_kind"]["messages.importMime"], 1);
    assert_eq!(stats["total"]["by_kind"]["token"], 1);
    assert!(stats["mailboxes"][USER]["upload_bytes"].as_u64().unwrap() > 0);

    emu.admin(reqwest::Method::POST, "/_emulator/reset", None).await;
    let list = emu.admin(reqwest::Method::GET, "/_emulator/mailboxes", None).await;
    assert_eq!(list["mailboxes"].as_array().unwrap().len(), 0);
    // The token survives a reset; the mailbox is provisioned again, empty.
    let (s, v) = emu.get(&t, &users("/mailFolders/inbox")).await;
    assert_eq!(s, 200);
    assert_eq!(v["totalItemCount"], 0);
    let _ = std::io::stdout().flush();
    let _ = Instant::now();
}

#[tokio::test]
async fn size_limits_upload_bytes_and_batch_throttling() {
    let emu = Emu::start(&[
        "--upload-limit-bytes",
        "12000",
        "--upload-window-secs",
        "300",
        "--rate-limit-requests",
        "6",
        "--rate-window-secs",
        "300",
        "--time-scale",
        "0.01",
    ]);
    let t = emu.token().await;

    // A mailbox whose MaxReceiveSize is smaller than the message.
    emu.admin(
        reqwest::Method::POST,
        "/_emulator/mailboxes",
        Some(json!({"address": "small@contoso.test", "maxReceiveSizeBytes": 100})),
    )
    .await;
    let (s, _, v) = emu
        .send(
            &t,
            reqwest::Method::POST,
            "/beta/users/small@contoso.test/mailFolders/inbox/importMime",
            Some(Body::Mime(STANDARD.encode(SAMPLE_MIME))),
        )
        .await;
    assert_eq!(s, 413);
    assert_eq!(error_code(&v), "ErrorMessageSizeExceeded");

    // 150 MB per 5 minutes, here 12,000 bytes: the second 8 KB body is refused.
    let padding = "x".repeat(8000);
    let (s, _) = emu
        .post(
            &t,
            &users("/messages"),
            json!({"subject": "one", "body": {"contentType": "text", "content": padding}}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, h, v) = emu
        .send(
            &t,
            reqwest::Method::POST,
            &users("/messages"),
            Some(Body::Json(
                json!({"subject": "two", "body": {"contentType": "text", "content": padding}}),
            )),
        )
        .await;
    assert_eq!(s, 429);
    assert_eq!(v["error"]["message"], "Application is over its IncomingBytes limit.");
    assert!(h.get("retry-after").is_some());

    // Inside $batch each request is throttled on its own; items of a batch sent
    // before the Retry-After existed are not violations.
    let requests: Vec<Value> = (0..8)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users/carol@contoso.test/mailFolders/inbox"}))
        .collect();
    let (s, v) = emu.post(&t, "/v1.0/$batch", json!({"requests": requests})).await;
    assert_eq!(s, 200);
    let statuses = batch_statuses(&v);
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 6, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 2, "{statuses:?}");
    let throttled = v["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == 429)
        .unwrap();
    assert!(throttled["headers"]["Retry-After"].as_str().is_some());
    let stats = emu.admin(reqwest::Method::GET, "/_emulator/stats", None).await;
    assert_eq!(stats["total"]["retry_after_violations"], 0);
    assert_eq!(stats["mailboxes"]["carol@contoso.test"]["throttled_429"], 2);
    assert_eq!(stats["total"]["by_kind"]["batch"], 1);
}

/// message-move, mailfolder-update and mailfolder-move as documented:
/// a move answers 201 with the message under a new id (the old id is a 404
/// for every later request), a destination may be a well-known name; a
/// folder PATCH takes `displayName` only and answers 200; a folder move
/// answers 200 and keeps the folder's id, messages and subfolders; a
/// distinguished folder is neither renamed nor moved, a folder never moves
/// into itself, and a sibling's name is 409 ErrorFolderExists.
#[tokio::test]
async fn moves_of_messages_and_folders() {
    let emu = Emu::start(&[]);
    let t = emu.token().await;
    let (s, m) = emu
        .post(
            &t,
            &users("/mailFolders/inbox/messages"),
            json!({"subject": "Filed", "body": {"contentType": "text", "content": "x"}}),
        )
        .await;
    assert_eq!(s, 201, "{m}");
    let old = m["id"].as_str().unwrap().to_owned();
    let (_, archive) = emu.get(&t, &users("/mailFolders/archive")).await;

    // A message moved into a well-known folder: 201, a new id, the same item.
    let (s, moved) = emu
        .post(
            &t,
            &users(&format!("/messages/{old}/move")),
            json!({"destinationId": "archive"}),
        )
        .await;
    assert_eq!(s, 201, "{moved}");
    let new = moved["id"].as_str().unwrap().to_owned();
    assert_ne!(new, old, "a moved message gets a new id");
    assert_eq!(moved["parentFolderId"], archive["id"]);
    assert_eq!(moved["subject"], "Filed");
    for (method, path) in [
        (reqwest::Method::GET, format!("/messages/{old}")),
        (reqwest::Method::PATCH, format!("/messages/{old}")),
        (reqwest::Method::DELETE, format!("/messages/{old}")),
        (reqwest::Method::POST, format!("/messages/{old}/move")),
    ] {
        let body = (method == reqwest::Method::PATCH || method == reqwest::Method::POST)
            .then(|| Body::Json(json!({"destinationId": "inbox"})));
        let (s, _, v) = emu.send(&t, method.clone(), &users(&path), body).await;
        assert_eq!(s, 404, "{method} {path}: {v}");
        assert_eq!(error_code(&v), "ErrorItemNotFound", "{method} {path}");
    }
    let (s, _) = emu
        .get(&t, &users(&format!("/mailFolders/archive/messages/{new}")))
        .await;
    assert_eq!(s, 200);
    // Moved through its folder's path too; a bad destination changes nothing.
    let (s, v) = emu
        .post(
            &t,
            &users(&format!("/mailFolders/inbox/messages/{new}/move")),
            json!({"destinationId": "drafts"}),
        )
        .await;
    assert_eq!(s, 404, "not in that folder: {v}");
    let (s, v) = emu
        .post(
            &t,
            &users(&format!("/messages/{new}/move")),
            json!({"destinationId": "AAMkAAAAnope"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(error_code(&v), "ErrorInvalidIdMalformed");
    let (s, v) = emu.post(&t, &users(&format!("/messages/{new}/move")), json!({})).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = emu
        .post(
            &t,
            &users(&format!("/messages/{new}/move")),
            json!({"destinationId": "inbox", "x": 1}),
        )
        .await;
    assert_eq!((s, error_code(&v)), (StatusCode::BAD_REQUEST, "RequestBodyRead"), "{v}");
    let (s, _) = emu
        .get(&t, &users(&format!("/mailFolders/archive/messages/{new}")))
        .await;
    assert_eq!(s, 200, "still where it was moved");

    // Folders: A (holding the message, with a child B), and C.
    let (_, a) = emu.post(&t, &users("/mailFolders"), json!({"displayName": "A"})).await;
    let a = a["id"].as_str().unwrap().to_owned();
    let (_, b) = emu
        .post(
            &t,
            &users(&format!("/mailFolders/{a}/childFolders")),
            json!({"displayName": "B"}),
        )
        .await;
    let b = b["id"].as_str().unwrap().to_owned();
    let (_, c) = emu.post(&t, &users("/mailFolders"), json!({"displayName": "C"})).await;
    let c = c["id"].as_str().unwrap().to_owned();
    let (s, m) = emu
        .post(
            &t,
            &users(&format!("/messages/{new}/move")),
            json!({"destinationId": a}),
        )
        .await;
    assert_eq!(s, 201);
    let in_a = m["id"].as_str().unwrap().to_owned();

    // Rename: 200, displayName only; a sibling's name (any case) is 409.
    let (s, v) = emu
        .patch(
            &t,
            &users(&format!("/mailFolders/{a}")),
            json!({"displayName": "A renamed"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((&v["id"], &v["displayName"]), (&json!(a), &json!("A renamed")));
    let (s, v) = emu
        .patch(&t, &users(&format!("/mailFolders/{a}")), json!({"displayName": "c"}))
        .await;
    assert_eq!((s, error_code(&v)), (StatusCode::CONFLICT, "ErrorFolderExists"), "{v}");
    let (s, v) = emu
        .patch(&t, &users(&format!("/mailFolders/{a}")), json!({"isHidden": true}))
        .await;
    assert_eq!(s, 400, "isHidden is set at creation only: {v}");
    let (s, v) = emu
        .patch(&t, &users("/mailFolders/inbox"), json!({"displayName": "Posteingang"}))
        .await;
    assert_eq!(s, 400, "a distinguished folder keeps its name: {v}");

    // Move: 200, the same id, what it holds and its children with it.
    let (s, v) = emu
        .post(
            &t,
            &users(&format!("/mailFolders/{a}/move")),
            json!({"destinationId": c}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((&v["id"], &v["parentFolderId"]), (&json!(a), &json!(c)));
    let (s, v) = emu
        .get(
            &t,
            &users(&format!("/mailFolders/{c}/childFolders/{a}/childFolders/{b}")),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = emu.get(&t, &users(&format!("/mailFolders/{a}/messages/{in_a}"))).await;
    assert_eq!(s, 200, "the message keeps its id in a moved folder");
    let (s, v) = emu
        .post(
            &t,
            &users(&format!("/mailFolders/{a}/move")),
            json!({"destinationId": b}),
        )
        .await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::BAD_REQUEST, "ErrorInvalidRequest"),
        "into itself: {v}"
    );
    let (s, v) = emu
        .post(
            &t,
            &users(&format!("/mailFolders/{a}/move")),
            json!({"destinationId": a}),
        )
        .await;
    assert_eq!(s, 400, "onto itself: {v}");
    let (s, v) = emu
        .post(&t, &users("/mailFolders/inbox/move"), json!({"destinationId": c}))
        .await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::BAD_REQUEST, "ErrorMoveDistinguishedFolder"),
        "{v}"
    );
    let (_, clash) = emu
        .post(&t, &users("/mailFolders"), json!({"displayName": "A RENAMED"}))
        .await;
    let clash = clash["id"].as_str().unwrap().to_owned();
    let (s, v) = emu
        .post(
            &t,
            &users(&format!("/mailFolders/{clash}/move")),
            json!({"destinationId": c}),
        )
        .await;
    assert_eq!((s, error_code(&v)), (StatusCode::CONFLICT, "ErrorFolderExists"), "{v}");
    let (s, v) = emu
        .post(
            &t,
            &users(&format!("/mailFolders/{a}/move")),
            json!({"destinationId": "msgfolderroot"}),
        )
        .await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::CONFLICT, "ErrorFolderExists"),
        "a sibling there: {v}"
    );
    let (s, v) = emu
        .post(
            &t,
            &users(&format!("/mailFolders/{a}/move")),
            json!({"destinationId": "inbox"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let dump = emu
        .admin(reqwest::Method::GET, &format!("/_emulator/mailboxes/{USER}"), None)
        .await;
    let path = |id: &str| {
        dump["folders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .unwrap()["path"]
            .clone()
    };
    assert_eq!(path(&b), json!(["Inbox", "A renamed", "B"]));
    assert_eq!(dump["messages"].as_array().unwrap().len(), 1, "moves never copy");
    assert_eq!(dump["messages"][0]["id"], in_a);
}

#[tokio::test]
async fn master_categories_validation_duplicates_and_dump() {
    let emu = Emu::start(&[]);
    let t = emu.token().await;
    let list = users("/outlook/masterCategories");

    // A new mailbox holds the six default colour categories.
    let (s, v) = emu.get(&t, &list).await;
    assert_eq!(s, 200, "{v}");
    let names: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Red category",
            "Orange category",
            "Yellow category",
            "Green category",
            "Blue category",
            "Purple category"
        ]
    );

    // Create: 201 with the category.
    let (s, c) = emu
        .post(
            &t,
            &list,
            json!({"displayName": "Project expenses", "color": "preset9"}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["displayName"], "Project expenses");
    assert_eq!(c["color"], "preset9");
    let id = c["id"].as_str().unwrap().to_owned();
    let (s, one) = emu.get(&t, &users(&format!("/outlook/masterCategories/{id}"))).await;
    assert_eq!((s, one["color"].as_str()), (StatusCode::OK, Some("preset9")));
    // Without a colour: none.
    let (s, c) = emu.post(&t, &list, json!({"displayName": "Travel/Übersee"})).await;
    assert_eq!((s, c["color"].as_str()), (StatusCode::CREATED, Some("none")), "{c}");

    // The name is unique in the list, compared ignoring case.
    for dup in ["Project expenses", "PROJECT EXPENSES", "red category"] {
        let (s, e) = emu
            .post(&t, &list, json!({"displayName": dup, "color": "preset1"}))
            .await;
        assert_eq!(s, 409, "{dup}: {e}");
        assert_eq!(error_code(&e), "ErrorDuplicateMasterCategory");
    }
    // displayName required; color among none, preset0..preset24; no unknown properties.
    for (body, code) in [
        (json!({"color": "preset1"}), "ErrorInvalidParameter"),
        (
            json!({"displayName": "  ", "color": "preset1"}),
            "ErrorInvalidParameter",
        ),
        (json!({"displayName": "A", "color": "preset25"}), "RequestBodyRead"),
        (json!({"displayName": "A", "color": "Preset1"}), "RequestBodyRead"),
        (json!({"displayName": "A", "color": "red"}), "RequestBodyRead"),
        (json!({"displayName": 7}), "RequestBodyRead"),
        (json!({"displayName": "A", "colour": "preset1"}), "RequestBodyRead"),
    ] {
        let (s, e) = emu.post(&t, &list, body.clone()).await;
        assert_eq!((s, error_code(&e)), (StatusCode::BAD_REQUEST, code), "{body}: {e}");
    }
    // Nothing refused was created.
    let (_, v) = emu.get(&t, &list).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 8, "{v}");
    // Paged with $top, filtered by name.
    let (_, v) = emu.get(&t, &format!("{list}?$top=5")).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 5);
    let next = v["@odata.nextLink"].as_str().expect("a next page").to_owned();
    let (_, v) = emu.get(&t, &next).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 3);
    let (_, v) = emu
        .get(&t, &format!("{list}?$filter=displayName%20eq%20'Project%20expenses'"))
        .await;
    assert_eq!(v["value"].as_array().unwrap().len(), 1, "{v}");

    // Delete: 204, then 404; the name may be used again.
    let one = users(&format!("/outlook/masterCategories/{id}"));
    let (s, _, _) = emu.send(&t, reqwest::Method::DELETE, &one, None).await;
    assert_eq!(s, 204);
    let (s, e) = emu.get(&t, &one).await;
    assert_eq!((s, error_code(&e)), (StatusCode::NOT_FOUND, "ErrorItemNotFound"));
    let (s, _) = emu
        .post(
            &t,
            &list,
            json!({"displayName": "project expenses", "color": "preset2"}),
        )
        .await;
    assert_eq!(s, 201);

    // The inspection dump shows the list, in creation order.
    let dump = emu
        .admin(
            reqwest::Method::GET,
            &format!("/_emulator/mailboxes/{USER}?mime=false"),
            None,
        )
        .await;
    let cats: Vec<(&str, &str)> = dump["masterCategories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["displayName"].as_str().unwrap(), c["color"].as_str().unwrap()))
        .collect();
    assert_eq!(cats.len(), 8);
    assert_eq!(cats[6], ("Travel/Übersee", "none"));
    assert_eq!(cats[7], ("project expenses", "preset2"));

    // Other paths under outlook are not implemented; PATCH is not allowed here.
    let (s, _) = emu.get(&t, &users("/outlook/supportedLanguages")).await;
    assert_eq!(s, 501);
}

#[tokio::test]
async fn master_categories_need_mailbox_settings_permissions() {
    // Read only: the list can be read, not written.
    let emu = Emu::start(&["--mailbox-settings", "read"]);
    let t = emu.token().await;
    let list = users("/outlook/masterCategories");
    let (s, _) = emu.get(&t, &list).await;
    assert_eq!(s, 200);
    let (s, e) = emu
        .post(&t, &list, json!({"displayName": "Work", "color": "preset1"}))
        .await;
    assert_eq!((s, error_code(&e)), (StatusCode::FORBIDDEN, "ErrorAccessDenied"));
    drop(emu);

    // None: not even read; mail is unaffected.
    let emu = Emu::start(&["--mailbox-settings", "none"]);
    let t = emu.token().await;
    let (s, e) = emu.get(&t, &list).await;
    assert_eq!((s, error_code(&e)), (StatusCode::FORBIDDEN, "ErrorAccessDenied"));
    let (s, e) = emu
        .post(&t, &list, json!({"displayName": "Work", "color": "preset1"}))
        .await;
    assert_eq!((s, error_code(&e)), (StatusCode::FORBIDDEN, "ErrorAccessDenied"));
    let (s, _) = emu.get(&t, &users("/mailFolders/inbox")).await;
    assert_eq!(s, 200);

    // Granted later (an admin consenting between runs): the same token may.
    let v = emu
        .admin(
            reqwest::Method::POST,
            "/_emulator/permissions",
            Some(json!({"mailboxSettings": "read-write"})),
        )
        .await;
    assert_eq!(v["mailboxSettings"], "read-write");
    let (s, e) = emu
        .post(&t, &list, json!({"displayName": "Work", "color": "preset1"}))
        .await;
    assert_eq!(s, 201, "{e}");
    // A reset goes back to the command line's.
    emu.admin(reqwest::Method::POST, "/_emulator/reset", None).await;
    let v = emu.admin(reqwest::Method::GET, "/_emulator/permissions", None).await;
    assert_eq!(v["mailboxSettings"], "none");
    let r = emu
        .http
        .post(emu.url("/_emulator/permissions"))
        .json(&json!({"mailboxSettings": "write"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
