//! MIME → Graph JSON conversion (write_mode = "json"): a typical message
//! with an HTML alternative, and one with 8 MiB of attachments, where base64
//! and the split between inline and deferred attachments dominate.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, criterion_group, criterion_main};
use cutover::model::Flags;
use cutover::target::graph::json;

fn typical() -> Vec<u8> {
    let mut raw = String::from(
        "From: \"Ann Example\" <ann@example.com>\r\nTo: Bob <bob@example.com>, carol@example.com\r\n\
Subject: =?UTF-8?Q?Quartalsbericht_Gr=C3=BC=C3=9Fe?=\r\nDate: Tue, 30 Apr 2019 12:00:00 +0200\r\n\
Message-ID: <bench.1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
    );
    for i in 0..200 {
        raw.push_str(&format!(
            "Line {i} of the plain text part, long enough to look like prose.\r\n"
        ));
    }
    raw.push_str("--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>");
    for i in 0..200 {
        raw.push_str(&format!("<p>Line {i} of the <b>HTML</b> part.</p>\r\n"));
    }
    raw.push_str("</body></html>\r\n--b--\r\n");
    raw.into_bytes()
}

fn with_attachments() -> Vec<u8> {
    let mut raw = String::from(
        "From: ann@example.com\r\nSubject: files\r\nMessage-ID: <bench.2@example.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n",
    );
    for (i, size) in [512 * 1024, 2 * 1024 * 1024, 5 * 1024 * 1024 + 512 * 1024]
        .iter()
        .enumerate()
    {
        let bytes: Vec<u8> = (0..*size as u32)
            .map(|x| (x.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        raw.push_str(&format!(
            "--m\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"f{i}.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ));
        for line in STANDARD.encode(&bytes).as_bytes().chunks(76) {
            raw.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            raw.push_str("\r\n");
        }
    }
    raw.push_str("--m--\r\n");
    raw.into_bytes()
}

fn bench(c: &mut Criterion) {
    let flags = Flags::from_wire("\\Seen \\Flagged Work");
    let small = typical();
    c.bench_function("json: 20 KB multipart/alternative", |b| {
        b.iter(|| json::build(std::hint::black_box(&small), &flags, 1_556_704_800))
    });
    let big = with_attachments();
    c.bench_function("json: 8 MiB of attachments", |b| {
        b.iter(|| json::build(std::hint::black_box(&big), &flags, 1_556_704_800))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
