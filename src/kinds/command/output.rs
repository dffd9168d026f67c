//! A program's stdout or stderr, read to its end on a thread of its own (a chatty program
//! never blocks on a full pipe): secrets scrubbed as the bytes pass, the first `limit`
//! bytes kept in the run's artifact file (then a marker), the last lines kept for the run's
//! output. Memory stays bounded whatever the program writes.

use std::io::{Read, Write};

use memchr::memmem;

/// Bytes of the end of a stream kept for the run's output ...
const TAIL_BYTES: usize = 4096;
/// ... of which at most this many lines are shown.
pub const TAIL_LINES: usize = 20;
const CHUNK: usize = 64 * 1024;

/// What was read from one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// Bytes the program wrote.
    pub bytes: u64,
    /// Whether the artifact stops at the limit.
    pub truncated: bool,
    /// The stream's last lines (scrubbed, lossy UTF-8).
    pub tail: Vec<String>,
    /// Writing the artifact failed (the stream was still read to its end).
    pub write_error: Option<String>,
}

/// Replaces each of `secrets` in `buf` with `***`.
fn scrub_in_place(buf: &mut Vec<u8>, secrets: &[Vec<u8>]) {
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        if memmem::find(buf, s).is_none() {
            continue;
        }
        let mut out = Vec::with_capacity(buf.len());
        let mut last = 0;
        for at in memmem::find_iter(buf, s) {
            if at < last {
                continue;
            }
            out.extend_from_slice(&buf[last..at]);
            out.extend_from_slice(b"***");
            last = at + s.len();
        }
        out.extend_from_slice(&buf[last..]);
        *buf = out;
    }
}

struct Sink<W: Write> {
    file: Option<W>,
    limit: u64,
    kept: u64,
    captured: Captured,
    tail: Vec<u8>,
}

impl<W: Write> Sink<W> {
    fn emit(&mut self, bytes: &[u8]) {
        self.captured.bytes += bytes.len() as u64;
        if let Some(file) = self.file.as_mut() {
            let room = self.limit.saturating_sub(self.kept) as usize;
            let take = room.min(bytes.len());
            let mut result = file.write_all(&bytes[..take]);
            self.kept += take as u64;
            if take < bytes.len() && !self.captured.truncated {
                self.captured.truncated = true;
                let marker = format!(
                    "\n[overseer: output truncated at {} bytes (output_limit)]\n",
                    self.limit
                );
                result = result.and_then(|_| file.write_all(marker.as_bytes()));
            }
            if let Err(e) = result {
                self.captured.write_error = Some(e.to_string());
                self.file = None;
            }
        } else if self.kept + (bytes.len() as u64) > self.limit {
            self.captured.truncated = true;
        }
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > 2 * TAIL_BYTES {
            self.tail.drain(..self.tail.len() - TAIL_BYTES);
        }
    }
}

/// Reads `stream` to its end. Bytes go to `file` (up to `limit`, then a marker), with every
/// secret replaced by `***` — also one that spans two reads.
pub fn capture<R: Read, W: Write>(
    mut stream: R,
    file: Option<W>,
    limit: u64,
    secrets: &[Vec<u8>],
) -> Captured {
    let keep_back = secrets.iter().map(Vec::len).max().unwrap_or(1).max(1) - 1;
    let mut sink = Sink {
        file,
        limit,
        kept: 0,
        captured: Captured::default(),
        tail: Vec::new(),
    };
    let mut pending: Vec<u8> = Vec::with_capacity(CHUNK + keep_back);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        pending.extend_from_slice(&chunk[..n]);
        scrub_in_place(&mut pending, secrets);
        // What is kept back may be the start of a secret that the next read completes.
        if pending.len() > keep_back {
            let cut = pending.len() - keep_back;
            sink.emit(&pending[..cut]);
            pending.drain(..cut);
        }
    }
    sink.emit(&pending);
    if let Some(f) = sink.file.as_mut() {
        if let Err(e) = f.flush() {
            sink.captured.write_error = Some(e.to_string());
        }
    }
    let tail = &sink.tail[sink.tail.len().saturating_sub(TAIL_BYTES)..];
    let text = String::from_utf8_lossy(tail);
    let lines: Vec<&str> = text.trim_end_matches('\n').split('\n').collect();
    let from = lines.len().saturating_sub(TAIL_LINES);
    sink.captured.tail = lines[from..]
        .iter()
        .filter(|l| !(lines.len() == 1 && l.is_empty()))
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    sink.captured
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its bytes a few at a time (secrets span reads).
    struct Trickle(Vec<u8>, usize);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(self.0.len()).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn secrets_are_scrubbed_across_reads_and_the_tail_keeps_the_last_lines() {
        let text = b"hello hunter2-secret\nline two hunter2-secret!\nend\n".to_vec();
        let mut file = Vec::new();
        let c = capture(
            Trickle(text, 3),
            Some(&mut file),
            1 << 20,
            &[b"hunter2-secret".to_vec()],
        );
        let kept = String::from_utf8(file).unwrap();
        assert_eq!(kept, "hello ***\nline two ***!\nend\n");
        assert_eq!(c.tail, ["hello ***", "line two ***!", "end"]);
        assert!(!c.truncated);
    }

    #[test]
    fn the_artifact_stops_at_the_limit_with_a_marker_and_the_stream_is_read_to_its_end() {
        let text: Vec<u8> = (0..10_000)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let total = text.len() as u64;
        let mut file = Vec::new();
        let c = capture(Trickle(text, 999), Some(&mut file), 100, &[]);
        assert_eq!(c.bytes, total);
        assert!(c.truncated);
        let kept = String::from_utf8(file).unwrap();
        assert!(kept.starts_with("0\n1\n2\n"));
        assert!(kept.ends_with("[overseer: output truncated at 100 bytes (output_limit)]\n"));
        assert_eq!(
            kept.len(),
            100 + "\n[overseer: output truncated at 100 bytes (output_limit)]\n".len()
        );
        assert_eq!(c.tail.last().map(String::as_str), Some("9999"));
        assert_eq!(c.tail.len(), TAIL_LINES);
    }

    #[test]
    fn an_empty_stream_has_no_tail() {
        let c = capture(Trickle(Vec::new(), 1), None::<Vec<u8>>, 10, &[]);
        assert_eq!(c, Captured::default());
    }
}
