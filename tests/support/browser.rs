//! Headless Chromium for the tests that render cutover's pages (the HTML
//! report, the `serve` dashboard): find the browser, run it with a
//! throw-away profile under a deadline, and read the screenshots it writes.

use std::io::Read;
use std::process::{Command, Output};

/// The Chromium binary, if installed (`scripts/install-deps` installs it).
pub fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

pub fn chromium_run(browser: &str, args: &[&str], url: &str) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("timeout");
    cmd.arg("120")
        .arg(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url);
    cmd.output().expect("run chromium")
}

/// A minimal PNG decoder (8-bit RGB or RGBA, not interlaced: what Chromium
/// writes): width, height and every pixel's RGB.
pub fn decode_png(data: &[u8]) -> (u32, u32, Vec<[u8; 3]>) {
    assert!(data.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let mut pos = 8;
    let (mut width, mut height, mut channels) = (0u32, 0u32, 0usize);
    let mut idat = Vec::new();
    while pos + 8 <= data.len() {
        let len = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &data[pos + 4..pos + 8];
        let body = &data[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(body[0..4].try_into().unwrap());
                height = u32::from_be_bytes(body[4..8].try_into().unwrap());
                assert_eq!(body[8], 8, "bit depth");
                channels = match body[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("PNG colour type {other}"),
                };
                assert_eq!(body[12], 0, "interlaced PNG");
            }
            b"IDAT" => idat.extend_from_slice(body),
            b"IEND" => break,
            _ => {}
        }
        pos += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(idat.as_slice())
        .read_to_end(&mut raw)
        .unwrap();
    let stride = width as usize * channels;
    let mut prev = vec![0u8; stride];
    let mut pixels = Vec::with_capacity((width * height) as usize);
    for row in raw.chunks(stride + 1).take(height as usize) {
        let filter = row[0];
        let mut cur = row[1..].to_vec();
        for i in 0..stride {
            let a = if i >= channels { cur[i - channels] as i16 } else { 0 };
            let b = prev[i] as i16;
            let c = if i >= channels { prev[i - channels] as i16 } else { 0 };
            let add = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("PNG filter {f}"),
            };
            cur[i] = cur[i].wrapping_add(add as u8);
        }
        pixels.extend(cur.chunks(channels).map(|p| [p[0], p[1], p[2]]));
        prev = cur;
    }
    (width, height, pixels)
}
