//! A hostile IMAP peer: a TCP relay in front of a real Dovecot that passes
//! everything through, except that for one chosen user, when the client
//! fetches message bodies, it answers with a scripted misbehaviour instead
//! (unexpected untagged responses, a literal whose declared size lies,
//! megabyte lines, a FETCH that never ends, silence mid-response).
//!
//! This is a fault fixture, not a mock of IMAP: every normal answer comes
//! from the real server behind it, so the run is real for everyone else and
//! for the victim up to the moment of the fault.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::listener::Listener;
use std::time::Duration;

/// One way a server can misbehave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehave {
    /// Valid but unasked-for untagged responses (ALERT, RECENT, FLAGS,
    /// CAPABILITY, EXPUNGE of another message) before the real answer: the
    /// client must cope and carry on.
    UnexpectedUntagged,
    /// An untagged response no IMAP parser accepts.
    GarbageUntagged,
    /// A literal announced shorter than the data that follows.
    LiteralShorterThanSent,
    /// A literal announced longer than the data sent, then silence.
    LiteralLongerThanSent,
    /// A literal announced at 4 GB.
    HugeLiteral,
    /// A 24 MiB line.
    HugeLine,
    /// FETCH answers that never stop coming.
    EndlessFetch,
    /// Half a response, then nothing (the connection stays open).
    StopsMidResponse,
    /// A FETCH answered `OK` with no message in it, while the folder still
    /// has them all (not in [`ALL`](Misbehave::ALL): the session goes on).
    OmitsBodies,
    /// A FETCH answered with `BODY[] NIL` for every message asked for
    /// (not in [`ALL`](Misbehave::ALL): the session goes on).
    NilBodies,
    /// The real answers, but from the first FETCH of bodies on at about
    /// 200 KiB/s, as over a slow link (not in [`ALL`](Misbehave::ALL)).
    SlowLink,
    /// Every RFC822.SIZE the server reports, from login on, is a tenth of
    /// the truth; the bodies are sent whole (not in [`ALL`](Misbehave::ALL)).
    UnderstatesSizes,
}

impl Misbehave {
    pub const ALL: [Misbehave; 8] = [
        Misbehave::UnexpectedUntagged,
        Misbehave::GarbageUntagged,
        Misbehave::LiteralShorterThanSent,
        Misbehave::LiteralLongerThanSent,
        Misbehave::HugeLiteral,
        Misbehave::HugeLine,
        Misbehave::EndlessFetch,
        Misbehave::StopsMidResponse,
    ];

    /// Whether the client can carry on over it (the others must drop the
    /// connection).
    pub fn is_survivable(self) -> bool {
        self == Misbehave::UnexpectedUntagged
    }
}

struct Shared {
    upstream: u16,
    /// (victim login, misbehaviour); `None` relays everything.
    script: Mutex<Option<(String, Misbehave)>>,
    hits: AtomicU64,
}

pub struct HostileServer {
    listener: Listener,
    shared: Arc<Shared>,
}

impl HostileServer {
    /// Listens on a free loopback port and relays to `upstream`.
    pub fn start(upstream: u16) -> HostileServer {
        let shared = Arc::new(Shared {
            upstream,
            script: Mutex::new(None),
            hits: AtomicU64::new(0),
        });
        let listener = Listener::spawn(shared.clone(), session);
        HostileServer { listener, shared }
    }

    pub fn port(&self) -> u16 {
        self.listener.port()
    }

    /// From now on, misbehave towards `victim` (or, with `None`, relay
    /// everything).
    pub fn script(&self, script: Option<(&str, Misbehave)>) {
        *self.shared.script.lock().unwrap() = script.map(|(v, m)| (v.to_owned(), m));
    }

    /// How many times the misbehaviour was played.
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::Relaxed)
    }
}

fn session(client: TcpStream, shared: Arc<Shared>) {
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", shared.upstream)) else {
        return;
    };
    let hijacked = Arc::new(AtomicBool::new(false));
    let slow = Arc::new(AtomicBool::new(false));
    let understate = Arc::new(AtomicBool::new(false));
    let to_client = Arc::new(Mutex::new(client.try_clone().unwrap()));
    // Server → client, until the session is hijacked.
    {
        let mut up = upstream.try_clone().unwrap();
        let to_client = to_client.clone();
        let hijacked = hijacked.clone();
        let slow = slow.clone();
        let understate = understate.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match up.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if hijacked.load(Ordering::SeqCst) {
                    continue;
                }
                let rewritten;
                let mut data = &buf[..n];
                if understate.load(Ordering::SeqCst) {
                    rewritten = understate_sizes(data);
                    data = &rewritten;
                }
                let sent = if slow.load(Ordering::SeqCst) {
                    // 8 KiB every 40 ms: about 200 KiB/s.
                    data.chunks(8 * 1024).try_for_each(|chunk| {
                        std::thread::sleep(Duration::from_millis(40));
                        to_client.lock().unwrap().write_all(chunk)
                    })
                } else {
                    to_client.lock().unwrap().write_all(data)
                };
                if sent.is_err() {
                    break;
                }
            }
        });
    }
    // Client → server, line by line (literals the client sends pass through
    // as lines too; only command lines are looked at).
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut up = upstream;
    let mut login: Option<String> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if hijacked.load(Ordering::SeqCst) {
            continue; // the client talks to no one now
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let mut words = text.split_whitespace();
        let tag = words.next().unwrap_or("").to_owned();
        let verb = words.next().unwrap_or("").to_ascii_uppercase();
        if verb == "LOGIN" {
            login = words.next().map(|w| w.trim_matches('"').to_owned());
        }
        let script = shared.script.lock().unwrap().clone();
        let victim = matches!((&script, &login), (Some((v, _)), Some(l)) if v == l);
        if victim && script.as_ref().is_some_and(|(_, m)| *m == Misbehave::UnderstatesSizes) {
            understate.store(true, Ordering::SeqCst);
            shared
                .hits
                .fetch_add(u64::from(text.contains("RFC822.SIZE")), Ordering::Relaxed);
            if up.write_all(&line).is_err() {
                break;
            }
            continue;
        }
        if victim && text.contains("BODY.PEEK[]") {
            let mode = script.unwrap().1;
            shared.hits.fetch_add(1, Ordering::Relaxed);
            if mode == Misbehave::SlowLink {
                slow.store(true, Ordering::SeqCst);
                if up.write_all(&line).is_err() {
                    break;
                }
                continue;
            }
            if matches!(mode, Misbehave::OmitsBodies | Misbehave::NilBodies) {
                // Answered here, in place of the server; the session goes on.
                let mut answer = String::new();
                if mode == Misbehave::NilBodies {
                    for uid in uid_set(&text) {
                        answer.push_str(&format!("* {uid} FETCH (UID {uid} BODY[] NIL)\r\n"));
                    }
                }
                answer.push_str(&format!("{tag} OK Fetch completed.\r\n"));
                if to_client.lock().unwrap().write_all(answer.as_bytes()).is_err() {
                    break;
                }
                continue;
            }
            if mode == Misbehave::UnexpectedUntagged {
                let noise = b"* OK [ALERT] Maintenance tonight at 22:00\r\n* 3 RECENT\r\n\
                    * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Odd)\r\n\
                    * CAPABILITY IMAP4rev1 LITERAL+ IDLE\r\n* OK [UNSEEN 1] hi\r\n";
                let _ = to_client.lock().unwrap().write_all(noise);
                if up.write_all(&line).is_err() {
                    break;
                }
                continue;
            }
            hijacked.store(true, Ordering::SeqCst);
            let out = to_client.clone();
            std::thread::spawn(move || misbehave(mode, &tag, &out));
            continue;
        }
        if up.write_all(&line).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.shutdown(Shutdown::Both);
}

/// `data` with every `RFC822.SIZE n` turned into a tenth of `n`.
fn understate_sizes(data: &[u8]) -> Vec<u8> {
    const KEY: &[u8] = b"RFC822.SIZE ";
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(at) = rest.windows(KEY.len()).position(|w| w == KEY) {
        out.extend_from_slice(&rest[..at + KEY.len()]);
        rest = &rest[at + KEY.len()..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let n: u64 = std::str::from_utf8(&rest[..digits]).unwrap_or("0").parse().unwrap_or(0);
        out.extend_from_slice((n / 10).to_string().as_bytes());
        rest = &rest[digits..];
    }
    out.extend_from_slice(rest);
    out
}

/// The UIDs of a `UID FETCH <set> ...` command line (ranges expanded).
fn uid_set(command: &str) -> Vec<u32> {
    let set = command.split_whitespace().nth(3).unwrap_or("");
    let mut uids = Vec::new();
    for part in set.split(',') {
        match part.split_once(':') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    uids.extend(a.min(b)..=a.max(b));
                }
            }
            None => uids.extend(part.parse::<u32>().ok()),
        }
    }
    uids
}

fn misbehave(mode: Misbehave, tag: &str, out: &Mutex<TcpStream>) {
    let mut out = out.lock().unwrap();
    let _ = out.set_write_timeout(Some(Duration::from_secs(30)));
    let _ = match mode {
        Misbehave::UnexpectedUntagged
        | Misbehave::OmitsBodies
        | Misbehave::NilBodies
        | Misbehave::SlowLink
        | Misbehave::UnderstatesSizes => Ok(()),
        Misbehave::GarbageUntagged => out.write_all(b"* 1 FETCH (UID ((( \x01\x02 garbage\r\n"),
        Misbehave::LiteralShorterThanSent => {
            let mut r = b"* 1 FETCH (UID 1 BODY[] {10}\r\n".to_vec();
            r.extend_from_slice(b"From: liar@example.test\r\nSubject: longer than announced\r\n\r\nbody\r\n)\r\n");
            r.extend_from_slice(format!("{tag} OK done\r\n").as_bytes());
            out.write_all(&r)
        }
        Misbehave::LiteralLongerThanSent => out.write_all(b"* 1 FETCH (UID 1 BODY[] {5000}\r\nFrom: x\r\n\r\nshort"),
        Misbehave::HugeLiteral => out.write_all(b"* 1 FETCH (UID 1 BODY[] {4000000000}\r\nFrom: x\r\n"),
        Misbehave::HugeLine => {
            let chunk = vec![b'a'; 1024 * 1024];
            let mut r = out.write_all(b"* OK ");
            for _ in 0..24 {
                if r.is_err() {
                    break;
                }
                r = out.write_all(&chunk);
            }
            r.and_then(|_| out.write_all(b"\r\n"))
        }
        Misbehave::EndlessFetch => {
            let mut r = Ok(());
            // Bounded so a client that never gives up cannot keep the test
            // alive forever; far more than any client limit.
            for n in 1..=5_000_000u64 {
                r = out.write_all(format!("* {n} FETCH (UID {n} FLAGS (\\Seen))\r\n").as_bytes());
                if r.is_err() {
                    break;
                }
            }
            r
        }
        Misbehave::StopsMidResponse => out.write_all(b"* 1 FETCH (UID 1 BODY[] {300}\r\nFrom: half"),
    };
    let _ = out.flush();
    // Silence from here on; the client must time out and drop us.
}
