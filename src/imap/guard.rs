//! The byte stream under the IMAP library, and the guard on it that bounds
//! what a server may send. [`Stream`] is plain TCP (loopback only) or TLS;
//! [`Guarded`] wraps it, checks every byte read against the line, literal
//! and response limits ([`MAX_LINE_BYTES`], [`MAX_LITERAL_BYTES`],
//! [`MAX_RESPONSE_BYTES`]), and once COMPRESS=DEFLATE is on runs both
//! directions through [`deflate`], so the limits apply to the inflated
//! bytes. Everything here works on IMAP framing only (lines and literals),
//! never on the meaning of a response.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::deflate;

/// A byte stream that is either plain TCP (loopback only) or TLS.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Largest line (outside literals) accepted from a server. Real answers are
/// far shorter; the longest legitimate ones are SEARCH results, a few bytes
/// per UID.
pub const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;
/// Largest literal accepted from a server: above the 150 MiB ceiling of
/// `max_message_bytes`, so any message the run may copy fits.
pub const MAX_LITERAL_BYTES: u64 = 160 * 1024 * 1024;
/// Largest single response (its lines and literals together).
pub const MAX_RESPONSE_BYTES: u64 = MAX_LITERAL_BYTES + MAX_LINE_BYTES;
/// Largest sum of untagged answers kept for one command other than FETCH
/// (LIST, SEARCH, STATUS ...), whose answers are held until the command ends.
pub const MAX_UNTAGGED_BYTES: usize = 64 * 1024 * 1024;

/// Watches every byte a server sends, so a hostile or broken server cannot
/// make the client buffer without bound: lines longer than
/// [`MAX_LINE_BYTES`], literals announced larger than
/// [`MAX_LITERAL_BYTES`] and responses larger than [`MAX_RESPONSE_BYTES`]
/// fail the read (and so the connection) with an error that says which.
/// It follows the IMAP framing only: a line ends at LF, and a line ending in
/// `{N}` (or `~{N}`) is followed by N bytes of literal.
#[derive(Debug, Default)]
struct ResponseGuard {
    line: u64,
    literal_left: u64,
    /// Literal bytes read so far: the progress of a large message.
    literal_read: u64,
    response: u64,
    /// The last bytes of the current line, to find a `{N}` at its end.
    tail: Vec<u8>,
}

impl ResponseGuard {
    fn check(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        let bad = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidData, msg);
        while !data.is_empty() {
            if self.literal_left > 0 {
                let n = (self.literal_left).min(data.len() as u64);
                self.literal_left -= n;
                self.literal_read += n;
                self.response += n;
                data = &data[n as usize..];
                continue;
            }
            let upto = data.iter().position(|&b| b == b'\n').map_or(data.len(), |i| i + 1);
            let (chunk, rest) = data.split_at(upto);
            data = rest;
            self.line += chunk.len() as u64;
            self.response += chunk.len() as u64;
            self.tail.extend_from_slice(chunk);
            if self.tail.len() > 32 {
                self.tail.drain(..self.tail.len() - 32);
            }
            if self.line > MAX_LINE_BYTES {
                return Err(bad(format!(
                    "the server sent a line longer than {} MiB; dropping the connection",
                    MAX_LINE_BYTES >> 20
                )));
            }
            if self.response > MAX_RESPONSE_BYTES {
                return Err(bad(format!(
                    "the server sent a response larger than {} MiB; dropping the connection",
                    MAX_RESPONSE_BYTES >> 20
                )));
            }
            if chunk.last() != Some(&b'\n') {
                continue;
            }
            let announced = literal_at_end(&self.tail);
            self.line = 0;
            self.tail.clear();
            match announced {
                Some(n) if n > MAX_LITERAL_BYTES => {
                    return Err(bad(format!(
                        "the server announced a literal of {n} bytes, over the {} MiB limit; dropping the connection",
                        MAX_LITERAL_BYTES >> 20
                    )));
                }
                Some(n) => self.literal_left = n,
                None => self.response = 0,
            }
        }
        Ok(())
    }
}

/// The size of the literal announced at the end of a line (`... {123}\r\n`).
fn literal_at_end(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Too many digits to fit is over any limit.
    Some(std::str::from_utf8(digits).ok()?.parse().unwrap_or(u64::MAX))
}

/// The connection as the IMAP library sees it: the stream, with every
/// byte read checked by a [`ResponseGuard`], and, once COMPRESS=DEFLATE is
/// active, compressed both ways (the guard sees the inflated bytes).
#[derive(Debug)]
pub struct Guarded {
    pub(super) inner: Stream,
    guard: ResponseGuard,
    pub(super) deflate: Option<Box<deflate::Deflate>>,
    /// The server's address, for [`Compression::Auto`](super::Compression::Auto).
    pub(super) peer: Option<IpAddr>,
    /// Bytes read from the server so far (after inflating), shared with
    /// the connection for its command deadline.
    pub(super) received: Arc<AtomicU64>,
    /// Of those, the bytes inside literals: a FETCH answer bringing a large
    /// message may take longer while they keep coming. Only literals count:
    /// a line must arrive within the read timeout, whatever its length.
    pub(super) literal_received: Arc<AtomicU64>,
}

impl Guarded {
    pub(super) fn new(inner: Stream, peer: Option<IpAddr>) -> Guarded {
        Guarded {
            inner,
            guard: ResponseGuard::default(),
            deflate: None,
            peer,
            received: Arc::default(),
            literal_received: Arc::default(),
        }
    }

    /// Everything from the next byte on, both ways, is raw DEFLATE. Called
    /// right after the server's OK to `COMPRESS DEFLATE`, when nothing is
    /// buffered in either direction.
    pub(super) fn start_deflate(&mut self) {
        self.deflate = Some(Box::default());
    }

    pub(super) fn deflate_totals(&self) -> Option<deflate::DeflateTotals> {
        self.deflate.as_ref().map(|d| d.totals())
    }
}

impl AsyncRead for Guarded {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = match &mut this.deflate {
            Some(d) => d.poll_read(&mut this.inner, cx, buf),
            None => Pin::new(&mut this.inner).poll_read(cx, buf),
        };
        match polled {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                this.received.fetch_add(read.len() as u64, Ordering::Relaxed);
                let literal_before = this.guard.literal_read;
                let checked = this.guard.check(read);
                this.literal_received
                    .fetch_add(this.guard.literal_read - literal_before, Ordering::Relaxed);
                Poll::Ready(checked)
            }
            other => other,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match &mut this.deflate {
            Some(d) => d.poll_write(&mut this.inner, cx, buf),
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match &mut this.deflate {
            Some(d) => d.poll_flush(&mut this.inner, cx),
            None => Pin::new(&mut this.inner).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match &mut this.deflate {
            Some(d) => d.poll_shutdown(&mut this.inner, cx),
            None => Pin::new(&mut this.inner).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match &mut this.deflate {
            // The compressor takes one slice at a time.
            Some(d) => {
                let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
                d.poll_write(&mut this.inner, cx, first)
            }
            None => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.deflate.is_none() && self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn the_guard_follows_literals_and_bounds_lines_and_literal_sizes() {
        let mut g = ResponseGuard::default();
        // A FETCH with a literal holding CRLFs and braces, then the end.
        g.check(b"* 1 FETCH (UID 7 BODY[] {12}\r\nab{3}\r\n\r\ncd)\r\n")
            .unwrap();
        assert_eq!((g.line, g.literal_left, g.response), (0, 0, 0));
        // Split anywhere, even inside the announcement.
        for b in b"* 2 FETCH (BODY[] {5".iter().chain(b"}\r\nhello)\r\n") {
            g.check(&[*b]).unwrap();
        }
        assert_eq!((g.line, g.literal_left, g.response), (0, 0, 0));
        let err = g.check(b"* 3 FETCH (BODY[] {999999999999}\r\n").unwrap_err();
        assert!(err.to_string().contains("literal of 999999999999 bytes"), "{err}");
        let mut g = ResponseGuard::default();
        let big = vec![b'a'; (MAX_LINE_BYTES as usize) / 4];
        for _ in 0..4 {
            g.check(&big).unwrap();
        }
        let err = g.check(b"a").unwrap_err();
        assert!(err.to_string().contains("line longer than 16 MiB"), "{err}");
        assert_eq!(literal_at_end(b"x ~{42}\r\n"), Some(42));
        assert_eq!(literal_at_end(b"x {}\r\n"), None);
        assert_eq!(literal_at_end(b"x {4a}\r\n"), None);
    }

    /// Once COMPRESS=DEFLATE is on, the guard judges the inflated bytes:
    /// a compressed announcement of a 4 GB literal (a few bytes on the
    /// wire) fails the read like an uncompressed one.
    #[tokio::test]
    async fn the_guard_watches_the_inflated_bytes_of_a_compressed_connection() {
        use flate2::{Compress, Compression, FlushCompress};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.unwrap();
            let mut z = Compress::new(Compression::default(), false);
            let mut wire = Vec::with_capacity(4096);
            let answers = b"* 1 FETCH (UID 1 BODY[] {3}\r\nabc)\r\n* 2 FETCH (UID 2 BODY[] {4000000000}\r\n";
            z.compress_vec(answers, &mut wire, FlushCompress::Sync).unwrap();
            peer.write_all(&wire).await.unwrap();
            // Keep the connection open until the client gave up.
            let mut rest = Vec::new();
            let _ = peer.read_to_end(&mut rest).await;
        });
        let mut conn = Guarded::new(Stream::Plain(TcpStream::connect(addr).await.unwrap()), None);
        conn.start_deflate();
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        let err = loop {
            match conn.read(&mut buf).await {
                Ok(0) => panic!("the stream ended before the guard stopped it"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("literal of 4000000000 bytes"), "{err}");
        assert!(got.starts_with(b"* 1 FETCH (UID 1 BODY[] {3}\r\nabc)\r\n"), "{got:?}");
        drop(conn);
        server.await.unwrap();
    }
}
