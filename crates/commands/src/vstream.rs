//! Standard output as Postfix's VSTREAM buffers it: written in 4096-byte chunks, the rest on
//! an explicit flush or a normal exit, and lost when the program ends with a fatal error.
//!
//! This matters to scripts: after `postconf -x` dies on a bad value, its standard output holds
//! exactly the whole 4096-byte chunks Postfix would have written, not a partial listing.

use std::io::{self, Write};

/// VSTREAM_BUFSIZE in Postfix.
const CHUNK: usize = 4096;

/// A writer with Postfix's output buffering over another writer.
pub struct ChunkedOut<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> ChunkedOut<W> {
    pub fn new(inner: W) -> Self {
        ChunkedOut {
            inner,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    /// Drops what is still buffered, as a fatal exit does.
    pub fn discard(mut self) {
        self.buf.clear();
    }
}

impl<W: Write> Write for ChunkedOut<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            let room = CHUNK - self.buf.len();
            let take = room.min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == CHUNK {
                self.inner.write_all(&self.buf)?;
                self.buf.clear();
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_chunks_and_discards_the_rest() {
        let mut sink = Vec::new();
        {
            let mut out = ChunkedOut::new(&mut sink);
            out.write_all(&[b'a'; 5000]).unwrap();
            out.discard();
        }
        assert_eq!(sink.len(), CHUNK);
        let mut sink = Vec::new();
        {
            let mut out = ChunkedOut::new(&mut sink);
            out.write_all(&[b'a'; 5000]).unwrap();
            out.flush().unwrap();
        }
        assert_eq!(sink.len(), 5000);
    }
}
