//! Every input the fuzz targets (`fuzz/`) were seeded with or ever crashed
//! on, replayed through the same checks in the main suite: a crash found by
//! fuzzing is kept in `tests/corpus/fuzz/<target>/` and stays fixed.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("tests/corpus/fuzz").join(target),
        root.join("fuzz/seeds").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            out.push((e.path(), std::fs::read(e.path()).unwrap()));
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no inputs for {target}");
    out
}

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let all = inputs(target);
    for (path, data) in &all {
        let r = std::panic::catch_unwind(|| check(data));
        assert!(r.is_ok(), "{target}: {} fails its check again", path.display());
        // Truncations of each input too, as the fuzzer would try them.
        for cut in [1, data.len() / 3, data.len() / 2, data.len().saturating_sub(1)] {
            let r = std::panic::catch_unwind(|| check(&data[..cut.min(data.len())]));
            assert!(r.is_ok(), "{target}: {} cut at {cut} fails", path.display());
        }
    }
    all.len()
}

#[test]
fn users_csv_inputs_stay_fixed() {
    replay("users_csv", checks::users_csv);
}

#[test]
fn config_inputs_stay_fixed() {
    replay("config", checks::config);
}

#[test]
fn graph_json_inputs_stay_fixed() {
    replay("graph_json", checks::graph_json);
}
