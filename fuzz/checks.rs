//! What each fuzz target checks for one input, shared by the fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and the main suite's regression test
//! (`tests/fuzz_regressions.rs`), which replays every input kept in
//! `tests/corpus/fuzz/<target>/` so a crash once found stays fixed.

use std::path::Path;

/// The users CSV reader: never panics; a refusal lists at least one
/// problem; every accepted row has an address, and its debug output is
/// the same whatever its passwords are (so none can show in it).
pub fn users_csv(data: &[u8]) {
    match cutover::roster::parse_users(data) {
        Ok(users) => {
            for u in &users {
                assert!(!u.email.is_empty(), "accepted a row without EmailAddress");
                let mut other = u.clone();
                other.password = cutover::secret::Secret::new(format!("{}x", u.password.expose()));
                other.target_password = u
                    .target_password
                    .as_ref()
                    .map(|p| cutover::secret::Secret::new(format!("{}x", p.expose())));
                assert_eq!(
                    format!("{u:?}"),
                    format!("{other:?}"),
                    "a password shows in debug output"
                );
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
