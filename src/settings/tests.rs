//! Settings are checked as documented in `config.example.toml`.

use super::*;
use crate::imap::Compression;

fn parse_str(text: &str) -> Result<Settings, ConfigError> {
    parse(text, Path::new("/etc/cutover/cutover.toml"), &|v| {
        (v == "PW").then(|| "s3cret".to_owned())
    })
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let s = parse_str("[source]\nhost = \"imap.example.com\"\n[target]\nkind = \"maildir\"\npath = \"out\"\n").unwrap();
    assert_eq!(s.source.endpoint().unwrap().port, 993);
    assert_eq!(s.source.endpoint().unwrap().security, Security::Tls);
    assert_eq!(s.limits.max_items, 500_000);
    assert_eq!(s.limits.max_message_bytes, 36_700_160);
    assert_eq!(s.state_path, PathBuf::from("/etc/cutover/cutover.db"));
    assert!(matches!(&s.target, TargetSettings::Maildir { path, .. } if path == Path::new("/etc/cutover/out")));
    assert_eq!(
        s.source.endpoint().unwrap().compress,
        Compression::Auto,
        "COMPRESS=DEFLATE is asked for beyond the local networks by default"
    );
}

#[test]
fn compression_can_be_set_on_either_side() {
    let s = parse_str(
        "[source]\nhost = \"imap.example.com\"\ncompress = false\n[target]\nkind = \"imap\"\nhost = \"t.example.com\"\n",
    )
    .unwrap();
    assert_eq!(s.source.endpoint().unwrap().compress, Compression::Never);
    assert!(matches!(&s.target, TargetSettings::Imap { endpoint, .. } if endpoint.compress == Compression::Auto));
    let s = parse_str(
        "[source]\nhost = \"imap.example.com\"\ncompress = \"auto\"\n[target]\nkind = \"imap\"\nhost = \"t.example.com\"\ncompress = true\n",
    )
    .unwrap();
    assert_eq!(s.source.endpoint().unwrap().compress, Compression::Auto);
    assert!(matches!(&s.target, TargetSettings::Imap { endpoint, .. } if endpoint.compress == Compression::Always));
    let err = parse_str("[source]\nhost = \"h\"\ncompress = \"yes\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n")
        .unwrap_err();
    assert!(err.0.contains("compress") && err.0.contains("auto"), "{err}");
}

#[test]
fn unknown_keys_are_named() {
    let err = parse_str("[source]\nhost = \"h\"\nprot = 1\n[target]\nkind = \"maildir\"\npath = \"x\"\n").unwrap_err();
    assert!(err.0.contains("prot"), "{err}");
    let err = parse_str("[source]\nhost = \"h\"\n[target]\nkind = \"imap\"\nhost = \"t\"\nlogn = \"x\"\n").unwrap_err();
    assert!(err.0.contains("logn"), "{err}");
}

#[test]
fn plaintext_only_to_loopback() {
    let err = parse_str(
        "[source]\nhost = \"imap.example.com\"\nsecurity = \"plain\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n",
    )
    .unwrap_err();
    assert!(err.0.contains("loopback"), "{err}");
    assert!(
        parse_str("[source]\nhost = \"127.0.0.1\"\nsecurity = \"plain\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n")
            .is_ok()
    );
}

#[test]
fn master_login_reads_password_from_environment() {
    let s = parse_str("[source]\nhost = \"h\"\n[target]\nkind = \"imap\"\nhost = \"t\"\nlogin = \"{email}*admin\"\npassword_env = \"PW\"\n").unwrap();
    let TargetSettings::Imap { login, password, .. } = &s.target else {
        panic!()
    };
    assert_eq!(login.as_deref(), Some("{email}*admin"));
    assert_eq!(password.as_ref().unwrap().expose(), "s3cret");
    let err = parse_str(
        "[source]\nhost = \"h\"\n[target]\nkind = \"imap\"\nhost = \"t\"\nlogin = \"a\"\npassword_env = \"MISSING\"\n",
    )
    .unwrap_err();
    assert!(err.0.contains("MISSING"), "{err}");
}

#[test]
fn xoauth2_source_settings() {
    let base = "[source]\nhost = \"h\"\n";
    let tail = "[target]\nkind = \"maildir\"\npath = \"x\"\n";
    let s = parse_str(&format!(
        "{base}auth = \"xoauth2\"\ntoken_command = \"gettoken\"\n{tail}"
    ))
    .unwrap();
    assert!(matches!(s.source.tokens(), Some(crate::oauth::TokenSettings::Command(c)) if c == "gettoken"));
    let s = parse_str(&format!(
        "{base}auth = \"xoauth2\"\noauth_tenant_id = \"t\"\noauth_client_id = \"c\"\noauth_client_secret_env = \"PW\"\n{tail}"
    ))
    .unwrap();
    match s.source.tokens() {
        Some(crate::oauth::TokenSettings::Microsoft(app)) => {
            let (scope, authority) = (&app.scope, &app.authority);
            let crate::oauth::entra::ClientAuth::Secret(client_secret) = &app.auth else {
                panic!("{app:?}")
            };
            assert_eq!(scope, "https://outlook.office365.com/.default");
            assert_eq!(authority, "https://login.microsoftonline.com");
            assert_eq!(client_secret.expose(), "s3cret");
        }
        other => panic!("{other:?}"),
    }
    for (extra, want) in [
        ("auth = \"xoauth2\"\n", "needs token_command"),
        ("token_command = \"x\"\n", "need auth = \"xoauth2\""),
        (
            "auth = \"xoauth2\"\noauth_tenant_id = \"t\"\n",
            "need oauth_tenant_id, oauth_client_id",
        ),
        (
            "auth = \"xoauth2\"\ntoken_command = \"x\"\noauth_client_id = \"c\"\n",
            "not several",
        ),
        (
            "auth = \"xoauth2\"\noauth_tenant_id = \"t\"\noauth_client_id = \"c\"\noauth_client_secret_env = \"NOPE\"\n",
            "NOPE, which is not set",
        ),
    ] {
        let err = parse_str(&format!("{base}{extra}{tail}")).unwrap_err();
        assert!(err.0.contains(want), "{extra:?}: {}", err.0);
    }
}

#[test]
fn xoauth2_microsoft_logins_can_use_a_certificate_on_either_side() {
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for name in ["graph-test-cert.pem", "graph-test-key.pem", "graph-other-cert.pem"] {
        std::fs::copy(data.join(name), dir.path().join(name)).unwrap();
    }
    let config = dir.path().join("cutover.toml");
    let env = |v: &str| (v == "PW").then(|| "s3cret".to_owned());
    let app = "oauth_tenant_id = \"t\"\noauth_client_id = \"c\"\n";
    let cert = "oauth_certificate_file = \"graph-test-cert.pem\"\noauth_private_key_file = \"graph-test-key.pem\"\n";
    let maildir = "[target]\nkind = \"maildir\"\npath = \"x\"\n";
    let certificate = |tokens: &Option<crate::oauth::TokenSettings>| match tokens {
        Some(crate::oauth::TokenSettings::Microsoft(app)) => {
            assert_eq!(app.scope, "https://outlook.office365.com/.default");
            matches!(app.auth, crate::oauth::entra::ClientAuth::Certificate(_))
        }
        _ => false,
    };

    let s = parse(
        &format!("[source]\nhost = \"h\"\nauth = \"xoauth2\"\n{app}{cert}{maildir}"),
        &config,
        &env,
    )
    .unwrap();
    assert!(certificate(&s.source.tokens().cloned()), "{:?}", s.source.tokens());
    assert!(!format!("{s:?}").contains("PRIVATE KEY"), "no key in debug output");
    let s = parse(
        &format!("[source]\nhost = \"h\"\n[target]\nkind = \"imap\"\nhost = \"t\"\nauth = \"xoauth2\"\n{app}{cert}"),
        &config,
        &env,
    )
    .unwrap();
    let TargetSettings::Imap { tokens, .. } = &s.target else {
        panic!("not imap")
    };
    assert!(certificate(tokens), "{tokens:?}");

    for (extra, want) in [
        (
            format!("{app}oauth_client_secret_env = \"PW\"\n{cert}"),
            "[source] set oauth_client_secret_env or oauth_certificate_file with oauth_private_key_file, not both",
        ),
        (
            format!("{app}oauth_certificate_file = \"graph-test-cert.pem\"\n"),
            "[source] oauth_certificate_file and oauth_private_key_file go together",
        ),
        (
            format!(
                "{app}oauth_certificate_file = \"graph-other-cert.pem\"\noauth_private_key_file = \"graph-test-key.pem\"\n"
            ),
            "[source] oauth_private_key_file does not belong to the certificate",
        ),
        (
            format!("{app}oauth_certificate_file = \"nope.pem\"\noauth_private_key_file = \"graph-test-key.pem\"\n"),
            "[source] oauth_certificate_file",
        ),
        (cert.to_owned(), "need oauth_tenant_id, oauth_client_id"),
    ] {
        let err = parse(
            &format!("[source]\nhost = \"h\"\nauth = \"xoauth2\"\n{extra}{maildir}"),
            &config,
            &env,
        )
        .unwrap_err();
        assert!(err.0.contains(want), "{extra:?}: {}", err.0);
        assert!(!err.0.contains("PRIVATE KEY-----"), "no key material: {}", err.0);
    }
    let err = parse(&format!("[source]\nhost = \"h\"\n{cert}{maildir}"), &config, &env).unwrap_err();
    assert!(err.0.contains("need auth = \"xoauth2\""), "{}", err.0);
}

#[test]
fn takeout_source_and_label_rules() {
    let s = parse_str("[source]\nkind = \"mbox\"\npath = \"takeout/{email}.mbox\"\ngmail_labels = \"folders\"\ncopy_trash = true\n[target]\nkind = \"maildir\"\npath = \"x\"\n").unwrap();
    let path = s.source.mbox_path().expect("mbox source");
    assert_eq!(
        path,
        Path::new("/etc/cutover/takeout/{email}.mbox"),
        "relative to the config file"
    );
    assert_eq!(s.labels.mode, crate::labels::LabelMode::Folders);
    assert!(s.labels.keep_trash && !s.labels.keep_junk);
    let d = parse_str("[source]\nhost = \"h\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n").unwrap();
    assert_eq!(d.labels, crate::labels::Rules::default());
    assert!(d.source.mbox_path().is_none());
    let err = parse_str("[source]\nkind = \"mbox\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n").unwrap_err();
    assert!(err.0.contains("needs path"), "{}", err.0);
    let err = parse_str(
        "[source]\nkind = \"mbox\"\nhost = \"h\"\npath = \"p\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n",
    )
    .unwrap_err();
    assert!(err.0.contains("host is for an IMAP source"), "{}", err.0);
    let err = parse_str("[source]\n[target]\nkind = \"maildir\"\npath = \"x\"\n").unwrap_err();
    assert!(err.0.contains("host is missing"), "{}", err.0);
    let err =
        parse_str("[source]\nhost = \"h\"\ngmail_labels = \"tags\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n")
            .unwrap_err();
    assert!(err.0.contains("gmail_labels"), "{}", err.0);
}

#[test]
fn pacing_caps_have_defaults_and_are_checked() {
    let base = "[source]\nhost = \"h\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n";
    let s = parse_str(base).unwrap();
    assert_eq!(s.limits.pace, crate::pace::Caps::default());
    assert_eq!(s.limits.pace.connections_per_user, 10);
    let s = parse_str(&format!(
        "{base}[limits]\nmax_connections_per_source_host = 40\nlogins_per_second = 5\n\
         source_messages_per_second = 200\ntarget_bytes_per_second = 1000000\n"
    ))
    .unwrap();
    assert_eq!(s.limits.pace.connections_per_source_host, 40);
    assert_eq!(s.limits.pace.logins_per_second, 5);
    assert_eq!(s.limits.pace.source_messages_per_second, 200);
    assert_eq!(s.limits.pace.target_bytes_per_second, 1_000_000);
    assert_eq!(s.limits.pace.source_bytes_per_second, 0);
    let err = parse_str(&format!("{base}[run]\nconnections_per_user = 12\n"))
        .unwrap_err()
        .0;
    assert!(
        err.contains("connections_per_user = 12") && err.contains("max_connections_per_user = 10"),
        "{err}"
    );
    let err = parse_str(&format!("{base}[limits]\nmax_connections_per_source_host = 0\n"))
        .unwrap_err()
        .0;
    assert!(
        err.contains("max_connections_per_source_host must be at least 1"),
        "{err}"
    );
}

#[test]
fn limits_are_checked() {
    let err = parse_str(
        "[source]\nhost = \"h\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n[limits]\nmax_message_bytes = 200000000\n",
    )
    .unwrap_err();
    assert!(err.0.contains("max_message_bytes"), "{err}");
}

#[test]
fn maildir_folder_names_are_utf7_unless_set_to_utf8() {
    let base = "[source]\nhost = \"h\"\n[target]\nkind = \"maildir\"\npath = \"x\"\n";
    let names = |s: &Settings| match &s.target {
        TargetSettings::Maildir { folder_names, .. } => *folder_names,
        other => panic!("{other:?}"),
    };
    assert_eq!(names(&parse_str(base).unwrap()), MaildirFolderNames::Utf7);
    let s = parse_str(&format!("{base}folder_names = \"utf8\"\n")).unwrap();
    assert_eq!(names(&s), MaildirFolderNames::Utf8);
    let s = parse_str(&format!("{base}folder_names = \"utf7\"\n")).unwrap();
    assert_eq!(names(&s), MaildirFolderNames::Utf7);
    for bad in ["\"utf-8\"", "\"UTF8\"", "\"\"", "8"] {
        let err = parse_str(&format!("{base}folder_names = {bad}\n")).unwrap_err().0;
        assert!(
            err.contains("folder_names") && err.contains("\"utf7\"") && err.contains("\"utf8\""),
            "{bad}: {err}"
        );
    }
    // The key belongs to the Maildir target alone.
    let err = parse_str("[source]\nhost = \"h\"\n[target]\nkind = \"imap\"\nhost = \"t\"\nfolder_names = \"utf8\"\n")
        .unwrap_err()
        .0;
    assert!(err.contains("folder_names"), "{err}");
}

#[test]
fn contacts_and_calendars_are_off_unless_asked_for_and_checked_when_they_are() {
    const MAILDIR: &str = "[source]\nhost = \"imap.example.com\"\n[target]\nkind = \"maildir\"\npath = \"out\"\n";
    assert!(parse_str(MAILDIR).unwrap().pim.is_none(), "no section: mail only");
    let with = |section: &str| parse_str(&format!("{MAILDIR}[contacts_calendars]\n{section}"));

    let s = with("source = \"dav\"\nurl = \"https://dav.example.org/\"\ntarget = \"dav\"\ntarget_url = \"https://new.example.org/dav\"\n")
        .unwrap();
    let pim = s.pim.unwrap();
    assert_eq!(
        pim.source,
        PimSourceSettings::Dav {
            url: "https://dav.example.org".into()
        }
    );
    assert_eq!(
        pim.target,
        PimTargetSettings::Dav {
            url: "https://new.example.org/dav".into()
        }
    );
    assert_eq!(pim.timeout, Duration::from_secs(60));
    assert!(pim.tokens.is_none(), "the users file's password by default");
    for (section, names) in [
        ("source = \"dav\"\n", "url"),
        (
            "source = \"dav\"\nurl = \"http://dav.example.org/\"\ntarget = \"dav\"\ntarget_url = \"https://t/\"\n",
            "plain http",
        ),
        ("source = \"dav\"\nurl = \"https://d/\"\n", "target is missing"),
        (
            "source = \"dav\"\nurl = \"https://d/\"\ntarget = \"graph\"\n",
            "[target] kind = \"graph\"",
        ),
        (
            "source = \"dav\"\nurl = \"https://d/\"\ntarget = \"dav\"\n",
            "target_url",
        ),
        (
            "source = \"dav\"\nurl = \"https://d/\"\ntarget = \"dav\"\ntarget_url = \"https://t/\"\ntimeout_seconds = 0\n",
            "timeout_seconds",
        ),
        ("url = \"https://d/\"\n", "source is \"none\""),
        ("source = \"caldav\"\n", "source"),
        ("source = \"dav\"\nurll = \"https://d/\"\n", "urll"),
        ("source = \"files\"\n", "needs path"),
        (
            "source = \"files\"\npath = \"t/{email}\"\nurl = \"https://d/\"\n",
            "url is for source = \"dav\"",
        ),
        (
            "source = \"dav\"\nurl = \"https://d/\"\npath = \"t\"\ntarget = \"dav\"\ntarget_url = \"https://t/\"\n",
            "path is for source = \"files\"",
        ),
        ("path = \"t/{email}\"\n", "source is \"none\""),
        (
            "source = \"dav\"\nurl = \"https://d/\"\ntarget = \"dav\"\ntarget_url = \"https://t/\"\ntoken_command = \"x\"\n",
            "need auth = \"oauth\"",
        ),
        (
            "source = \"dav\"\nurl = \"https://d/\"\ntarget = \"dav\"\ntarget_url = \"https://t/\"\nauth = \"oauth\"\n",
            "needs token_command",
        ),
        (
            "source = \"files\"\npath = \"t\"\ntarget = \"dav\"\ntarget_url = \"https://t/\"\nauth = \"oauth\"\ntoken_command = \"x\"\n",
            "files need no login",
        ),
        (
            "source = \"dav\"\nurl = \"https://d/\"\ntarget = \"dav\"\ntarget_url = \"https://t/\"\nauth = \"oauth\"\noauth_service_account_file = \"/nonexistent/key.json\"\n",
            "/nonexistent/key.json",
        ),
    ] {
        let err = with(section).unwrap_err();
        assert!(err.0.contains(names), "{section}: {err}");
    }

    // Files without a path beside a Takeout mbox: the same export.
    let takeout = |mbox: &str| {
        parse_str(&format!(
            "[source]\nkind = \"mbox\"\npath = \"{mbox}\"\n[target]\nkind = \"maildir\"\npath = \"out\"\n[contacts_calendars]\nsource = \"files\"\ntarget = \"dav\"\ntarget_url = \"https://t/\"\n"
        ))
        .unwrap()
        .pim
        .unwrap()
        .source
    };
    assert_eq!(
        takeout("exports/{email}/Takeout/Mail/All mail Including Spam and Trash.mbox"),
        PimSourceSettings::Files {
            path: "/etc/cutover/exports/{email}/Takeout".into()
        }
    );
    assert_eq!(
        takeout("mail/{email}/all.mbox"),
        PimSourceSettings::Files {
            path: "/etc/cutover/mail/{email}".into()
        }
    );
    // A folder shared by every user's mbox is no user's export.
    let shared = parse_str(
        "[source]\nkind = \"mbox\"\npath = \"mail/{email}.mbox\"\n[target]\nkind = \"maildir\"\npath = \"out\"\n[contacts_calendars]\nsource = \"files\"\ntarget = \"dav\"\ntarget_url = \"https://t/\"\n",
    )
    .unwrap_err();
    assert!(shared.0.contains("needs path"), "{shared}");

    // OAuth from a token command.
    let s = with("source = \"dav\"\nurl = \"https://dav.example.org/\"\ntarget = \"dav\"\ntarget_url = \"https://new.example.org/dav\"\nauth = \"oauth\"\ntoken_command = \"print-token\"\n")
        .unwrap();
    assert!(matches!(
        s.pim.unwrap().tokens,
        Some(crate::oauth::TokenSettings::Command(c)) if c == "print-token"
    ));

    // Files: a path template resolved against the config file's folder.
    let s = with("source = \"files\"\npath = \"takeout/{email}\"\ntarget = \"dav\"\ntarget_url = \"https://new.example.org/dav\"\n")
        .unwrap();
    assert_eq!(
        s.pim.unwrap().source,
        PimSourceSettings::Files {
            path: "/etc/cutover/takeout/{email}".into()
        }
    );
}
