//! COMPRESS=DEFLATE (RFC 4978): once the server has said OK to `COMPRESS
//! DEFLATE`, both directions of the connection are one raw DEFLATE stream
//! each (RFC 1951, no zlib header). Mail is mostly text and compresses to
//! a third or less, which is what a migration across a WAN link to Gmail or
//! an on-premises Exchange is bound by; on loopback it only costs CPU.
//!
//! [`Deflate`] holds the two halves and is driven by
//! [`Guarded`](super::Guarded) over the real stream, so every timeout and
//! the response guard keep working on the decompressed bytes. Writes are
//! buffered and pushed out with a sync flush (`Z_SYNC_FLUSH`) at each
//! flush: every command the IMAP layer flushes reaches the server whole,
//! decodable up to its last byte. Reads inflate whatever arrived, so a
//! response split anywhere, even inside a DEFLATE block, is handed on as
//! far as it goes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Compressed bytes read from the socket at a time.
const INPUT_BYTES: usize = 64 * 1024;
/// Input taken per write call, so the output buffer stays small.
const WRITE_CHUNK: usize = 64 * 1024;
/// Compressed output held before a write waits for the socket: a large
/// APPEND literal is pushed out as it is compressed, never held whole.
const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// Both directions of one compressed connection.
pub struct Deflate {
    compress: Compress,
    decompress: Decompress,
    /// Compressed bytes not yet written: `out[out_at..]`.
    out: Vec<u8>,
    out_at: usize,
    /// Data went into the compressor since the last sync flush.
    unflushed: bool,
    /// Compressed bytes read but not yet inflated: `input[in_at..in_end]`.
    input: Box<[u8]>,
    in_at: usize,
    in_end: usize,
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflate").field("totals", &self.totals()).finish()
    }
}

/// Bytes before and after compression, both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeflateTotals {
    /// Bytes the server sent, as they came off the wire.
    pub read_wire: u64,
    /// The same bytes inflated.
    pub read_plain: u64,
    /// Bytes the client wrote, before compression.
    pub written_plain: u64,
    /// The same bytes compressed (as far as they were flushed).
    pub written_wire: u64,
}

impl Default for Deflate {
    fn default() -> Self {
        Deflate::new()
    }
}

impl Deflate {
    pub fn new() -> Deflate {
        Deflate {
            // Level 1: most of the gain on mail text for a fraction of the
            // CPU of the default level; the client is CPU bound long before
            // a WAN link is, and uploads are the bulk it compresses.
            compress: Compress::new(Compression::fast(), false),
            decompress: Decompress::new(false),
            out: Vec::new(),
            out_at: 0,
            unflushed: false,
            input: vec![0u8; INPUT_BYTES].into_boxed_slice(),
            in_at: 0,
            in_end: 0,
        }
    }

    pub fn totals(&self) -> DeflateTotals {
        DeflateTotals {
            read_wire: self.decompress.total_in(),
            read_plain: self.decompress.total_out(),
            written_plain: self.compress.total_in(),
            written_wire: self.compress.total_out(),
        }
    }

    /// Reads from `inner` and inflates into `buf`. Returns with at least
    /// one byte, or with none at the end of the stream.
    pub fn poll_read<S: AsyncRead + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            let (before_in, before_out) = (self.decompress.total_in(), self.decompress.total_out());
            let status = self
                .decompress
                .decompress(
                    &self.input[self.in_at..self.in_end],
                    buf.initialize_unfilled(),
                    FlushDecompress::None,
                )
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the server sent corrupt compressed data ({e}); dropping the connection"),
                    )
                })?;
            let consumed = (self.decompress.total_in() - before_in) as usize;
            let produced = (self.decompress.total_out() - before_out) as usize;
            self.in_at += consumed;
            if produced > 0 {
                buf.advance(produced);
                return Poll::Ready(Ok(()));
            }
            if status == Status::StreamEnd {
                // The server ended its stream, which it only does when it
                // closes the connection: the end of input.
                return Poll::Ready(Ok(()));
            }
            if consumed > 0 && self.in_at < self.in_end {
                continue;
            }
            // Everything read so far is inflated: read more.
            if self.in_at > 0 {
                self.input.copy_within(self.in_at..self.in_end, 0);
                self.in_end -= self.in_at;
                self.in_at = 0;
            }
            if self.in_end == self.input.len() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the server's compressed data does not decode; dropping the connection",
                )));
            }
            let mut more = ReadBuf::new(&mut self.input[self.in_end..]);
            ready!(Pin::new(&mut *inner).poll_read(cx, &mut more))?;
            let n = more.filled().len();
            if n == 0 {
                return Poll::Ready(Ok(()));
            }
            self.in_end += n;
        }
    }

    /// Compresses `data` into the output buffer.
    fn deflate(&mut self, mut data: &[u8], flush: FlushCompress) -> io::Result<()> {
        loop {
            if self.out.capacity() - self.out.len() < 4096 {
                self.out.reserve(data.len() / 2 + 8192);
            }
            let before = self.compress.total_in();
            self.compress
                .compress_vec(data, &mut self.out, flush)
                .map_err(|e| io::Error::other(format!("compressing for the server failed: {e}")))?;
            data = &data[(self.compress.total_in() - before) as usize..];
            // Done once the input is taken and the compressor stopped
            // short of the buffer's end (so a flush is complete).
            if data.is_empty() && self.out.len() < self.out.capacity() {
                return Ok(());
            }
        }
    }

    /// Writes the buffered compressed bytes to `inner`.
    fn poll_drain<S: AsyncWrite + Unpin>(&mut self, inner: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_at < self.out.len() {
            let n = ready!(Pin::new(&mut *inner).poll_write(cx, &self.out[self.out_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_at += n;
        }
        self.out.clear();
        self.out_at = 0;
        Poll::Ready(Ok(()))
    }

    /// Takes (part of) `data` into the compressor; it reaches the wire at
    /// the next flush, or earlier when enough has piled up.
    pub fn poll_write<S: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.out.len() - self.out_at >= OUTPUT_HIGH_WATER {
            ready!(self.poll_drain(inner, cx))?;
        }
        let take = data.len().min(WRITE_CHUNK);
        if take > 0 {
            self.deflate(&data[..take], FlushCompress::None)?;
            self.unflushed = true;
        }
        Poll::Ready(Ok(take))
    }

    /// Ends what was written with a sync flush and writes it all out.
    pub fn poll_flush<S: AsyncWrite + Unpin>(&mut self, inner: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.unflushed {
            self.deflate(&[], FlushCompress::Sync)?;
            self.unflushed = false;
        }
        ready!(self.poll_drain(inner, cx))?;
        Pin::new(&mut *inner).poll_flush(cx)
    }

    pub fn poll_shutdown<S: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_flush(inner, cx))?;
        Pin::new(&mut *inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// A [`Deflate`] over one end of a pipe, as `Guarded` drives it.
    struct Compressed {
        inner: DuplexStream,
        deflate: Deflate,
    }

    impl AsyncRead for Compressed {
        fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            this.deflate.poll_read(&mut this.inner, cx, buf)
        }
    }

    impl AsyncWrite for Compressed {
        fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.deflate.poll_write(&mut this.inner, cx, data)
        }
        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            this.deflate.poll_flush(&mut this.inner, cx)
        }
        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            this.deflate.poll_shutdown(&mut this.inner, cx)
        }
    }

    /// Mail-like text with an incompressible (random) attachment part.
    fn payload(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            if rng.bool() {
                out.extend_from_slice(b"Subject: quarterly figures\r\nFrom: a@example.test\r\n\r\n");
            } else {
                let n = rng.usize(1..200);
                out.extend((0..n).map(|_| rng.u8(..)));
            }
        }
        out.truncate(len);
        out
    }

    /// What the server would do: a plain flate2 raw DEFLATE stream, each
    /// response ended with a sync flush.
    fn server_deflate(compress: &mut Compress, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 1024);
        let start = compress.total_in();
        loop {
            let done = (compress.total_in() - start) as usize;
            compress
                .compress_vec(&data[done..], &mut out, FlushCompress::Sync)
                .unwrap();
            if (compress.total_in() - start) as usize == data.len() && out.len() < out.capacity() {
                return out;
            }
            out.reserve(out.capacity().max(1024));
        }
    }

    /// Inflates everything `peer` has delivered so far with a plain
    /// flate2 raw decoder.
    fn server_inflate(decompress: &mut Decompress, wire: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(wire.len() * 4 + 1024);
        let start = decompress.total_in();
        loop {
            let done = (decompress.total_in() - start) as usize;
            decompress
                .decompress_vec(&wire[done..], &mut out, FlushDecompress::Sync)
                .unwrap();
            if (decompress.total_in() - start) as usize == wire.len() && out.len() < out.capacity() {
                return out;
            }
            out.reserve(out.capacity());
        }
    }

    #[tokio::test]
    async fn each_flush_delivers_the_command_whole_through_a_tiny_pipe() {
        // A 7-byte pipe: every write and read of compressed data is split.
        let (ours, mut peer) = tokio::io::duplex(7);
        let mut client = Compressed {
            inner: ours,
            deflate: Deflate::new(),
        };
        let mut inflate = Decompress::new(false);
        for (i, command) in [
            &b"a1 NOOP\r\n"[..],
            b"a2 UID FETCH 1:* (UID BODY.PEEK[])\r\n",
            b"a3 LOGOUT\r\n",
        ]
        .iter()
        .enumerate()
        {
            // Written in 3-byte pieces, then flushed: the peer must be able
            // to inflate the whole command and nothing is left over.
            let writer = async {
                for piece in command.chunks(3) {
                    client.write_all(piece).await.unwrap();
                }
                client.flush().await.unwrap();
            };
            let reader = async {
                let mut plain = Vec::new();
                let mut buf = [0u8; 5];
                while plain.len() < command.len() {
                    let n = peer.read(&mut buf).await.unwrap();
                    assert!(n > 0, "command {i}: the pipe closed");
                    plain.extend(server_inflate(&mut inflate, &buf[..n]));
                }
                plain
            };
            let ((), plain) = tokio::join!(writer, reader);
            assert_eq!(plain, *command, "command {i}");
        }
        let totals = client.deflate.totals();
        assert_eq!(totals.written_plain, 9 + 36 + 11);
        assert!(totals.written_wire > 0);
    }

    #[tokio::test]
    async fn large_writes_and_reads_round_trip_in_small_pieces() {
        let (ours, peer) = tokio::io::duplex(1000);
        let mut client = Compressed {
            inner: ours,
            deflate: Deflate::new(),
        };
        let (mut peer_read, mut peer_write) = tokio::io::split(peer);
        // Client → server: a 700 KB literal, more than the output
        // high-water mark, so writes must wait for the reader.
        let upload = payload(700_000, 1);
        // Server → client: three responses, each sync-flushed, fed to the
        // pipe 13 bytes at a time.
        let responses: Vec<Vec<u8>> = vec![payload(50, 2), payload(300_000, 3), b"a9 OK done\r\n".to_vec()];
        let expected_down: Vec<u8> = responses.concat();

        // Each side writes and reads at once, as a pipelining client and
        // a server do: with a 1000-byte pipe, anything else deadlocks.
        let server_writes = async {
            let mut compress = Compress::new(Compression::default(), false);
            for r in &responses {
                for piece in server_deflate(&mut compress, r).chunks(13) {
                    peer_write.write_all(piece).await.unwrap();
                }
            }
        };
        let server_reads = async {
            let mut inflate = Decompress::new(false);
            let mut got = Vec::new();
            let mut buf = vec![0u8; 4096];
            while got.len() < upload.len() {
                let n = peer_read.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client's stream ended early");
                got.extend(server_inflate(&mut inflate, &buf[..n]));
            }
            got
        };
        let (mut client_read, mut client_write) = tokio::io::split(&mut client);
        let client_writes = async {
            for piece in upload.chunks(10_007) {
                client_write.write_all(piece).await.unwrap();
            }
            client_write.flush().await.unwrap();
        };
        let client_reads = async {
            // Read back in odd-sized small reads.
            let mut down = Vec::new();
            let mut buf = [0u8; 11];
            while down.len() < expected_down.len() {
                let n = client_read.read(&mut buf).await.unwrap();
                assert!(n > 0, "the server's stream ended early");
                down.extend_from_slice(&buf[..n]);
            }
            down
        };
        let ((), up, (), down) = tokio::join!(server_writes, server_reads, client_writes, client_reads);
        assert!(up == upload, "upload differs after the round trip");
        assert!(down == expected_down, "download differs after the round trip");
        let t = client.deflate.totals();
        assert_eq!(t.written_plain, upload.len() as u64);
        assert_eq!(t.read_plain, expected_down.len() as u64);
        assert!(t.read_wire < t.read_plain, "{t:?}");
    }

    #[tokio::test]
    async fn corrupt_compressed_data_fails_the_read() {
        let (ours, mut peer) = tokio::io::duplex(64);
        let mut client = Compressed {
            inner: ours,
            deflate: Deflate::new(),
        };
        // 0xff: a block type (3) that DEFLATE does not have.
        peer.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
        let mut buf = [0u8; 16];
        let err = client.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("corrupt compressed data"), "{err}");
    }
}
