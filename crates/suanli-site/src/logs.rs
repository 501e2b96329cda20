//! Turning a job's output bytes into `Log` events.
//!
//! [`LineChunker`] buffers one stream and cuts it into chunks of whole lines, at most
//! [`MAX_CHUNK`] bytes, never inside a UTF-8 character. [`LogSink`] numbers the chunks of one attempt
//! (both streams share the counter: from 0, gap-free) and puts them into the outbox. [`FileTail`]
//! follows an output file that the cluster manager writes.

use std::path::PathBuf;
use std::time::Duration;

use suanli_proto::{AgentEvent, AttemptRef, EventKind, Stream};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

/// Largest chunk, in bytes.
pub const MAX_CHUNK: usize = 64 * 1024;
/// How often buffered lines are flushed.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// Where events go on their way to the hub.
pub type Outbox = mpsc::UnboundedSender<AgentEvent>;

/// Buffers one output stream.
#[derive(Debug, Default)]
pub struct LineChunker {
    buf: Vec<u8>,
    /// A partial line was already buffered at the previous tick.
    partial_aged: bool,
}

impl LineChunker {
    /// Adds output; returns the chunks that must go out now because the buffer is full.
    pub fn push(&mut self, data: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while self.buf.len() >= MAX_CHUNK {
            match self.cut(true) {
                Some(c) => out.push(c),
                None => break,
            }
        }
        out
    }

    /// Periodic flush: every complete line, and a partial line that has waited a whole tick.
    pub fn tick(&mut self) -> Vec<String> {
        let flush_partial = self.partial_aged;
        let mut out = Vec::new();
        while let Some(c) = self.cut(flush_partial) {
            out.push(c);
        }
        self.partial_aged = !self.buf.is_empty();
        out
    }

    /// End of stream: everything left, invalid UTF-8 replaced.
    pub fn finish(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(c) = self.cut(true) {
            out.push(c);
        }
        if !self.buf.is_empty() {
            // Only an incomplete character remains.
            out.push(String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned());
        }
        self.partial_aged = false;
        out
    }

    /// Bytes buffered.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Cuts one chunk: whole lines within the size limit; otherwise, if `partial` or the buffer is
    /// over the limit, as much as fits without splitting a character.
    fn cut(&mut self, partial: bool) -> Option<String> {
        if self.buf.is_empty() {
            return None;
        }
        let limit = self.buf.len().min(MAX_CHUNK);
        let end = match self.buf[..limit].iter().rposition(|&b| b == b'\n') {
            Some(nl) => nl + 1,
            None if partial || self.buf.len() > MAX_CHUNK => char_boundary(&self.buf, limit),
            None => return None,
        };
        if end == 0 {
            return None;
        }
        let bytes: Vec<u8> = self.buf.drain(..end).collect();
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// The largest cut position `<= p` that does not split a UTF-8 character (as far as the bytes form
/// one; invalid bytes are left to lossy conversion).
pub fn char_boundary(buf: &[u8], p: usize) -> usize {
    if p < buf.len() {
        let mut q = p;
        while q > 0 && p - q < 3 && is_continuation(buf[q]) {
            q -= 1;
        }
        if is_continuation(buf[q]) { p } else { q }
    } else {
        let len = buf.len();
        for k in 1..=len.min(4) {
            let b = buf[len - k];
            if is_continuation(b) {
                continue;
            }
            return if sequence_len(b) > k { len - k } else { len };
        }
        len
    }
}

/// Numbers and sends one attempt's log chunks.
#[derive(Debug)]
pub struct LogSink {
    attempt: AttemptRef,
    next_seq: u64,
    outbox: Outbox,
}

impl LogSink {
    pub fn new(attempt: AttemptRef, outbox: Outbox) -> LogSink {
        LogSink {
            attempt,
            next_seq: 0,
            outbox,
        }
    }

    /// A sink that goes on numbering an attempt's chunks after the first `sent`.
    pub fn starting_at(attempt: AttemptRef, outbox: Outbox, sent: u64) -> LogSink {
        LogSink {
            next_seq: sent,
            ..LogSink::new(attempt, outbox)
        }
    }

    /// Sends one chunk (empty ones are skipped).
    pub fn emit(&mut self, stream: Stream, data: String) {
        if data.is_empty() {
            return;
        }
        let event = AgentEvent {
            job: self.attempt.job,
            attempt: self.attempt.attempt,
            kind: EventKind::Log {
                seq: self.next_seq,
                stream,
                data,
            },
        };
        self.next_seq += 1;
        // The outbox only closes when the agent is gone; nothing to do then.
        let _ = self.outbox.send(event);
    }

    /// Chunks sent so far.
    pub fn emitted(&self) -> u64 {
        self.next_seq
    }
}

/// Follows one output file that something else writes (Slurm writes a batch job's output to files
/// in the attempt directory), cutting what is appended into chunks of one stream.
#[derive(Debug)]
pub struct FileTail {
    path: PathBuf,
    stream: Stream,
    offset: u64,
    chunker: LineChunker,
}

impl FileTail {
    /// Most bytes read per call.
    const READ_LIMIT: u64 = 4 * 1024 * 1024;

    pub fn new(path: PathBuf, stream: Stream) -> FileTail {
        FileTail {
            path,
            stream,
            offset: 0,
            chunker: LineChunker::default(),
        }
    }

    /// Reads what was appended (at most [`Self::READ_LIMIT`] bytes); a missing file is not an
    /// error.
    async fn read(&mut self, sink: &mut LogSink) -> std::io::Result<u64> {
        let mut f = match tokio::fs::File::open(&self.path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let len = f.metadata().await?.len();
        if len < self.offset {
            // Truncated (rewritten from the start).
            self.offset = 0;
        }
        if len == self.offset {
            return Ok(0);
        }
        f.seek(std::io::SeekFrom::Start(self.offset)).await?;
        let mut buf = Vec::new();
        let n = f.take(Self::READ_LIMIT).read_to_end(&mut buf).await? as u64;
        self.offset += n;
        for c in self.chunker.push(&buf) {
            sink.emit(self.stream, c);
        }
        Ok(n)
    }

    /// Ships what was appended, and the lines that are due (see [`LineChunker::tick`]).
    pub async fn tick(&mut self, sink: &mut LogSink) {
        if let Err(e) = self.read(sink).await {
            tracing::debug!(path = %self.path.display(), error = %e, "reading job output failed");
        }
        for c in self.chunker.tick() {
            sink.emit(self.stream, c);
        }
    }

    /// Ships everything that is left.
    pub async fn finish(&mut self, sink: &mut LogSink) {
        loop {
            match self.read(sink).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "reading job output failed");
                    break;
                }
            }
        }
        for c in self.chunker.finish() {
            sink.emit(self.stream, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_lines_on_tick_partial_after_a_tick() {
        let mut c = LineChunker::default();
        assert!(c.push(b"one\ntw").is_empty());
        assert_eq!(c.tick(), ["one\n"]);
        assert_eq!(c.buffered(), 2);
        c.push(b"o");
        assert_eq!(c.tick(), ["two"], "partial line waited a whole tick");
        assert!(c.tick().is_empty());
        c.push(b"three\nfour");
        assert_eq!(c.finish(), ["three\n", "four"]);
    }

    #[test]
    fn never_splits_a_character() {
        let text = "中文";
        let bytes = text.as_bytes();
        let mut c = LineChunker::default();
        c.push(&bytes[..4]); // "中" plus the first byte of "文"
        c.tick();
        assert_eq!(c.tick(), ["中"]);
        c.push(&bytes[4..]);
        assert_eq!(c.tick(), ["文"]);
        assert_eq!(char_boundary(bytes, 4), 3);
        assert_eq!(char_boundary(&bytes[..5], 5), 3);
        assert_eq!(char_boundary(bytes, 6), 6);
        assert_eq!(char_boundary(b"ab", 1), 1);
    }

    #[test]
    fn large_output_is_cut_at_the_limit() {
        let mut c = LineChunker::default();
        let line = "x".repeat(99) + "\n";
        let mut out = Vec::new();
        for _ in 0..2000 {
            out.extend(c.push(line.as_bytes()));
        }
        out.extend(c.finish());
        assert!(out.len() >= 4);
        assert!(
            out.iter()
                .all(|s| s.len() <= MAX_CHUNK && s.ends_with('\n'))
        );
        assert_eq!(out.concat().len(), 200_000);

        let mut c = LineChunker::default();
        let long = "é".repeat(MAX_CHUNK); // no newline at all
        let mut out = c.push(long.as_bytes());
        out.extend(c.finish());
        assert!(out.iter().all(|s| s.len() <= MAX_CHUNK));
        assert_eq!(out.concat(), long);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut c = LineChunker::default();
        c.push(b"ok \xff\xfe\n\xe4\xb8");
        assert_eq!(c.tick(), ["ok \u{fffd}\u{fffd}\n"]);
        assert_eq!(c.finish(), ["\u{fffd}"]);
    }

    #[test]
    fn sink_numbers_chunks_from_zero() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let a = AttemptRef {
            job: suanli_types::JobId(1),
            attempt: 1,
        };
        let mut s = LogSink::new(a, tx);
        s.emit(Stream::Stdout, "a".into());
        s.emit(Stream::Stderr, String::new());
        s.emit(Stream::Stderr, "b".into());
        assert_eq!(s.emitted(), 2);
        let mut seqs = Vec::new();
        while let Ok(e) = rx.try_recv() {
            if let EventKind::Log { seq, .. } = e.kind {
                seqs.push(seq);
            }
        }
        assert_eq!(seqs, [0, 1]);
    }
}
