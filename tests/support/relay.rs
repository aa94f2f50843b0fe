//! A TCP relay in front of a real server that counts the bytes going each
//! way and keeps the start of what each client sent, so a test can see
//! what really crossed the wire (was a COMPRESS command sent? did the
//! server's answers shrink?) instead of trusting the client's own account.
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
    to_server: AtomicU64,
    to_client: AtomicU64,
    /// The first [`KEEP_BYTES`] each client sent, one entry per connection.
    streams: Mutex<Vec<Arc<Mutex<Vec<u8>>>>>,
}

pub struct Relay {
    listener: Listener,
    shared: Arc<Shared>,
}

impl Relay {
    /// Listens on a free loopback port and relays everything to `upstream`.
    pub fn start(upstream: u16) -> Relay {
        Relay::launch(upstream, false)
    }

    /// Like [`Relay::start`], but the server never gets a valid COMPRESS.
    pub fn refusing_compress(upstream: u16) -> Relay {
        Relay::launch(upstream, true)
    }

    fn launch(upstream: u16, refuse_compress: bool) -> Relay {
        let shared = Arc::new(Shared {
            upstream,
            refuse_compress,
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
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", shared.upstream)) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let kept = Arc::new(Mutex::new(Vec::new()));
    shared.streams.lock().unwrap().push(kept.clone());
    // Server → client.
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
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
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
    if shared.refuse_compress {
        let mut reader = BufReader::new(client.try_clone().unwrap());
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            record(&line);
            let upper = line.to_ascii_uppercase();
            if let Some(at) = upper.windows(16).position(|w| w == b"COMPRESS DEFLATE") {
                line[at + 15] = b'X';
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
