//! What each fuzz target checks for one input, shared by the fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and the main suite's regression test
//! (`tests/fuzz_regressions.rs`), which replays every input kept in
//! `tests/corpus/fuzz/<target>/` so a crash once found stays fixed.

use std::path::Path;

/// The users CSV reader: never panics; a refusal lists at least one
/// problem; every accepted row has an address, and no password shows in
/// the row's debug output.
pub fn users_csv(data: &[u8]) {
    match cutover::roster::parse_users(data) {
        Ok(users) => {
            for u in &users {
                assert!(!u.email.is_empty(), "accepted a row without EmailAddress");
                let pw = u.password.expose();
                // (Unless the same text is also a field that is not secret.)
                let open = [
                    Some(&u.email),
                    Some(&u.username),
                    u.user_root.as_ref(),
                    u.target_username.as_ref(),
                ];
                let elsewhere = open.iter().flatten().any(|f| f.contains(pw));
                if pw.len() >= 8 && !elsewhere {
                    let shown = format!("{u:?}");
                    assert!(!shown.contains(pw), "password in debug output");
                }
            }
        }
        Err(problems) => assert!(!problems.is_empty(), "refused without a reason"),
    }
}

/// The config reader: never panics, and a refusal has a message.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = cutover::settings::parse(text, Path::new("fuzz.toml"), &|_| None) {
        assert!(!e.to_string().is_empty(), "refused without a reason");
    }
}

/// MIME → Graph JSON: never panics; what it builds is JSON within Graph's
/// request limit and never a draft; a refusal has a reason.
pub fn graph_json(data: &[u8]) {
    use cutover::target::graph::json;
    let flags = cutover::model::Flags::from_wire("\\Seen \\Flagged $label");
    match json::build(data, &flags, 1_700_000_000) {
        Ok(m) => {
            let v: serde_json::Value = serde_json::from_slice(&m.request).expect("request is JSON");
            assert!(m.request.len() <= json::REQUEST_MAX, "request over the limit");
            let props = v["singleValueExtendedProperties"].as_array().expect("properties");
            assert!(
                props.iter().any(|p| p["id"] == "Integer 0x0E07"),
                "PR_MESSAGE_FLAGS missing"
            );
        }
        Err(reason) => assert!(!reason.is_empty(), "refused without a reason"),
    }
}
