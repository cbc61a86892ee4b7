//! Dotenv files as berth copies them for each instance: parsed without loss, edited in
//! place (upserted keys, loopback ports rewritten) and rendered back byte-for-byte
//! everywhere they were not edited. Pure: text in, text out.
//!
//! The syntax is what docker compose, python-dotenv and shells agree on: blank lines,
//! `#` comment lines, `KEY=value` with an optional `export ` prefix and blanks around
//! `=`, unquoted values ending at an inline ` # comment`, single-quoted literal values,
//! double-quoted values with `\n`, `\r`, `\"`, `\\`, `\$` and `` \` `` escapes, quoted
//! values spanning lines, and a bare `KEY`, which Compose takes from the environment.
//! Variables are never interpolated: `$OTHER` is kept as written.

/// A line berth cannot read as a dotenv line, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DotenvError {
    /// 1-based; for an unterminated quote, the line where the quote opens.
    pub line: usize,
    pub message: String,
}

/// A parsed dotenv file that renders back byte-for-byte when unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Whether the text started with a UTF-8 byte order mark, as some Windows editors write.
    byte_order_mark: bool,
    entries: Vec<Entry>,
}

/// One logical line: a quoted value may span several physical lines.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// A blank or comment line, verbatim with its line ending.
    Verbatim(String),
    Variable(Variable),
}

/// `KEY=value` or a bare `KEY`, split into the pieces that render it back exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Variable {
    /// Blanks before the key (or before `export`).
    indent: String,
    /// `export` and the blanks after it, or empty.
    export: String,
    key: String,
    /// `None` for a bare `KEY`.
    assignment: Option<Assignment>,
    /// Blanks and an inline comment after the value (or after a bare key).
    trailing: String,
    /// `\n`, `\r\n`, or empty on a last line without one.
    ending: String,
}

/// The `= value` part of a variable.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assignment {
    /// Blanks between the key and `=`.
    before_equals: String,
    /// Blanks between `=` and the value.
    after_equals: String,
    quote: QuoteKind,
    /// The value as written between its quotes, escapes and all.
    raw: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteKind {
    Unquoted,
    Single,
    Double,
}

/// The byte order mark a file may start with.
const BYTE_ORDER_MARK: char = '\u{feff}';

/// Characters a value may hold and still be written unquoted: safe for Compose,
/// dotenv libraries and a shell that sources the file alike.
const PLAIN_PUNCTUATION: &str = "-_./:@,+=%";

/// Parses dotenv text; every valid text renders back unchanged.
pub fn parse(text: &str) -> Result<Document, DotenvError> {
    let (byte_order_mark, body) = match text.strip_prefix(BYTE_ORDER_MARK) {
        Some(body) => (true, body),
        None => (false, text),
    };
    let mut parser = Parser::new(body);
    let mut entries = Vec::new();
    while !parser.at_end() {
        entries.push(parser.entry()?);
    }
    Ok(Document {
        byte_order_mark,
        entries,
    })
}

/// Whether `key` can be written as a dotenv key: `[A-Za-z_][A-Za-z0-9_.-]*`.
pub fn is_valid_key(key: &str) -> bool {
    key.starts_with(is_key_start) && key.chars().all(is_key_char)
}

impl Document {
    /// Keys in order of appearance (the last assignment wins for duplicates, as in shells/docker).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for variable in self.variables() {
            if !keys.contains(&variable.key) {
                keys.push(variable.key.clone());
            }
        }
        keys
    }

    /// The unquoted/unescaped value of the last assignment of `key`.
    ///
    /// `None` when the key is absent or its last line is a bare `KEY`.
    pub fn get(&self, key: &str) -> Option<String> {
        let variable = self
            .variables()
            .rev()
            .find(|variable| variable.key == key)?;
        variable.assignment.as_ref().map(Assignment::value)
    }

    /// Sets `key` to `value`: replaces the value of its (last) assignment in place, keeping
    /// its `export ` prefix and its quote style when the value can be written in it
    /// (else switch to double quotes); appends `KEY=value` at the end (newline-terminated,
    /// adding a newline before it if the file didn't end with one) when absent.
    /// Values are quoted only when needed (spaces, #, quotes, $, backslash, newline, empty is fine unquoted as KEY=).
    ///
    /// `key` must pass [`is_valid_key`] (configuration validation is the place to check
    /// `set` keys); any other key is written as given and the file would not parse back.
    pub fn upsert(&mut self, key: &str, value: &str) {
        let line_ending = self.line_ending();
        let last = self
            .entries
            .iter_mut()
            .rev()
            .find_map(|entry| entry.variable_mut().filter(|variable| variable.key == key));
        match last {
            Some(variable) => variable.set(value, line_ending),
            None => self.append(key, value, line_ending),
        }
    }

    /// In every value (not in comments or keys), rewrites each `localhost:PORT` and
    /// `127.0.0.1:PORT` (also inside URLs like `postgres://u:p@localhost:5432/db`,
    /// `http://127.0.0.1:8080/x`) for which `map(PORT)` is `Some(new)` to use `new`;
    /// digits must end the port (`localhost:54321` is port 54321, not 5432+"1"); `localhost`
    /// must be a whole host name (not `mylocalhost:80`). Returns how many were rewritten.
    pub fn rewrite_ports(&mut self, map: &dyn Fn(u16) -> Option<u16>) -> usize {
        self.entries
            .iter_mut()
            .filter_map(Entry::variable_mut)
            .filter_map(|variable| variable.assignment.as_mut())
            .map(|assignment| {
                let escapes = assignment.quote == QuoteKind::Double;
                rewrite_loopback_ports(&mut assignment.raw, escapes, map)
            })
            .sum()
    }

    /// The dotenv text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if self.byte_order_mark {
            text.push(BYTE_ORDER_MARK);
        }
        for entry in &self.entries {
            entry.render_into(&mut text);
        }
        text
    }

    fn variables(&self) -> impl DoubleEndedIterator<Item = &Variable> {
        self.entries.iter().filter_map(|entry| match entry {
            Entry::Variable(variable) => Some(variable),
            Entry::Verbatim(_) => None,
        })
    }

    /// The file's own line ending, taken from its first line, so that added lines match.
    fn line_ending(&self) -> &'static str {
        let first = self.entries.iter().find_map(|entry| {
            let ending = entry.ending();
            (!ending.is_empty()).then_some(ending)
        });
        match first {
            Some("\r\n") => "\r\n",
            _ => "\n",
        }
    }

    fn append(&mut self, key: &str, value: &str, line_ending: &str) {
        if let Some(last) = self.entries.last_mut() {
            last.end_line(line_ending);
        }
        let quote = QuoteKind::Unquoted.fitting(value);
        self.entries.push(Entry::Variable(Variable {
            indent: String::new(),
            export: String::new(),
            key: key.to_string(),
            assignment: Some(Assignment {
                before_equals: String::new(),
                after_equals: String::new(),
                quote,
                raw: quote.encode(value, line_ending),
            }),
            trailing: String::new(),
            ending: line_ending.to_string(),
        }));
    }
}

impl Entry {
    fn variable_mut(&mut self) -> Option<&mut Variable> {
        match self {
            Entry::Variable(variable) => Some(variable),
            Entry::Verbatim(_) => None,
        }
    }

    fn ending(&self) -> &str {
        match self {
            Entry::Verbatim(text) if text.ends_with("\r\n") => "\r\n",
            Entry::Verbatim(text) if text.ends_with('\n') => "\n",
            Entry::Verbatim(_) => "",
            Entry::Variable(variable) => &variable.ending,
        }
    }

    /// Gives a last line without a line ending one, so that a line can follow it; a lone
    /// `\r` at the end of the file becomes `\r\n`.
    fn end_line(&mut self, line_ending: &str) {
        let text = match self {
            Entry::Verbatim(text) => text,
            Entry::Variable(variable) => &mut variable.ending,
        };
        if text.ends_with('\r') {
            text.push('\n');
        } else if !text.ends_with('\n') {
            text.push_str(line_ending);
        }
    }

    fn render_into(&self, text: &mut String) {
        match self {
            Entry::Verbatim(verbatim) => text.push_str(verbatim),
            Entry::Variable(variable) => variable.render_into(text),
        }
    }
}

impl Variable {
    /// Replaces the value, keeping the layout around it and, where the value allows it,
    /// the quote style.
    fn set(&mut self, value: &str, line_ending: &str) {
        let (before_equals, after_equals, current) = match self.assignment.take() {
            Some(assignment) => (
                assignment.before_equals,
                assignment.after_equals,
                assignment.quote,
            ),
            None => (String::new(), String::new(), QuoteKind::Unquoted),
        };
        let quote = current.fitting(value);
        let raw = quote.encode(value, line_ending);
        let (after_equals, raw) = if quote == QuoteKind::Unquoted {
            // Re-split the line's tail as the parser would, so that blanks before an
            // inline comment land where a re-parse puts them (an empty value moves
            // them into the trailing comment).
            let tail = format!("{after_equals}{raw}{}", self.trailing);
            let (after_equals, raw, trailing) = split_unquoted(&tail);
            let split = (after_equals.to_string(), raw.to_string());
            self.trailing = trailing.to_string();
            split
        } else {
            (after_equals, raw)
        };
        self.assignment = Some(Assignment {
            before_equals,
            after_equals,
            quote,
            raw,
        });
    }

    fn render_into(&self, text: &mut String) {
        text.push_str(&self.indent);
        text.push_str(&self.export);
        text.push_str(&self.key);
        if let Some(assignment) = &self.assignment {
            assignment.render_into(text);
        }
        text.push_str(&self.trailing);
        text.push_str(&self.ending);
    }
}

impl Assignment {
    /// The value with quotes and escapes removed.
    fn value(&self) -> String {
        match self.quote {
            QuoteKind::Unquoted => self.raw.clone(),
            QuoteKind::Single => self.raw.replace("\r\n", "\n"),
            QuoteKind::Double => unescape_double_quoted(&self.raw),
        }
    }

    fn render_into(&self, text: &mut String) {
        text.push_str(&self.before_equals);
        text.push('=');
        text.push_str(&self.after_equals);
        text.push_str(self.quote.delimiter());
        text.push_str(&self.raw);
        text.push_str(self.quote.delimiter());
    }
}

impl QuoteKind {
    fn delimiter(self) -> &'static str {
        match self {
            QuoteKind::Unquoted => "",
            QuoteKind::Single => "'",
            QuoteKind::Double => "\"",
        }
    }

    /// This style if `value` can be written in it, else double quotes, which fit anything.
    fn fitting(self, value: &str) -> QuoteKind {
        let fits = match self {
            QuoteKind::Unquoted => value.chars().all(is_plain_char),
            // A carriage return could merge with a following newline when read back.
            QuoteKind::Single => !value.contains(['\'', '\r']),
            QuoteKind::Double => true,
        };
        if fits { self } else { QuoteKind::Double }
    }

    /// `value` as written between this style's quotes; a newline is written as the
    /// file's line ending, which every reader accepts inside quotes.
    fn encode(self, value: &str, line_ending: &str) -> String {
        match self {
            QuoteKind::Unquoted => value.to_string(),
            QuoteKind::Single => value.replace('\n', line_ending),
            QuoteKind::Double => escape_double_quoted(value, line_ending),
        }
    }
}

/// The first character of a key: `[A-Za-z_]`.
fn is_key_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// Any character of a key: `[A-Za-z0-9_.-]`.
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.-".contains(c)
}

/// The blanks that may surround keys, `=` and values on a line.
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn is_plain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || PLAIN_PUNCTUATION.contains(c)
}

/// Escapes backslashes, `"`, `$` (so Compose does not interpolate) and `` ` `` (so a shell does
/// not run it) for double quotes; a carriage return becomes `\r`.
fn escape_double_quoted(value: &str, line_ending: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' | '"' | '$' | '`' => {
                escaped.push('\\');
                escaped.push(c);
            }
            '\r' => escaped.push_str("\\r"),
            '\n' => escaped.push_str(line_ending),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Decodes `\n`, `\r`, `\"`, `\\`, `\$` and `` \` ``; any other backslash is kept, as a
/// shell keeps it, and a `\r\n` line break inside the quotes reads as `\n`.
fn unescape_double_quoted(raw: &str) -> String {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek().copied()) {
            ('\\', Some(next @ ('"' | '\\' | '$' | '`'))) => {
                value.push(next);
                chars.next();
            }
            ('\\', Some('n')) | ('\r', Some('\n')) => {
                value.push('\n');
                chars.next();
            }
            ('\\', Some('r')) => {
                value.push('\r');
                chars.next();
            }
            (c, _) => value.push(c),
        }
    }
    value
}

/// Splits what follows `=` on a line with an unquoted value into the blanks before the
/// value, the value, and the blanks and inline comment after it. A `#` starts a comment
/// only after a blank, so `COLOR=#fff` is a value; an empty value leaves the blanks to
/// the comment after it, or to `after_equals` when there is none.
fn split_unquoted(tail: &str) -> (&str, &str, &str) {
    let comment = tail
        .char_indices()
        .find(|&(index, c)| c == '#' && tail[..index].ends_with(is_blank))
        .map_or(tail.len(), |(index, _)| index);
    let value_end = tail[..comment].trim_end_matches(is_blank).len();
    let value_start = value_end - tail[..value_end].trim_start_matches(is_blank).len();
    if value_start == value_end && comment == tail.len() {
        return (tail, "", "");
    }
    (
        &tail[..value_start],
        &tail[value_start..value_end],
        &tail[value_end..],
    )
}

/// Rewrites the ports of `localhost:PORT` and `127.0.0.1:PORT` in `text` (a raw value,
/// with backslash escapes when `escapes`); returns how many.
fn rewrite_loopback_ports(
    text: &mut String,
    escapes: bool,
    map: &dyn Fn(u16) -> Option<u16>,
) -> usize {
    let mut rewritten = String::with_capacity(text.len());
    let mut copied = 0;
    let mut count = 0;
    for (digits, port) in loopback_ports(text, escapes) {
        if let Some(new_port) = map(port) {
            rewritten.push_str(&text[copied..digits.start]);
            rewritten.push_str(&new_port.to_string());
            copied = digits.end;
            count += 1;
        }
    }
    if count > 0 {
        rewritten.push_str(&text[copied..]);
        *text = rewritten;
    }
    count
}

/// The byte ranges of the port digits after each loopback host in `text`, with the port.
fn loopback_ports(text: &str, escapes: bool) -> Vec<(std::ops::Range<usize>, u16)> {
    let bytes = text.as_bytes();
    let mut ports = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        let Some(host_len) = loopback_host_at(bytes, index, escapes) else {
            index += 1;
            continue;
        };
        let digits_start = index + host_len + 1;
        let digits_end = digits_start
            + bytes[digits_start..]
                .iter()
                .take_while(|byte| byte.is_ascii_digit())
                .count();
        let ends_port = !bytes
            .get(digits_end)
            .is_some_and(|&byte| byte.is_ascii_alphanumeric() || byte == b'_');
        if let (true, Ok(port)) = (ends_port, text[digits_start..digits_end].parse()) {
            ports.push((digits_start..digits_end, port));
        }
        index = digits_end;
    }
    ports
}

/// The length of `localhost` or `127.0.0.1` when one starts at `index` as a whole host
/// name followed by `:`.
fn loopback_host_at(bytes: &[u8], index: usize, escapes: bool) -> Option<usize> {
    if ends_in_host_char(&bytes[..index], escapes) {
        return None;
    }
    let rest = &bytes[index..];
    [&b"localhost"[..], &b"127.0.0.1"[..]]
        .into_iter()
        .find(|host| {
            rest.len() > host.len()
                && rest[..host.len()].eq_ignore_ascii_case(host)
                && rest[host.len()] == b':'
        })
        .map(<[u8]>::len)
}

/// Whether `before` ends in a character of a host name, which would make what follows
/// only the tail of a longer name (`mylocalhost`, `10.127.0.0.1`). With `escapes`, an
/// escape such as `\n` ends in a letter but stands for a line break.
fn ends_in_host_char(before: &[u8], escapes: bool) -> bool {
    let Some((&last, earlier)) = before.split_last() else {
        return false;
    };
    if escapes && matches!(last, b'n' | b'r') {
        let backslashes = earlier
            .iter()
            .rev()
            .take_while(|&&byte| byte == b'\\')
            .count();
        if backslashes % 2 == 1 {
            return false;
        }
    }
    last.is_ascii_alphanumeric() || b"-._".contains(&last) || !last.is_ascii()
}

/// Reads entries from the text after any byte order mark, tracking the line number.
struct Parser<'a> {
    text: &'a str,
    position: usize,
    line: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            text,
            position: 0,
            line: 1,
        }
    }

    fn at_end(&self) -> bool {
        self.position >= self.text.len()
    }

    fn rest(&self) -> &'a str {
        &self.text[self.position..]
    }

    /// Where the current physical line's content ends: before `\n`, `\r\n`, or a lone
    /// `\r` that ends the file.
    fn content_end(&self) -> usize {
        let rest = self.rest();
        match rest.find('\n') {
            Some(newline) if rest[..newline].ends_with('\r') => self.position + newline - 1,
            Some(newline) => self.position + newline,
            None if rest.ends_with('\r') => self.text.len() - 1,
            None => self.text.len(),
        }
    }

    /// The current line's content from the cursor on, without consuming it.
    fn rest_of_line(&self) -> &'a str {
        &self.text[self.position..self.content_end()]
    }

    fn advance(&mut self, len: usize) -> &'a str {
        let taken = &self.text[self.position..self.position + len];
        self.line += taken.matches('\n').count();
        self.position += len;
        taken
    }

    fn take_blanks(&mut self) -> &'a str {
        let rest = self.rest();
        self.advance(rest.len() - rest.trim_start_matches(is_blank).len())
    }

    fn take_rest_of_line(&mut self) -> &'a str {
        self.advance(self.content_end() - self.position)
    }

    /// Consumes the line ending at the cursor, which is at the end of a line's content.
    fn take_ending(&mut self) -> &'a str {
        let rest = self.rest();
        let len = if rest.starts_with("\r\n") {
            2
        } else if rest.starts_with('\n') || rest == "\r" {
            1
        } else {
            0
        };
        self.advance(len)
    }

    fn entry(&mut self) -> Result<Entry, DotenvError> {
        let start = self.position;
        let indent = self.take_blanks();
        let rest_of_line = self.rest_of_line();
        if rest_of_line.is_empty() || rest_of_line.starts_with('#') {
            self.take_rest_of_line();
            self.take_ending();
            return Ok(Entry::Verbatim(self.text[start..self.position].to_string()));
        }
        self.variable(indent).map(Entry::Variable)
    }

    fn variable(&mut self, indent: &'a str) -> Result<Variable, DotenvError> {
        let export = self.take_export();
        let key = self.take_key()?;
        let before_equals = self.take_blanks();
        let (assignment, trailing) = if self.rest_of_line().starts_with('=') {
            self.advance(1);
            let (assignment, trailing) = self.assignment(key, before_equals)?;
            (Some(assignment), trailing)
        } else {
            (None, self.bare_key_trailing(key, before_equals)?)
        };
        Ok(Variable {
            indent: indent.to_string(),
            export: export.to_string(),
            key: key.to_string(),
            assignment,
            trailing,
            ending: self.take_ending().to_string(),
        })
    }

    /// `export` and its blanks when a key follows them (a key may itself be named `export`).
    fn take_export(&mut self) -> &'a str {
        let rest_of_line = self.rest_of_line();
        let Some(after_word) = rest_of_line.strip_prefix("export") else {
            return "";
        };
        let after_blanks = after_word.trim_start_matches(is_blank);
        let blanks = after_word.len() - after_blanks.len();
        if blanks == 0 || after_blanks.is_empty() || after_blanks.starts_with(['=', '#']) {
            return "";
        }
        self.advance("export".len() + blanks)
    }

    fn take_key(&mut self) -> Result<&'a str, DotenvError> {
        let rest_of_line = self.rest_of_line();
        let len = rest_of_line
            .find(|c| c == '=' || is_blank(c))
            .unwrap_or(rest_of_line.len());
        let key = &rest_of_line[..len];
        if key.is_empty() {
            return Err(error_at(self.line, "missing key before `=`".to_string()));
        }
        if !key.starts_with(is_key_start) {
            return Err(error_at(
                self.line,
                format!("invalid key `{key}`: a key must start with a letter or `_`"),
            ));
        }
        if let Some(bad) = key.chars().find(|&c| !is_key_char(c)) {
            return Err(error_at(
                self.line,
                format!(
                    "invalid character `{}` in key `{key}`: a key holds only letters, digits, `_`, `.` and `-`",
                    bad.escape_debug()
                ),
            ));
        }
        Ok(self.advance(len))
    }

    /// After a key without `=`: nothing, or an inline comment after a blank.
    fn bare_key_trailing(&mut self, key: &str, blanks: &str) -> Result<String, DotenvError> {
        let rest_of_line = self.rest_of_line();
        if rest_of_line.is_empty() || (!blanks.is_empty() && rest_of_line.starts_with('#')) {
            return Ok(format!("{blanks}{}", self.take_rest_of_line()));
        }
        Err(error_at(
            self.line,
            format!("expected `=` after key `{key}`, found `{rest_of_line}`"),
        ))
    }

    /// The value after `=` and what trails it on its (last) line.
    fn assignment(
        &mut self,
        key: &str,
        before_equals: &str,
    ) -> Result<(Assignment, String), DotenvError> {
        let rest_of_line = self.rest_of_line();
        let after_blanks = rest_of_line.trim_start_matches(is_blank);
        let quote = match after_blanks.chars().next() {
            Some('\'') => QuoteKind::Single,
            Some('"') => QuoteKind::Double,
            _ => QuoteKind::Unquoted,
        };
        let (after_equals, raw, trailing) = if quote == QuoteKind::Unquoted {
            let (after_equals, raw, trailing) = split_unquoted(self.take_rest_of_line());
            (after_equals, raw, trailing.to_string())
        } else {
            let after_equals = self.take_blanks();
            let raw = self.take_quoted(key, quote)?;
            (after_equals, raw, self.quoted_trailing(key)?)
        };
        let assignment = Assignment {
            before_equals: before_equals.to_string(),
            after_equals: after_equals.to_string(),
            quote,
            raw: raw.to_string(),
        };
        Ok((assignment, trailing))
    }

    /// Consumes a quoted value, which may span lines, and returns what is between the quotes.
    fn take_quoted(&mut self, key: &str, quote: QuoteKind) -> Result<&'a str, DotenvError> {
        let inside = &self.rest()[1..];
        let closing = match quote {
            QuoteKind::Double => find_closing_double_quote(inside),
            _ => inside.find('\''),
        };
        let Some(closing) = closing else {
            let (kind, delimiter) = match quote {
                QuoteKind::Double => ("double", '"'),
                _ => ("single", '\''),
            };
            return Err(error_at(
                self.line,
                format!("unterminated {kind}-quoted value of `{key}`: no closing `{delimiter}`"),
            ));
        };
        self.advance(1);
        let raw = self.advance(closing);
        self.advance(1);
        Ok(raw)
    }

    /// After a closing quote: blanks and an optional inline comment, nothing else.
    fn quoted_trailing(&mut self, key: &str) -> Result<String, DotenvError> {
        let rest_of_line = self.rest_of_line();
        let after_blanks = rest_of_line.trim_start_matches(is_blank);
        if !after_blanks.is_empty() && !after_blanks.starts_with('#') {
            return Err(error_at(
                self.line,
                format!(
                    "unexpected `{}` after the closing quote of `{key}`",
                    after_blanks.trim_end()
                ),
            ));
        }
        Ok(self.take_rest_of_line().to_string())
    }
}

/// An error on the 1-based `line`.
fn error_at(line: usize, message: String) -> DotenvError {
    DotenvError { line, message }
}

/// The index of the first `"` in `inside` not escaped by a backslash.
fn find_closing_double_quote(inside: &str) -> Option<usize> {
    let mut escaped = false;
    for (index, c) in inside.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(index),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A project's `.env` as people write them: comments, `export`, a quoted URL with a
    /// password holding a colon, a multi-line PEM key, an inherited variable.
    const PROJECT_ENV: &str = r#"# Local development settings
# Database runs on localhost:5432 (see compose.yml)

export DATABASE_URL="postgres://app:pa:ss@localhost:5432/app?sslmode=disable"
REDIS_URL=redis://127.0.0.1:6379/0 # cache
API_BASE = http://localhost:8080/api
COLOR=#fff
GREETING='Hello, $USER'
EMPTY=
AWS_PROFILE
PRIVATE_KEY="-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASC
-----END PRIVATE KEY-----"
"#;

    fn ports(port: u16) -> Option<u16> {
        match port {
            5432 => Some(15432),
            6379 => Some(16379),
            8080 => Some(18080),
            3000 => Some(13000),
            _ => None,
        }
    }

    fn parsed(text: &str) -> Document {
        match parse(text) {
            Ok(document) => document,
            Err(error) => panic!("{text:?} should parse: {error}"),
        }
    }

    /// Every comment's text, from its `#`: whole comment lines and inline comments.
    fn comments(document: &Document) -> Vec<String> {
        let content = |text: &str| text.trim_end_matches(['\r', '\n']).to_string();
        document
            .entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Verbatim(text) => text.find('#').map(|hash| content(&text[hash..])),
                Entry::Variable(variable) => {
                    let hash = variable.trailing.find('#')?;
                    Some(content(&variable.trailing[hash..]))
                }
            })
            .collect()
    }

    fn values(document: &Document) -> Vec<(String, Option<String>)> {
        document
            .keys()
            .into_iter()
            .map(|key| {
                let value = document.get(&key);
                (key, value)
            })
            .collect()
    }

    /// The round trip both ways: text → document → the same text → the same document.
    fn assert_round_trips(text: &str) -> Document {
        let document = parsed(text);
        assert_eq!(document.render(), text, "render(parse(text)) for {text:?}");
        assert_eq!(parsed(&document.render()), document, "for {text:?}");
        document
    }

    #[test]
    fn a_project_env_reads_as_its_tools_read_it() {
        let document = assert_round_trips(PROJECT_ENV);
        assert_eq!(
            document.keys(),
            [
                "DATABASE_URL",
                "REDIS_URL",
                "API_BASE",
                "COLOR",
                "GREETING",
                "EMPTY",
                "AWS_PROFILE",
                "PRIVATE_KEY",
            ]
        );
        let get = |key: &str| document.get(key);
        assert_eq!(
            get("DATABASE_URL").as_deref(),
            Some("postgres://app:pa:ss@localhost:5432/app?sslmode=disable")
        );
        assert_eq!(
            get("REDIS_URL").as_deref(),
            Some("redis://127.0.0.1:6379/0")
        );
        assert_eq!(
            get("API_BASE").as_deref(),
            Some("http://localhost:8080/api")
        );
        assert_eq!(get("COLOR").as_deref(), Some("#fff"));
        assert_eq!(get("GREETING").as_deref(), Some("Hello, $USER"));
        assert_eq!(get("EMPTY").as_deref(), Some(""));
        assert_eq!(get("AWS_PROFILE"), None);
        assert_eq!(
            get("PRIVATE_KEY").as_deref(),
            Some(
                "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
            )
        );
        assert_eq!(get("MISSING"), None);
    }

    #[test]
    fn a_project_env_becomes_an_instance_env() {
        let mut document = parsed(PROJECT_ENV);
        assert_eq!(document.rewrite_ports(&ports), 3);
        document.upsert("API_BASE", "http://127.0.0.1:18080/api");
        document.upsert("AWS_PROFILE", "dev");
        document.upsert("GREETING", "it's me");
        document.upsert("BERTH_INSTANCE", "shop-2");
        let expected = r#"# Local development settings
# Database runs on localhost:5432 (see compose.yml)

export DATABASE_URL="postgres://app:pa:ss@localhost:15432/app?sslmode=disable"
REDIS_URL=redis://127.0.0.1:16379/0 # cache
API_BASE = http://127.0.0.1:18080/api
COLOR=#fff
GREETING="it's me"
EMPTY=
AWS_PROFILE=dev
PRIVATE_KEY="-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASC
-----END PRIVATE KEY-----"
BERTH_INSTANCE=shop-2
"#;
        assert_eq!(document.render(), expected);
        assert_eq!(parsed(expected), document);
    }

    #[test]
    fn valid_files_render_back_byte_for_byte() {
        let cases = [
            "",
            "\n",
            "\n\n\n",
            "   \n\t\n",
            "# only a comment",
            "  # indented comment\n",
            "KEY=value",
            "KEY=value\n",
            "KEY=value\r\nOTHER=x\r\n",
            "# windows\r\n\r\nKEY=\"a\r\nb\"\r\n",
            "export KEY=value\n",
            "export\tKEY=value\n",
            "  export   KEY  =  value  \n",
            "KEY = value\n",
            "KEY=value # comment\n",
            "KEY=value\t#\tcomment\n",
            "KEY= # only a comment\n",
            "KEY=   \n",
            "KEY=\n",
            "KEY=a b  c\n",
            "KEY=a\"b'c\n",
            "KEY=$OTHER\\n\n",
            "KEY=a=b==\n",
            "COLOR=#fff\n",
            "KEY='single # not a comment'\n",
            "KEY=\"double \\\"escaped\\\" \\\\ \\$HOME\" # comment\n",
            "KEY=\"a\"# comment straight after\n",
            "KEY=''\n",
            "KEY=\"\"\n",
            "KEY='multi\nline\n'\n",
            "KEY=\"multi\n\nline\"\nNEXT=1\n",
            "KEY\n",
            "KEY # inherited\n",
            "export KEY\n",
            "export=1\n",
            "export =1\n",
            "export\n",
            "my.dotted-key_1=x\n",
            "_=x\n",
            "KEY=value\r",
            "\u{feff}KEY=value\n",
            "KEY=日本語 🦀\n",
            "KEY=\"日本語\n🦀\"\n",
        ];
        for text in cases {
            assert_round_trips(text);
        }
    }

    #[test]
    fn values_read_as_compose_and_dotenv_libraries_read_them() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("KEY=value", "KEY", Some("value")),
            ("KEY = value ", "KEY", Some("value")),
            ("KEY=value # comment", "KEY", Some("value")),
            (
                "KEY=value#not-a-comment",
                "KEY",
                Some("value#not-a-comment"),
            ),
            ("KEY=#fff", "KEY", Some("#fff")),
            ("KEY= #comment", "KEY", Some("")),
            ("KEY=", "KEY", Some("")),
            ("KEY=a b c", "KEY", Some("a b c")),
            ("KEY=a\\nb", "KEY", Some("a\\nb")),
            ("KEY='a\\nb $X \"q\"'", "KEY", Some("a\\nb $X \"q\"")),
            ("KEY=\"a\\nb\"", "KEY", Some("a\nb")),
            ("KEY=\"a\\\"b\\\\c\\$d\\`e\"", "KEY", Some("a\"b\\c$d`e")),
            ("KEY=\"a\\rb\"", "KEY", Some("a\rb")),
            ("KEY=\"keep \\t and \\x\"", "KEY", Some("keep \\t and \\x")),
            ("KEY=\"a # b\" # c", "KEY", Some("a # b")),
            ("KEY=\"line\r\nbreak\"", "KEY", Some("line\nbreak")),
            ("KEY='line\r\nbreak'", "KEY", Some("line\nbreak")),
            ("KEY=value\r\n", "KEY", Some("value")),
            ("export KEY=value", "KEY", Some("value")),
            ("export=1", "export", Some("1")),
            ("KEY", "KEY", None),
            ("KEY=1\nKEY=2", "KEY", Some("2")),
            ("KEY=1\nKEY", "KEY", None),
            ("\u{feff}KEY=1", "KEY", Some("1")),
        ];
        for &(text, key, expected) in cases {
            assert_eq!(parsed(text).get(key).as_deref(), expected, "{text:?}");
        }
    }

    #[test]
    fn keys_are_checked_against_the_dotenv_key_syntax() {
        for key in ["KEY", "_x", "my.dotted-key_1", "a"] {
            assert!(is_valid_key(key), "{key}");
        }
        for key in ["", "1KEY", "-x", "MY KEY", "KEY=", "KÉY", "a:b"] {
            assert!(!is_valid_key(key), "{key}");
        }
    }

    #[test]
    fn duplicate_keys_are_listed_once_in_order_of_first_appearance() {
        let document = parsed("B=1\nA=1\nB=2\nC\nA=3\n");
        assert_eq!(document.keys(), ["B", "A", "C"]);
        assert_eq!(document.get("A").as_deref(), Some("3"));
    }

    #[test]
    fn invalid_lines_are_reported_with_their_line_number() {
        let cases = [
            ("=value", 1, "missing key before `=`"),
            (
                "OK=1\n1KEY=x",
                2,
                "invalid key `1KEY`: a key must start with a letter or `_`",
            ),
            (
                "KEY:value",
                1,
                "invalid character `:` in key `KEY:value`: a key holds only letters, digits, `_`, `.` and `-`",
            ),
            ("MY KEY=1", 1, "expected `=` after key `MY`, found `KEY=1`"),
            (
                "\n\nKEY=\"a\" trailing",
                3,
                "unexpected `trailing` after the closing quote of `KEY`",
            ),
            (
                "KEY='it's'",
                1,
                "unexpected `s'` after the closing quote of `KEY`",
            ),
            (
                "A=1\nKEY=\"never\nclosed\n",
                2,
                "unterminated double-quoted value of `KEY`: no closing `\"`",
            ),
            (
                "KEY='open",
                1,
                "unterminated single-quoted value of `KEY`: no closing `'`",
            ),
            (
                "KEY=\"ends in escape\\\"",
                1,
                "unterminated double-quoted value of `KEY`: no closing `\"`",
            ),
            (
                "KEY=\"line one\nline two\" junk",
                2,
                "unexpected `junk` after the closing quote of `KEY`",
            ),
            (
                "export 1A=x",
                1,
                "invalid key `1A`: a key must start with a letter or `_`",
            ),
            (
                "- item",
                1,
                "invalid key `-`: a key must start with a letter or `_`",
            ),
            (
                "KEY#c",
                1,
                "invalid character `#` in key `KEY#c`: a key holds only letters, digits, `_`, `.` and `-`",
            ),
        ];
        for (text, line, message) in cases {
            let expected = DotenvError {
                line,
                message: message.to_string(),
            };
            assert_eq!(parse(text), Err(expected), "{text:?}");
        }
        let error = parse("A=1\n=oops").err();
        assert_eq!(
            error.map(|error| error.to_string()).as_deref(),
            Some("line 2: missing key before `=`")
        );
    }

    #[test]
    fn upsert_edits_in_place_keeping_the_line_style() {
        let cases = [
            // Replacing keeps `export`, blanks, inline comments and the quote style.
            ("export KEY=old\n", "KEY", "new", "export KEY=new\n"),
            ("KEY = old # note\n", "KEY", "new", "KEY = new # note\n"),
            ("KEY='old'\n", "KEY", "new", "KEY='new'\n"),
            ("KEY='old'\n", "KEY", "a b $c", "KEY='a b $c'\n"),
            ("KEY=\"old\"\n", "KEY", "new", "KEY=\"new\"\n"),
            // A value the style cannot hold switches to double quotes.
            ("KEY=old\n", "KEY", "two words", "KEY=\"two words\"\n"),
            ("KEY=old # note\n", "KEY", "a#b", "KEY=\"a#b\" # note\n"),
            ("KEY='old'\n", "KEY", "it's", "KEY=\"it's\"\n"),
            (
                "KEY=old\n",
                "KEY",
                "say \"$HOME\\\"",
                "KEY=\"say \\\"\\$HOME\\\\\\\"\"\n",
            ),
            ("KEY=old\n", "KEY", "a\nb", "KEY=\"a\nb\"\n"),
            ("KEY=old\r\n", "KEY", "a\nb", "KEY=\"a\r\nb\"\r\n"),
            ("KEY=old\n", "KEY", "cr\rhere", "KEY=\"cr\\rhere\"\n"),
            ("KEY=old\n", "KEY", "`cmd`", "KEY=\"\\`cmd\\`\"\n"),
            ("KEY=old\n", "KEY", "", "KEY=\n"),
            ("KEY=old # note\n", "KEY", "", "KEY= # note\n"),
            ("KEY = old # note\n", "KEY", "", "KEY =  # note\n"),
            ("KEY = old  \n", "KEY", "", "KEY =   \n"),
            (
                "KEY=\n",
                "KEY",
                "http://localhost:1/x",
                "KEY=http://localhost:1/x\n",
            ),
            (
                "KEY=\n",
                "KEY",
                "http://h/x?a=b",
                "KEY=\"http://h/x?a=b\"\n",
            ),
            // A bare key gains a value; the last of duplicates is the one edited.
            ("KEY\n", "KEY", "v", "KEY=v\n"),
            ("KEY # inherit\n", "KEY", "v", "KEY=v # inherit\n"),
            ("export KEY\n", "KEY", "v", "export KEY=v\n"),
            ("KEY=1\nKEY=2\n", "KEY", "3", "KEY=1\nKEY=3\n"),
            // An absent key is appended on a line of its own, in the file's line ending.
            ("", "NEW", "v", "NEW=v\n"),
            ("A=1\n", "NEW", "v", "A=1\nNEW=v\n"),
            ("A=1", "NEW", "v", "A=1\nNEW=v\n"),
            ("# last line", "NEW", "v", "# last line\nNEW=v\n"),
            ("A=1\r\nB=2", "NEW", "v", "A=1\r\nB=2\r\nNEW=v\r\n"),
            ("A=1\r", "NEW", "v", "A=1\r\nNEW=v\n"),
            ("A=1\n", "NEW", "", "A=1\nNEW=\n"),
            ("A=1\n", "NEW", "x y", "A=1\nNEW=\"x y\"\n"),
        ];
        for (text, key, value, expected) in cases {
            let mut document = parsed(text);
            document.upsert(key, value);
            assert_eq!(
                document.render(),
                expected,
                "upsert({key}, {value:?}) on {text:?}"
            );
            assert_eq!(document.get(key).as_deref(), Some(value), "{text:?}");
            assert_eq!(parsed(expected), document, "{text:?}");
        }
    }

    #[test]
    fn rewrite_ports_touches_only_loopback_ports_in_values() {
        let cases = [
            (
                "DB=postgres://user:pa:ss@localhost:5432/db\n",
                "DB=postgres://user:pa:ss@localhost:15432/db\n",
                1,
            ),
            (
                "API=\"http://127.0.0.1:8080/x\"\n",
                "API=\"http://127.0.0.1:18080/x\"\n",
                1,
            ),
            ("HOST=localhost:5432\n", "HOST=localhost:15432\n", 1),
            ("HOST=LocalHost:5432\n", "HOST=LocalHost:15432\n", 1),
            (
                "PEERS='localhost:5432,localhost:6379'\n",
                "PEERS='localhost:15432,localhost:16379'\n",
                2,
            ),
            (
                "A=localhost:3000 # was localhost:3000\n",
                "A=localhost:13000 # was localhost:3000\n",
                1,
            ),
            (
                "# localhost:5432 in a comment\n",
                "# localhost:5432 in a comment\n",
                0,
            ),
            (
                "LOCALHOST_5432=localhost\n",
                "LOCALHOST_5432=localhost\n",
                0,
            ),
            ("A=localhost:54321\n", "A=localhost:54321\n", 0),
            ("A=localhost:5432x\n", "A=localhost:5432x\n", 0),
            ("A=localhost:99999\n", "A=localhost:99999\n", 0),
            ("A=localhost:1234\n", "A=localhost:1234\n", 0),
            ("A=mylocalhost:5432\n", "A=mylocalhost:5432\n", 0),
            ("A=api.localhost:5432\n", "A=api.localhost:5432\n", 0),
            ("A=127.0.0.10:5432\n", "A=127.0.0.10:5432\n", 0),
            ("A=10.127.0.0.1:5432\n", "A=10.127.0.0.1:5432\n", 0),
            (
                "A=localhost.localdomain:5432\n",
                "A=localhost.localdomain:5432\n",
                0,
            ),
            ("A=localhost:\n", "A=localhost:\n", 0),
            (
                "A=\"one\nhttp://localhost:8080\"\n",
                "A=\"one\nhttp://localhost:18080\"\n",
                1,
            ),
            ("KEY\n", "KEY\n", 0),
            // `\n` in double quotes is a line break, so the host after it is whole.
            (
                "A=\"x\\nlocalhost:5432\"\n",
                "A=\"x\\nlocalhost:15432\"\n",
                1,
            ),
            (
                "A=\"x\\\\nlocalhost:5432\"\n",
                "A=\"x\\\\nlocalhost:5432\"\n",
                0,
            ),
            ("A=x\\nlocalhost:5432\n", "A=x\\nlocalhost:5432\n", 0),
        ];
        for (text, expected, count) in cases {
            let mut document = parsed(text);
            assert_eq!(document.rewrite_ports(&ports), count, "{text:?}");
            assert_eq!(document.render(), expected, "{text:?}");
        }
    }

    /// Deterministic pseudo-random numbers (xorshift64), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound as u64) as usize
        }

        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }

        fn pick<'a, T: ?Sized>(&mut self, choices: &[&'a T]) -> &'a T {
            choices[self.below(choices.len())]
        }

        fn text(&mut self, alphabet: &[char], max_len: usize) -> String {
            let len = self.below(max_len + 1);
            (0..len)
                .map(|_| alphabet[self.below(alphabet.len())])
                .collect()
        }
    }

    /// Characters of values that exercise every quoting and escaping rule; no `:`, so
    /// only the loopback fragments below contain a `host:port`.
    const ANY_CHARS: &[char] = &[
        'a', 'Z', '0', '7', ' ', '\t', '#', '"', '\'', '$', '\\', '`', '\n', '\r', '=', '/', '@',
        '.', '-', '_', '%', 'é', '日', '🦀', '{', '}',
    ];
    /// Characters an unquoted value of a generated file may hold.
    const PLAIN_CHARS: &[char] = &[
        'a', 'Z', '0', '7', '=', '/', '@', '.', '-', '_', '%', ',', '+',
    ];
    const HOSTS: &[&str] = &["localhost", "LOCALHOST", "127.0.0.1"];
    const BASE_PORTS: &[u16] = &[5432, 6379, 8080, 3000, 1234];
    const KEYS: &[&str] = &["A", "DATABASE_URL", "b.c-d", "_x1", "export", "KEY"];

    /// A generated value and what `rewrite_ports(&ports)` should make of it.
    struct GeneratedValue {
        value: String,
        rewritten: String,
        rewrites: usize,
    }

    /// Text with loopback `host:port` fragments among filler from `alphabet`; a fragment
    /// is rewritten when its host is whole and its digits end the port.
    fn generate_value(rng: &mut Rng, alphabet: &[char]) -> GeneratedValue {
        let mut value = String::new();
        let mut mapped_ports = Vec::new();
        for _ in 0..rng.below(5) {
            value.push_str(&rng.text(alphabet, 6));
            if rng.chance(50) {
                let whole_host = !value.ends_with(|c: char| {
                    c.is_ascii_alphanumeric() || "-._".contains(c) || !c.is_ascii()
                });
                let old = BASE_PORTS[rng.below(BASE_PORTS.len())];
                value.push_str(rng.pick(HOSTS));
                value.push(':');
                let digits_start = value.len();
                value.push_str(&old.to_string());
                if let (true, Some(new)) = (whole_host, ports(old)) {
                    mapped_ports.push((digits_start..value.len(), new));
                }
            }
        }
        let mut rewritten = String::new();
        let mut copied = 0;
        let mut rewrites = 0;
        for (digits, new) in mapped_ports {
            // A digit or letter right after makes it a different (unmapped) port.
            if value[digits.end..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            rewritten.push_str(&value[copied..digits.start]);
            rewritten.push_str(&new.to_string());
            copied = digits.end;
            rewrites += 1;
        }
        rewritten.push_str(&value[copied..]);
        GeneratedValue {
            value,
            rewritten,
            rewrites,
        }
    }

    /// What a generated file should read as.
    #[derive(Default)]
    struct Expected {
        keys: Vec<String>,
        values: Vec<(String, Option<String>)>,
        rewritten: Vec<(String, Option<String>)>,
        rewrites: usize,
        comments: Vec<String>,
    }

    impl Expected {
        fn assign(&mut self, key: &str, value: Option<&GeneratedValue>) {
            if !self.keys.iter().any(|known| known == key) {
                self.keys.push(key.to_string());
            }
            self.values.retain(|(known, _)| known != key);
            self.rewritten.retain(|(known, _)| known != key);
            self.values
                .push((key.to_string(), value.map(|value| value.value.clone())));
            self.rewritten
                .push((key.to_string(), value.map(|value| value.rewritten.clone())));
            self.rewrites += value.map_or(0, |value| value.rewrites);
        }

        fn ordered(&self, values: &[(String, Option<String>)]) -> Vec<(String, Option<String>)> {
            self.keys
                .iter()
                .filter_map(|key| values.iter().find(|(known, _)| known == key).cloned())
                .collect()
        }
    }

    /// A random but valid dotenv file, written the many ways people write them.
    fn generate_file(rng: &mut Rng) -> (String, Expected) {
        let line_ending = if rng.chance(20) { "\r\n" } else { "\n" };
        let blanks = [" ", "\t", "  ", ""];
        let mut text = String::new();
        let mut expected = Expected::default();
        for _ in 0..rng.below(10) {
            let comment = format!(
                "# {}",
                generate_value(rng, &['a', ' ', '#', '"', '=', '日']).value
            )
            .replace(['\n', '\r'], "");
            match rng.below(6) {
                0 => text.push_str(rng.pick(&blanks)),
                1 => {
                    text.push_str(rng.pick(&blanks));
                    text.push_str(&comment);
                    expected.comments.push(comment);
                }
                _ => generate_variable(rng, &mut text, &mut expected, &comment, line_ending),
            }
            text.push_str(line_ending);
        }
        if rng.chance(30) {
            text.truncate(text.trim_end_matches(['\r', '\n']).len());
        }
        (text, expected)
    }

    fn generate_variable(
        rng: &mut Rng,
        text: &mut String,
        expected: &mut Expected,
        comment: &str,
        line_ending: &str,
    ) {
        let blank = |rng: &mut Rng| rng.pick(&[" ", "\t", "", ""]);
        let key = rng.pick(KEYS);
        text.push_str(blank(rng));
        if rng.chance(25) {
            text.push_str(rng.pick(&["export ", "export\t", "export  "]));
        }
        text.push_str(key);
        let with_comment = rng.chance(30);
        if rng.chance(10) {
            expected.assign(key, None);
        } else {
            let (quote, value) = match rng.below(3) {
                0 => (QuoteKind::Unquoted, generate_value(rng, PLAIN_CHARS)),
                1 => {
                    let value = generate_value(rng, ANY_CHARS);
                    let quote = QuoteKind::Single.fitting(&value.value);
                    (quote, value)
                }
                _ => (QuoteKind::Double, generate_value(rng, ANY_CHARS)),
            };
            text.push_str(blank(rng));
            text.push('=');
            text.push_str(blank(rng));
            text.push_str(quote.delimiter());
            // Line breaks inside quotes are sometimes `\n` even in a `\r\n` file.
            text.push_str(&quote.encode(&value.value, rng.pick(&["\n", line_ending])));
            text.push_str(quote.delimiter());
            expected.assign(key, Some(&value));
        }
        if with_comment {
            text.push_str(rng.pick(&[" ", "\t", "  "]));
            text.push_str(comment);
            expected.comments.push(comment.to_string());
        } else if rng.chance(20) {
            text.push_str(blank(rng));
        }
    }

    #[test]
    fn generated_files_round_trip_upsert_and_rewrite_as_promised() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..3000 {
            let (text, expected) = generate_file(&mut rng);
            let context = format!("case {case}: {text:?}");
            let document = parse(&text).unwrap_or_else(|error| panic!("{context}: {error}"));
            assert_eq!(document.render(), text, "{context}");
            assert_eq!(parsed(&document.render()), document, "{context}");
            assert_eq!(document.keys(), expected.keys, "{context}");
            assert_eq!(
                values(&document),
                expected.ordered(&expected.values),
                "{context}"
            );
            assert_eq!(comments(&document), expected.comments, "{context}");

            check_rewrite(&document, &expected, &context);
            for _ in 0..3 {
                check_upsert(&mut rng, &document, &context);
            }
        }
    }

    fn check_rewrite(document: &Document, expected: &Expected, context: &str) {
        let mut rewritten = document.clone();
        let count = rewritten.rewrite_ports(&ports);
        assert_eq!(
            values(&rewritten),
            expected.ordered(&expected.rewritten),
            "{context}"
        );
        assert_eq!(comments(&rewritten), comments(document), "{context}");
        assert_eq!(count, expected.rewrites, "{context}");
        let (before, after) = (document.render(), rewritten.render());
        assert_eq!(
            mask_numbers(&before),
            mask_numbers(&after),
            "only port digits change: {context}"
        );
        assert_eq!(parsed(&after), rewritten, "{context}");
    }

    /// `text` with each run of digits replaced by one NUL, to compare all but numbers.
    fn mask_numbers(text: &str) -> String {
        let mut masked = String::with_capacity(text.len());
        for c in text.chars() {
            if !c.is_ascii_digit() {
                masked.push(c);
            } else if !masked.ends_with('\0') {
                masked.push('\0');
            }
        }
        masked
    }

    fn check_upsert(rng: &mut Rng, document: &Document, context: &str) {
        let key = if rng.chance(70) {
            rng.pick(KEYS)
        } else {
            "NEW_KEY"
        };
        let value = rng.text(ANY_CHARS, 12);
        let mut updated = document.clone();
        updated.upsert(key, &value);
        let context = format!("{context}: upsert({key}, {value:?})");
        assert_eq!(updated.get(key), Some(value.clone()), "{context}");
        let others = |document: &Document| {
            values(document)
                .into_iter()
                .filter(|(known, _)| known != key)
                .collect::<Vec<_>>()
        };
        assert_eq!(others(&updated), others(document), "{context}");
        assert_eq!(comments(&updated), comments(document), "{context}");
        let rendered = updated.render();
        assert_eq!(parsed(&rendered), updated, "{context}");
        assert_eq!(parsed(&rendered).render(), rendered, "{context}");
    }
}
