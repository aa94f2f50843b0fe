//! config.example.toml is the documentation of every key: it must parse as
//! it is shipped, with the defaults it claims.

use std::path::Path;

use cutover::imap::Compression;

#[test]
fn the_shipped_example_parses_with_its_documented_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let s = cutover::settings::parse(&text, &path, &|_| None).expect("config.example.toml parses");
    assert_eq!(s.source.endpoint().unwrap().port, 993);
    assert_eq!(s.limits.max_items, 500_000);
    assert_eq!(s.limits.max_message_bytes, 36_700_160);
    assert_eq!(s.run.connections_per_user, 4);
    assert_eq!(s.run.max_in_flight_bytes, 96 * 1024 * 1024);
    assert!(text.contains("max_in_flight_bytes = 100663296"));
    // COMPRESS=DEFLATE, beyond the local networks by default on both IMAP
    // sides.
    assert_eq!(s.source.endpoint().unwrap().compress, Compression::Auto);
    assert!(
        matches!(&s.target, cutover::settings::TargetSettings::Imap { endpoint, .. } if endpoint.compress == Compression::Auto),
        "the example's IMAP target compresses beyond the local networks by default"
    );
    assert_eq!(
        text.matches("# compress = \"auto\" ").count(),
        2,
        "compress is documented in [source] and [target]"
    );
    // The Maildir target's folder name spelling, with its default.
    assert!(
        text.contains("# folder_names = \"utf7\" "),
        "[target] folder_names is not documented with its default"
    );
    // Pacing keys: every one documented with its default.
    let pace = &s.limits.pace;
    for (key, value) in [
        (
            "max_connections_per_source_host",
            pace.connections_per_source_host as u64,
        ),
        ("max_connections_per_user", pace.connections_per_user as u64),
        ("logins_per_second", u64::from(pace.logins_per_second)),
        ("source_messages_per_second", u64::from(pace.source_messages_per_second)),
        ("source_bytes_per_second", pace.source_bytes_per_second),
        ("target_messages_per_second", u64::from(pace.target_messages_per_second)),
        ("target_bytes_per_second", pace.target_bytes_per_second),
    ] {
        assert!(
            text.contains(&format!("# {key} = {value} ")),
            "{key} = {value} is not documented"
        );
    }
}
