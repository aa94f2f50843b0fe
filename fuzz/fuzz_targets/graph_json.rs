#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(
    init: {
        // json::build turns a panic of the MIME parser into a refused
        // message (what the product does with it); libFuzzer's panic hook
        // would abort before that. Back to the default hook: a panic that
        // escapes the target still aborts the process (it cannot unwind out
        // of libFuzzer's C entry point), so real crashes are still found.
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| checks::graph_json(data)
);
