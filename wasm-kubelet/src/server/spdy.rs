//! The client side of SPDY/3.1 as Kubernetes' remote-command protocol uses it: just enough to
//! open the streams of one exec session on a CRI runtime's streaming server and move their
//! data, for [`super::exec`]'s WebSocket bridge.
//!
//! Why SPDY, when the client spoke WebSocket: a `v5.channel.k8s.io` client closes stdin on
//! its own (`255, 0`), and containerd 1.6's streaming server speaks WebSocket only up to
//! `v4.channel.k8s.io`, which cannot say that (its only end of input is the end of the whole
//! connection, which also cuts off the output and exit status still to come). Its SPDY
//! protocol (`v4.channel.k8s.io` over SPDY/3.1) half-closes each stream on its own, so stdin
//! ends with a FIN on the stdin stream. Kubernetes' API server does the same translation
//! (WebSocket from the client, SPDY towards the node) for the same reason.
//!
//! What this side leaves out: header compression (header blocks go out as stored, that is
//! uncompressed, deflate blocks of one zlib stream, which any zlib reader takes; the
//! server's header blocks are never needed and never decoded), flow control (the Go
//! implementation behind Kubernetes' streaming servers ignores window updates), and
//! server-initiated streams (a remote-command server opens none).

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const VERSION: u16 = 3;
pub(crate) const FLAG_FIN: u8 = 0x01;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;

/// Control frames of a remote-command session are tiny; a larger length is a broken peer.
const MAX_CONTROL: usize = 64 * 1024;

/// A frame read from the server, as far as a remote-command client cares.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    Data {
        stream: u32,
        fin: bool,
        data: Bytes,
    },
    Reply {
        stream: u32,
        fin: bool,
    },
    Reset {
        stream: u32,
        status: u32,
    },
    Ping(u32),
    GoAway,
    /// SETTINGS, HEADERS, WINDOW_UPDATE and anything newer: nothing to act on.
    Other,
}

/// Reads the next frame; `None` when the server closed the connection between frames.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let flags = head[4];
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    let control = head[0] & 0x80 != 0;
    if control && len > MAX_CONTROL {
        return Err(std::io::Error::other(format!(
            "the runtime sent a SPDY control frame of {len} bytes"
        )));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    if !control {
        let stream = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
        return Ok(Some(Frame::Data {
            stream,
            fin: flags & FLAG_FIN != 0,
            data: Bytes::from(payload),
        }));
    }
    let kind = u16::from_be_bytes([head[2], head[3]]);
    let word = |at: usize| -> std::io::Result<u32> {
        payload
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| std::io::Error::other("the runtime sent a truncated SPDY frame"))
    };
    Ok(Some(match kind {
        SYN_REPLY => Frame::Reply {
            stream: word(0)? & 0x7fff_ffff,
            fin: flags & FLAG_FIN != 0,
        },
        RST_STREAM => Frame::Reset {
            stream: word(0)? & 0x7fff_ffff,
            status: word(4)?,
        },
        PING => Frame::Ping(word(0)?),
        GOAWAY => Frame::GoAway,
        _ => Frame::Other,
    }))
}

/// The writing side of a session: numbers the client's streams and keeps the state of the
/// header-block zlib stream.
pub(crate) struct Writer<W> {
    io: W,
    next_stream: u32,
    zlib_started: bool,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(io: W) -> Writer<W> {
        Writer {
            io,
            next_stream: 1,
            zlib_started: false,
        }
    }

    /// Opens a stream with `headers` (names in lower case) and returns its id.
    pub async fn open_stream(&mut self, headers: &[(&str, &str)]) -> std::io::Result<u32> {
        let id = self.next_stream;
        self.next_stream += 2;
        let block = self.header_block(headers);
        let mut payload = BytesMut::with_capacity(10 + block.len());
        payload.put_u32(id);
        payload.put_u32(0); // associated-to stream
        payload.put_u8(0); // priority (3 bits) and unused bits
        payload.put_u8(0); // slot
        payload.put_slice(&block);
        self.control(SYN_STREAM, 0, &payload).await?;
        Ok(id)
    }

    /// Sends `data` on `stream`; `fin` half-closes it (no more data from this side).
    pub async fn data(&mut self, stream: u32, data: &[u8], fin: bool) -> std::io::Result<()> {
        // The length field has 24 bits.
        let mut chunks = data.chunks(0xff_ffff).peekable();
        if chunks.peek().is_none() {
            return self.data_frame(stream, &[], fin).await;
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            self.data_frame(stream, chunk, fin && last).await?;
        }
        Ok(())
    }

    /// Answers the server's PING (the same id back, as SPDY asks).
    pub async fn pong(&mut self, id: u32) -> std::io::Result<()> {
        self.control(PING, 0, &id.to_be_bytes()).await
    }

    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.io.shutdown().await
    }

    async fn data_frame(&mut self, stream: u32, data: &[u8], fin: bool) -> std::io::Result<()> {
        let mut frame = BytesMut::with_capacity(8 + data.len());
        frame.put_u32(stream & 0x7fff_ffff);
        frame.put_u8(if fin { FLAG_FIN } else { 0 });
        frame.put_uint(data.len() as u64, 3);
        frame.put_slice(data);
        self.io.write_all(&frame).await?;
        self.io.flush().await
    }

    async fn control(&mut self, kind: u16, flags: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut frame = BytesMut::with_capacity(8 + payload.len());
        frame.put_u16(0x8000 | VERSION);
        frame.put_u16(kind);
        frame.put_u8(flags);
        frame.put_uint(payload.len() as u64, 3);
        frame.put_slice(payload);
        self.io.write_all(&frame).await?;
        self.io.flush().await
    }

    /// A SPDY/3 name/value block, as the next piece of the connection's one zlib stream:
    /// the zlib header the first time (no preset dictionary: the reader then needs none),
    /// then the block as stored (uncompressed) deflate blocks, which keep the stream
    /// byte-aligned for the next header block.
    fn header_block(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut raw = BytesMut::new();
        raw.put_u32(headers.len() as u32);
        for (name, value) in headers {
            raw.put_u32(name.len() as u32);
            raw.put_slice(name.as_bytes());
            raw.put_u32(value.len() as u32);
            raw.put_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 16);
        if !self.zlib_started {
            // CMF: deflate with a 32 KiB window; FLG: no dictionary, check bits so that
            // CMF·256 + FLG is a multiple of 31.
            out.extend_from_slice(&[0x78, 0x01]);
            self.zlib_started = true;
        }
        for chunk in raw.chunks(0xffff) {
            stored_block(&mut out, chunk);
        }
        // An empty stored block, as zlib's sync flush ends with: a reader hands out what it
        // decoded only when it reaches a block boundary it can see (Go's does), so without
        // it the server would wait for the next header block to read this one.
        stored_block(&mut out, &[]);
        out
    }
}

/// A deflate stored block that is not the last one: the 3-bit block header padded to a
/// byte, the length and its complement (little-endian), the bytes.
fn stored_block(out: &mut Vec<u8>, data: &[u8]) {
    let len = data.len() as u16;
    out.push(0x00);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_laid_out_as_spdy3_says() {
        let mut w = Writer::new(Vec::new());
        assert_eq!(w.open_stream(&[("streamtype", "error")]).await.unwrap(), 1);
        assert_eq!(w.open_stream(&[("streamtype", "stdin")]).await.unwrap(), 3);
        w.data(3, b"hi\n", false).await.unwrap();
        w.data(3, b"", true).await.unwrap();
        let out = w.io;

        // SYN_STREAM, version 3, no flags; stream 1, no associated stream, priority 0.
        assert_eq!(&out[..4], &[0x80, 0x03, 0x00, 0x01]);
        let len = u32::from_be_bytes([0, out[5], out[6], out[7]]) as usize;
        assert_eq!(&out[8..12], &1u32.to_be_bytes());
        assert_eq!(&out[12..18], &[0, 0, 0, 0, 0, 0]);
        // The header block: zlib header, one stored block holding one name/value pair, the
        // empty stored block of a sync flush.
        let block = &out[18..8 + len];
        assert_eq!(&block[..3], &[0x78, 0x01, 0x00]);
        let stored = u16::from_le_bytes([block[3], block[4]]) as usize;
        assert_eq!(u16::from_le_bytes([block[5], block[6]]), !(stored as u16));
        assert_eq!(&block[block.len() - 5..], &[0, 0, 0, 0xff, 0xff]);
        let block = &block[..block.len() - 5];
        let mut expect = Vec::new();
        expect.extend_from_slice(&1u32.to_be_bytes());
        expect.extend_from_slice(&10u32.to_be_bytes());
        expect.extend_from_slice(b"streamtype");
        expect.extend_from_slice(&5u32.to_be_bytes());
        expect.extend_from_slice(b"error");
        assert_eq!(&block[7..], &expect[..]);
        assert_eq!(stored, expect.len());

        // The second header block continues the zlib stream: no second zlib header.
        let second = &out[8 + len..];
        let len2 = u32::from_be_bytes([0, second[5], second[6], second[7]]) as usize;
        assert_eq!(second[18], 0x00);
        let data = &second[8 + len2..];
        assert_eq!(
            data,
            &[
                0, 0, 0, 3, 0, 0, 0, 3, b'h', b'i', b'\n', 0, 0, 0, 3, 1, 0, 0, 0
            ]
        );
    }

    #[tokio::test]
    async fn reads_what_a_remote_command_server_sends() {
        let mut wire = Vec::new();
        // SYN_REPLY for stream 1 (header block left undecoded).
        wire.extend_from_slice(&[0x80, 3, 0, 2, 0, 0, 0, 6, 0, 0, 0, 1, 0xaa, 0xbb]);
        // DATA on stream 5, FIN.
        wire.extend_from_slice(&[0, 0, 0, 5, 1, 0, 0, 2, b'o', b'k']);
        // PING 2, RST_STREAM 3 (CANCEL), WINDOW_UPDATE, GOAWAY.
        wire.extend_from_slice(&[0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 2]);
        wire.extend_from_slice(&[0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 5]);
        wire.extend_from_slice(&[0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 1, 0]);
        wire.extend_from_slice(&[0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut r = &wire[..];
        let mut frames = Vec::new();
        while let Some(f) = read_frame(&mut r).await.unwrap() {
            frames.push(f);
        }
        assert_eq!(
            frames,
            vec![
                Frame::Reply {
                    stream: 1,
                    fin: false
                },
                Frame::Data {
                    stream: 5,
                    fin: true,
                    data: Bytes::from_static(b"ok")
                },
                Frame::Ping(2),
                Frame::Reset {
                    stream: 3,
                    status: 5
                },
                Frame::Other,
                Frame::GoAway,
            ]
        );
        // A frame cut short is an error, not a clean end.
        let mut cut = &[0u8, 0, 0, 5, 0, 0, 0, 9, b'x'][..];
        assert!(read_frame(&mut cut).await.is_err());
    }
}
