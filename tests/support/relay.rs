//! A TCP relay in front of a real server that counts the bytes going each
//! way and keeps the start of what each client sent, so a test can see
//! what really crossed the wire (was a COMPRESS command sent? did the
//! server's answers shrink?) instead of trusting the client's own account.
//!
//! [`Relay::without_literal_plus_dropping_at_append`] plays a server
//! without LITERAL+ whose connection drops in the middle of a batch of
//! APPENDs.
//!
//! [`Relay::refusing_compress`] also turns every `COMPRESS DEFLATE` a
//! client sends into `COMPRESS DEFLATX`, which the server behind it then
//! refuses with its own NO: a server that advertises compression but
//! will not start it, as a proxy in front of a server without it does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::listener::Listener;

/// Bytes of each client's stream kept for [`Relay::client_streams`]: the
/// greeting-to-first-commands part where COMPRESS is negotiated.
const KEEP_BYTES: usize = 64 * 1024;

struct Shared {
    upstream: u16,
    refuse_compress: bool,
    /// Hide LITERAL+ from the client (capabilities rewritten to LITERAL-
    /// variants it must not use), so it sends synchronizing literals.
    hide_literal_plus: bool,
    /// Capabilities hidden from the client (their last letter turned into
    /// `_`, an unknown capability): `CONDSTORE`, `QRESYNC`.
    hide_capabilities: Vec<Vec<u8>>,
    /// Counts APPEND commands down; the one that takes it from 1 to 0 is
    /// never passed on, and its connection is cut (0: never).
    drop_at_append: AtomicU64,
    /// How long the server side of a session outlives its end (0: not at
    /// all): the server's close reaches the client only after it, as with
    /// a server slow to tear a session down.
    linger_ms: u64,
    /// CREATE commands naming a mailbox that contains this text are
    /// answered NO here and never reach the server.
    refuse_create: Option<String>,
    /// How long each new connection waits before it reaches the server
    /// (0: not at all).
    connect_delay_ms: u64,
    /// Commands with this verb (`EXAMINE`) wait this long before they reach
    /// the server.
    slow_verb: Option<(Vec<u8>, u64)>,
    /// Counts client lines containing this text down; the one that takes
    /// it from 1 to 0 is never passed on, and its connection is cut.
    drop_at_line: Option<Vec<u8>>,
    drop_at_line_count: AtomicU64,
    /// Sessions open now, and the most ever open at once; a session
    /// counts until the server side has let go, linger included.
    live: AtomicU64,
    max_live: AtomicU64,
    to_server: AtomicU64,
    to_client: AtomicU64,
    /// The first [`KEEP_BYTES`] each client sent, one entry per connection.
    streams: Mutex<Vec<Arc<Mutex<Vec<u8>>>>>,
}

/// How a relay misbehaves (all off: a faithful relay).
#[derive(Default)]
struct Options {
    refuse_compress: bool,
    hide_literal_plus: bool,
    hide_capabilities: Vec<Vec<u8>>,
    drop_at_append: u64,
    linger_ms: u64,
    refuse_create: Option<String>,
    connect_delay_ms: u64,
    slow_verb: Option<(Vec<u8>, u64)>,
    drop_at_line: Option<(Vec<u8>, u64)>,
}

pub struct Relay {
    listener: Listener,
    shared: Arc<Shared>,
}

impl Relay {
    /// Listens on a free loopback port and relays everything to `upstream`.
    pub fn start(upstream: u16) -> Relay {
        Relay::launch(upstream, Options::default())
    }

    /// Like [`Relay::start`], but the server never gets a valid COMPRESS.
    pub fn refusing_compress(upstream: u16) -> Relay {
        Relay::launch(
            upstream,
            Options {
                refuse_compress: true,
                ..Options::default()
            },
        )
    }

    /// A server without LITERAL+ whose connection drops, once, when the
    /// `nth` APPEND command arrives (that command is never carried out):
    /// every later connection is relayed faithfully.
    pub fn without_literal_plus_dropping_at_append(upstream: u16, nth: u64) -> Relay {
        assert!(nth > 0);
        Relay::launch(
            upstream,
            Options {
                hide_literal_plus: true,
                drop_at_append: nth,
                ..Options::default()
            },
        )
    }

    /// A server slow to let go: each session lives on for `linger` after
    /// it ends, and the client hears the close only then. With
    /// [`Relay::max_sessions`] a test sees whether a client opened a new
    /// session before the server had let go of an old one.
    pub fn lingering(upstream: u16, linger: std::time::Duration) -> Relay {
        Relay::launch(
            upstream,
            Options {
                linger_ms: linger.as_millis() as u64,
                ..Options::default()
            },
        )
    }

    /// A server that refuses to CREATE any mailbox whose name contains
    /// `fragment` (`NO [CANNOT]`), as servers do for names they do not
    /// allow; everything else is relayed.
    pub fn refusing_create(upstream: u16, fragment: &str) -> Relay {
        Relay::launch(
            upstream,
            Options {
                refuse_create: Some(fragment.to_owned()),
                ..Options::default()
            },
        )
    }

    /// A server slow to answer a new connection: each one reaches the
    /// server (and hears its greeting) only after `delay`, so sessions a
    /// client opens one after another start in different seconds (Courier
    /// makes up a time-based UIDVALIDITY per session for a folder without
    /// saved UIDs); everything is relayed faithfully.
    pub fn delaying_sessions(upstream: u16, delay: std::time::Duration) -> Relay {
        Relay::launch(
            upstream,
            Options {
                connect_delay_ms: delay.as_millis() as u64,
                ..Options::default()
            },
        )
    }

    /// A server slow to open folders, whose connection drops once: every
    /// `verb` command (`EXAMINE`) waits `delay` before it reaches the
    /// server, and the `nth` client line containing `needle` is never
    /// passed on and cuts its connection; everything else is relayed
    /// faithfully. With Courier, a slow EXAMINE puts every opening of a
    /// folder without saved UIDs in another second, so each gets another
    /// UIDVALIDITY.
    pub fn slow_to_open_dropping_once(
        upstream: u16,
        verb: &str,
        delay: std::time::Duration,
        needle: &str,
        nth: u64,
    ) -> Relay {
        Relay::launch(
            upstream,
            Options {
                slow_verb: Some((verb.as_bytes().to_ascii_uppercase(), delay.as_millis() as u64)),
                drop_at_line: Some((needle.as_bytes().to_vec(), nth)),
                ..Options::default()
            },
        )
    }

    /// A server without these capabilities (`CONDSTORE`, `QRESYNC`): each
    /// name is spoiled in what the server says, so the client never uses
    /// it; everything else is relayed faithfully.
    pub fn hiding_capabilities(upstream: u16, names: &[&str]) -> Relay {
        Relay::launch(
            upstream,
            Options {
                hide_capabilities: names.iter().map(|n| n.as_bytes().to_vec()).collect(),
                ..Options::default()
            },
        )
    }

    fn launch(upstream: u16, o: Options) -> Relay {
        let shared = Arc::new(Shared {
            upstream,
            refuse_compress: o.refuse_compress,
            hide_literal_plus: o.hide_literal_plus,
            hide_capabilities: o.hide_capabilities,
            drop_at_append: AtomicU64::new(o.drop_at_append),
            linger_ms: o.linger_ms,
            refuse_create: o.refuse_create,
            connect_delay_ms: o.connect_delay_ms,
            slow_verb: o.slow_verb,
            drop_at_line_count: AtomicU64::new(o.drop_at_line.as_ref().map_or(0, |(_, n)| *n)),
            drop_at_line: o.drop_at_line.map(|(needle, _)| needle),
            live: AtomicU64::new(0),
            max_live: AtomicU64::new(0),
            to_server: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            streams: Mutex::new(Vec::new()),
        });
        let listener = Listener::spawn(shared.clone(), session);
        Relay { listener, shared }
    }

    pub fn port(&self) -> u16 {
        self.listener.port()
    }

    /// The most sessions that were open at once, each counted until the
    /// server side let go of it.
    pub fn max_sessions(&self) -> u64 {
        self.shared.max_live.load(Ordering::SeqCst)
    }

    /// Whether the connection drop set up at creation has happened.
    pub fn dropped(&self) -> bool {
        self.shared.hide_literal_plus && self.shared.drop_at_append.load(Ordering::SeqCst) == 0
    }

    /// Bytes clients sent, as they crossed the wire.
    pub fn bytes_to_server(&self) -> u64 {
        self.shared.to_server.load(Ordering::SeqCst)
    }

    /// Bytes the server sent, as they crossed the wire.
    pub fn bytes_to_client(&self) -> u64 {
        self.shared.to_client.load(Ordering::SeqCst)
    }

    /// The start of each connection's client stream, in connection order.
    pub fn client_streams(&self) -> Vec<Vec<u8>> {
        self.shared
            .streams
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.lock().unwrap().clone())
            .collect()
    }

    /// How many client connections sent `needle` (case-sensitive).
    pub fn connections_sending(&self, needle: &[u8]) -> usize {
        self.client_streams()
            .iter()
            .filter(|s| s.windows(needle.len()).any(|w| w == needle))
            .count()
    }
}

fn session(client: TcpStream, shared: Arc<Shared>) {
    if shared.connect_delay_ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(shared.connect_delay_ms));
    }
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", shared.upstream)) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let kept = Arc::new(Mutex::new(Vec::new()));
    shared.streams.lock().unwrap().push(kept.clone());
    let live = shared.live.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_live.fetch_max(live, Ordering::SeqCst);
    // Server → client; the session ends when the server has closed its
    // side (and, lingering, a moment later).
    {
        let mut from = upstream.try_clone().unwrap();
        let mut to = client.try_clone().unwrap();
        let shared = shared.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                shared.to_client.fetch_add(n as u64, Ordering::SeqCst);
                if shared.hide_literal_plus {
                    // "LITERAL+" becomes "LITERAL_", an unknown capability.
                    let mut at = 0;
                    while let Some(i) = buf[at..n].windows(8).position(|w| w.eq_ignore_ascii_case(b"LITERAL+")) {
                        buf[at + i + 7] = b'_';
                        at += i + 8;
                    }
                }
                for name in &shared.hide_capabilities {
                    let mut at = 0;
                    while let Some(i) = buf[at..n]
                        .windows(name.len())
                        .position(|w| w.eq_ignore_ascii_case(name))
                    {
                        buf[at + i + name.len() - 1] = b'_';
                        at += i + name.len();
                    }
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            if shared.linger_ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(shared.linger_ms));
            }
            // Counted out before the client can hear of the close.
            shared.live.fetch_sub(1, Ordering::SeqCst);
            let _ = to.shutdown(Shutdown::Write);
        });
    }
    // Client → server: raw chunks, or whole lines when COMPRESS is to be
    // spoiled (the client then never compresses, so its stream stays
    // line-framed text and literals).
    let mut up = upstream;
    let record = |data: &[u8]| {
        shared.to_server.fetch_add(data.len() as u64, Ordering::SeqCst);
        let mut kept = kept.lock().unwrap();
        let room = KEEP_BYTES.saturating_sub(kept.len());
        kept.extend_from_slice(&data[..data.len().min(room)]);
    };
    if shared.refuse_compress
        || shared.hide_literal_plus
        || shared.refuse_create.is_some()
        || shared.slow_verb.is_some()
        || shared.drop_at_line.is_some()
    {
        let mut reader = BufReader::new(client.try_clone().unwrap());
        // Answers given here instead of the server's: the server is idle
        // for this client then (it waits for the answer), so nothing
        // interleaves.
        let mut client_writer = client.try_clone().unwrap();
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            record(&line);
            let upper = line.to_ascii_uppercase();
            if shared.refuse_compress
                && let Some(at) = upper.windows(16).position(|w| w == b"COMPRESS DEFLATE")
            {
                line[at + 15] = b'X';
            }
            let verb = upper.split(|b| *b == b' ').nth(1).unwrap_or_default();
            if verb == b"CREATE"
                && let Some(fragment) = &shared.refuse_create
                && line.windows(fragment.len()).any(|w| w == fragment.as_bytes())
            {
                let tag = String::from_utf8_lossy(line.split(|b| *b == b' ').next().unwrap_or_default()).into_owned();
                let refusal = format!("{tag} NO [CANNOT] This server does not allow that mailbox name\r\n");
                if client_writer.write_all(refusal.as_bytes()).is_err() {
                    break;
                }
                continue;
            }
            if let Some((slow, ms)) = &shared.slow_verb
                && verb == slow.as_slice()
            {
                std::thread::sleep(std::time::Duration::from_millis(*ms));
            }
            if let Some(needle) = &shared.drop_at_line
                && line.windows(needle.len()).any(|w| w == needle.as_slice())
                && shared
                    .drop_at_line_count
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    == Ok(1)
            {
                let _ = client.shutdown(Shutdown::Both);
                let _ = up.shutdown(Shutdown::Both);
                break;
            }
            let is_append = verb == b"APPEND";
            if is_append
                && shared
                    .drop_at_append
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    == Ok(1)
            {
                let _ = client.shutdown(Shutdown::Both);
                let _ = up.shutdown(Shutdown::Both);
                break;
            }
            if up.write_all(&line).is_err() {
                break;
            }
        }
    } else {
        let mut from = client.try_clone().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            record(&buf[..n]);
            if up.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    }
    let _ = up.shutdown(Shutdown::Write);
}
