//! The accept loop of the test relays in front of Dovecot: a free loopback
//! port, one thread per client, stopped when the handle is dropped.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Listener {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Listener {
    /// Listens on a free loopback port and hands each client, with
    /// `shared`, to `session` on a thread of its own.
    pub fn spawn<S: Send + Sync + 'static>(shared: Arc<S>, session: fn(TcpStream, Arc<S>)) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback relay");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || session(client, shared));
            }
        });
        Listener { port, stop }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the stop flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
