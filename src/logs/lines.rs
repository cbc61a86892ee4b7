//! Cutting a byte stream into lines of bounded length.

/// The longest line a log holds: a longer one is split into several lines, so that
/// neither the writer nor any reader ever holds more than this of one line.
pub const MAX_LINE: usize = 16 * 1024;

/// Turns the chunks of a stream into complete lines, each ending in `\n` with at most
/// `max` bytes before it, and keeps the unfinished last line between chunks.
#[derive(Debug)]
pub struct LineSplitter {
    partial: Vec<u8>,
    max: usize,
}

impl Default for LineSplitter {
    fn default() -> Self {
        LineSplitter::with_max(MAX_LINE)
    }
}

impl LineSplitter {
    /// A splitter for lines of at most `max` bytes (at least 4, so a cut can always move
    /// back to a UTF-8 character boundary and still make progress).
    pub fn with_max(max: usize) -> Self {
        LineSplitter {
            partial: Vec::new(),
            max: max.max(4),
        }
    }

    /// Whether an unfinished line is held.
    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }

    /// Appends to `out` every line that `chunk` completes.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut rest = chunk;
        while !rest.is_empty() {
            let room = self.max - self.partial.len();
            // A newline within `room` bytes, or right after them, ends a line that fits.
            let window = &rest[..rest.len().min(room + 1)];
            if let Some(end) = memchr::memchr(b'\n', window) {
                out.extend_from_slice(&self.partial);
                out.extend_from_slice(&rest[..=end]);
                self.partial.clear();
                rest = &rest[end + 1..];
            } else if rest.len() > room {
                let cut = character_boundary(rest, room, self.partial.is_empty());
                out.extend_from_slice(&self.partial);
                out.extend_from_slice(&rest[..cut]);
                out.push(b'\n');
                self.partial.clear();
                rest = &rest[cut..];
            } else {
                self.partial.extend_from_slice(rest);
                return;
            }
        }
    }

    /// Ends the unfinished line, if any, as a line of its own (the stream ended, or has
    /// been quiet for a while).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.partial.is_empty() {
            out.extend_from_slice(&self.partial);
            out.push(b'\n');
            self.partial.clear();
        }
    }

    /// Forgets the unfinished line (the stream started over).
    pub fn reset(&mut self) {
        self.partial.clear();
    }
}

/// Where to cut `rest` so the line before it takes at most `room` more bytes: at `room`,
/// moved back over at most three UTF-8 continuation bytes so that a character is not cut
/// in two. The cut is never 0 when nothing precedes it, so every cut makes progress.
fn character_boundary(rest: &[u8], room: usize, nothing_before: bool) -> usize {
    let is_continuation = |byte: u8| byte & 0b1100_0000 == 0b1000_0000;
    let mut cut = room;
    while cut > 0 && room - cut < 3 && is_continuation(rest[cut]) {
        cut -= 1;
    }
    if cut == 0 && nothing_before {
        room
    } else {
        cut
    }
}

/// The lines of `buffer` (complete lines, as [`LineSplitter`] writes them), without
/// their newlines.
pub fn each_line(buffer: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = buffer.strip_suffix(b"\n").unwrap_or(buffer);
    (!buffer.is_empty())
        .then(|| body.split(|byte| *byte == b'\n'))
        .into_iter()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> (Vec<String>, bool) {
        let mut splitter = LineSplitter::with_max(max);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, &mut out);
        }
        let partial = splitter.has_partial();
        let lines = each_line(&out)
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect();
        (lines, partial)
    }

    #[test]
    fn lines_are_kept_whole_across_chunks() {
        let (lines, partial) = split(16, &[b"one\ntw", b"o\n\nthr", b"ee"]);
        assert_eq!(lines, ["one", "two", ""]);
        assert!(partial);
    }

    #[test]
    fn long_lines_are_split_at_the_limit() {
        let (lines, partial) = split(4, &[b"abcdefghij\nxy", b"zw", b"v\n"]);
        assert_eq!(lines, ["abcd", "efgh", "ij", "xyzw", "v"]);
        assert!(!partial);
        // A line of exactly the limit stays one line.
        let (lines, _) = split(4, &[b"abcd\n"]);
        assert_eq!(lines, ["abcd"]);
    }

    #[test]
    fn a_stream_without_newlines_never_holds_more_than_the_limit() {
        let mut splitter = LineSplitter::with_max(MAX_LINE);
        let mut out = Vec::new();
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..100 {
            splitter.push(&chunk, &mut out);
            assert!(splitter.partial.len() <= MAX_LINE);
        }
        assert!(each_line(&out).all(|line| line.len() == MAX_LINE));
        // The last full line is held until more comes (it may end with a newline).
        assert_eq!(out.len(), 399 * (MAX_LINE + 1));
        assert_eq!(splitter.partial.len(), MAX_LINE);
    }

    #[test]
    fn cuts_do_not_split_characters() {
        // "é" is two bytes: a cut at 5 would fall inside the third one.
        let (lines, _) = split(5, &["éééé\n".as_bytes()]);
        assert_eq!(lines, ["éé", "éé"]);
    }

    #[test]
    fn finish_ends_the_partial_line() {
        let mut splitter = LineSplitter::default();
        let mut out = Vec::new();
        splitter.push(b"prompt> ", &mut out);
        assert!(out.is_empty());
        splitter.finish(&mut out);
        assert_eq!(out, b"prompt> \n");
        splitter.finish(&mut out);
        assert_eq!(out, b"prompt> \n");
    }

    #[test]
    fn each_line_of_an_empty_buffer_is_nothing() {
        assert_eq!(each_line(b"").count(), 0);
        assert_eq!(each_line(b"\n").collect::<Vec<_>>(), [b""]);
    }
}
