//! A multi-mode program that berth's end-to-end tests run as supervised services.
//!
//! Each mode exercises one real or hostile behaviour (slow start-up, crashes,
//! ignored signals, escaping grandchildren, log floods, ...). Every mode first
//! prints `helper MODE pid=<pid>` so tests can tell which process is running.

mod http;

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const USAGE: &str = "\
usage: berth-test-helper MODE [options]
modes:
  serve [--port P] [--delay-ms D] [--ready-file F]   HTTP on 127.0.0.1:P (P defaults to env PORT)
  exit --code C [--after-ms D]                       exit with code C after D ms
  sleep                                              sleep forever
  ignore-term [--port P]                             ignore SIGTERM, optionally accept on P
  grandchild --pid-file F [--port P]                 fork a setsid() child that writes its pid to F
  flood [--port P]                                   write lines to stdout as fast as possible
  log-ready --line TEXT [--after-ms D]               print TEXT after D ms, then sleep
  crash-count --count-file F --code C                append a line to F, then exit with code C
  print-env NAME...                                  print NAME=value for each, then sleep
  write-file --path F --text T                       write T to F, then sleep";

/// A command-line mistake; reported with the usage text and exit code 2.
#[derive(Debug)]
struct UsageError(String);

/// `--name value` options of one mode, checked against the names it allows.
struct Options {
    values: HashMap<String, String>,
}

impl Options {
    /// Parses `arguments` (after the mode) as `--name value` or
    /// `--name=value` pairs, rejecting unknown or repeated names.
    fn parse(arguments: &[String], allowed: &[&str]) -> Result<Self, UsageError> {
        let mut values = HashMap::new();
        let mut remaining = arguments.iter();
        while let Some(argument) = remaining.next() {
            let Some(flag) = argument.strip_prefix("--") else {
                return Err(UsageError(format!("unexpected argument {argument:?}")));
            };
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name.to_string(), value.to_string()),
                None => {
                    let value = remaining
                        .next()
                        .ok_or_else(|| UsageError(format!("--{flag} needs a value")))?;
                    (flag.to_string(), value.clone())
                }
            };
            if !allowed.contains(&name.as_str()) {
                return Err(UsageError(format!("unknown option --{name}")));
            }
            if values.insert(name.clone(), value).is_some() {
                return Err(UsageError(format!("--{name} given more than once")));
            }
        }
        Ok(Self { values })
    }

    /// The value of an optional text option.
    fn text(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of a mandatory text option.
    fn required_text(&self, name: &str) -> Result<&str, UsageError> {
        self.text(name)
            .ok_or_else(|| UsageError(format!("--{name} is required")))
    }

    /// The value of an optional numeric option.
    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, UsageError> {
        self.text(name)
            .map(|text| {
                text.parse::<T>()
                    .map_err(|_| UsageError(format!("--{name} has an invalid value {text:?}")))
            })
            .transpose()
    }

    /// The value of a mandatory numeric option.
    fn required_number<T: std::str::FromStr>(&self, name: &str) -> Result<T, UsageError> {
        self.number(name)?
            .ok_or_else(|| UsageError(format!("--{name} is required")))
    }
}

/// Prints one line to stdout and flushes it at once, so a supervisor that
/// captures output sees it immediately. A closed stdout is ignored because
/// some tests deliberately stop reading.
fn say(line: &str) {
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Milliseconds since the Unix epoch; a clock before 1970 reads as zero.
fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or_default()
}

/// Sleeps for `milliseconds`, doing nothing for zero.
fn sleep_millis(milliseconds: u64) {
    if milliseconds > 0 {
        thread::sleep(Duration::from_millis(milliseconds));
    }
}

/// Blocks the calling thread until the process is killed.
fn sleep_forever() -> ! {
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

/// Writes `contents` to `path` through a temporary file and a rename, so a
/// reader polling for the file never sees it half written.
fn write_atomically(path: &Path, contents: &str) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    fs::write(&temporary, contents)?;
    fs::rename(&temporary, path)
}

/// Binds 127.0.0.1:`port`, records the bind time in `ready_file` if given,
/// and announces `listening on P at <unix_ms>`.
fn listen(port: u16, ready_file: Option<&Path>) -> Result<TcpListener, String> {
    let listener = http::bind_loopback(port)
        .map_err(|error| format!("cannot listen on 127.0.0.1:{port}: {error}"))?;
    let bound_at = unix_millis();
    if let Some(ready_file) = ready_file {
        write_atomically(ready_file, &bound_at.to_string())
            .map_err(|error| format!("cannot write {}: {error}", ready_file.display()))?;
    }
    say(&format!("listening on {port} at {bound_at}"));
    Ok(listener)
}

/// Listens on `port` and serves HTTP from a background thread.
fn serve_in_background(port: u16) -> Result<(), String> {
    let listener = listen(port, None)?;
    thread::spawn(move || http::serve(&listener));
    Ok(())
}

/// Announces the mode and pid as the first line of output.
fn announce(mode: &str) {
    say(&format!("helper {mode} pid={}", std::process::id()));
}

/// What a mode ended with, when it ends at all.
enum Outcome {
    /// The options were wrong: print usage and exit 2.
    Usage(UsageError),
    /// Something failed at run time: print the message and exit 1.
    Failed(String),
    /// The mode asked for this exit code.
    Exit(i32),
}

impl From<UsageError> for Outcome {
    fn from(error: UsageError) -> Self {
        Outcome::Usage(error)
    }
}

impl From<String> for Outcome {
    fn from(message: String) -> Self {
        Outcome::Failed(message)
    }
}

fn mode_serve(arguments: &[String]) -> Outcome {
    let options = match Options::parse(arguments, &["port", "delay-ms", "ready-file"]) {
        Ok(options) => options,
        Err(error) => return error.into(),
    };
    let run = || -> Result<Outcome, Outcome> {
        let port = match options.number::<u16>("port")? {
            Some(port) => port,
            None => std::env::var("PORT")
                .map_err(|_| UsageError("no --port given and PORT is not set".to_string()))?
                .trim()
                .parse::<u16>()
                .map_err(|_| UsageError("PORT is not a valid port".to_string()))?,
        };
        let delay = options.number::<u64>("delay-ms")?.unwrap_or(0);
        let ready_file = options.text("ready-file").map(PathBuf::from);
        announce("serve");
        sleep_millis(delay);
        let listener = listen(port, ready_file.as_deref())?;
        http::serve(&listener);
        Ok(Outcome::Exit(0))
    };
    run().unwrap_or_else(|outcome| outcome)
}

fn mode_exit(arguments: &[String]) -> Outcome {
    let run = || -> Result<Outcome, Outcome> {
        let options = Options::parse(arguments, &["code", "after-ms"])?;
        let code = options.required_number::<i32>("code")?;
        let delay = options.number::<u64>("after-ms")?.unwrap_or(0);
        announce("exit");
        sleep_millis(delay);
        say(&format!("exiting with {code}"));
        Ok(Outcome::Exit(code))
    };
    run().unwrap_or_else(|outcome| outcome)
}

fn mode_sleep(arguments: &[String]) -> Outcome {
    if let Err(error) = Options::parse(arguments, &[]) {
        return error.into();
    }
    announce("sleep");
    sleep_forever()
}

fn mode_ignore_term(arguments: &[String]) -> Outcome {
    let run = || -> Result<Outcome, Outcome> {
        let options = Options::parse(arguments, &["port"])?;
        let port = options.number::<u16>("port")?;
        announce("ignore-term");
        // SAFETY: installing SIG_IGN is async-signal-safe and touches no Rust
        // state; the return value is checked for SIG_ERR below.
        let previous = unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
        if previous == libc::SIG_ERR {
            return Err(format!("cannot ignore SIGTERM: {}", io::Error::last_os_error()).into());
        }
        say("ignoring SIGTERM");
        if let Some(port) = port {
            let listener = listen(port, None)?;
            http::accept_and_drop(&listener);
        }
        sleep_forever()
    };
    run().unwrap_or_else(|outcome| outcome)
}

fn mode_grandchild(arguments: &[String]) -> Outcome {
    let run = || -> Result<Outcome, Outcome> {
        let options = Options::parse(arguments, &["pid-file", "port"])?;
        let pid_file = PathBuf::from(options.required_text("pid-file")?);
        let port = options.number::<u16>("port")?;
        announce("grandchild");
        // SAFETY: no other thread has been started yet, so the child gets a
        // consistent copy of the whole process, and stdout was flushed by
        // `announce`, so no buffered output is duplicated.
        let child = unsafe { libc::fork() };
        if child < 0 {
            return Err(format!("fork failed: {}", io::Error::last_os_error()).into());
        }
        if child == 0 {
            // The child leaves the parent's session and process group, which
            // is exactly the escape a supervisor must still clean up after.
            // SAFETY: setsid has no memory-safety preconditions.
            if unsafe { libc::setsid() } < 0 {
                eprintln!("grandchild: setsid failed: {}", io::Error::last_os_error());
            }
            let own_pid = std::process::id().to_string();
            if let Err(error) = write_atomically(&pid_file, &own_pid) {
                eprintln!("grandchild: cannot write {}: {error}", pid_file.display());
                return Ok(Outcome::Exit(1));
            }
            sleep_forever()
        }
        say(&format!("forked grandchild pid={child}"));
        if let Some(port) = port {
            let listener = listen(port, None)?;
            http::serve(&listener);
        }
        sleep_forever()
    };
    run().unwrap_or_else(|outcome| outcome)
}

fn mode_flood(arguments: &[String]) -> Outcome {
    let run = || -> Result<Outcome, Outcome> {
        let options = Options::parse(arguments, &["port"])?;
        let port = options.number::<u16>("port")?;
        announce("flood");
        if let Some(port) = port {
            serve_in_background(port)?;
        }
        let padding = "x".repeat(100);
        // A large buffer makes the flood as fast as the reader allows.
        let mut output = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
        let mut line_number: u64 = 0;
        loop {
            if let Err(error) = writeln!(output, "flood {line_number} {padding}") {
                // Rust ignores SIGPIPE, so a reader going away shows up here
                // as EPIPE: that is the normal way for a flood to end.
                if error.kind() == io::ErrorKind::BrokenPipe {
                    return Ok(Outcome::Exit(0));
                }
                return Err(format!("cannot write to stdout: {error}").into());
            }
            line_number = line_number.wrapping_add(1);
        }
    };
    run().unwrap_or_else(|outcome| outcome)
}

fn mode_log_ready(arguments: &[String]) -> Outcome {
    let run = || -> Result<Outcome, Outcome> {
        let options = Options::parse(arguments, &["after-ms", "line"])?;
        let delay = options.number::<u64>("after-ms")?.unwrap_or(0);
        let line = options.required_text("line")?;
        announce("log-ready");
        sleep_millis(delay);
        say(line);
        sleep_forever()
    };
    run().unwrap_or_else(|outcome| outcome)
}

fn mode_crash_count(arguments: &[String]) -> Outcome {
    let run = || -> Result<Outcome, Outcome> {
        let options = Options::parse(arguments, &["count-file", "code"])?;
        let count_file = PathBuf::from(options.required_text("count-file")?);
        let code = options.required_number::<i32>("code")?;
        announce("crash-count");
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&count_file)
            .map_err(|error| format!("cannot open {}: {error}", count_file.display()))?;
        // One short write per run keeps concurrent appends from interleaving.
        let line = format!("run pid={} at={}\n", std::process::id(), unix_millis());
        file.write_all(line.as_bytes())
            .map_err(|error| format!("cannot append to {}: {error}", count_file.display()))?;
        say(&format!("exiting with {code}"));
        Ok(Outcome::Exit(code))
    };
    run().unwrap_or_else(|outcome| outcome)
}

fn mode_print_env(arguments: &[String]) -> Outcome {
    if arguments.is_empty() {
        return UsageError("print-env needs at least one variable name".to_string()).into();
    }
    if let Some(flag) = arguments.iter().find(|argument| argument.starts_with("--")) {
        return UsageError(format!("print-env takes names, not options like {flag:?}")).into();
    }
    announce("print-env");
    for name in arguments {
        match std::env::var_os(name) {
            Some(value) => say(&format!("{name}={}", value.to_string_lossy())),
            None => say(&format!("{name}=<unset>")),
        }
    }
    sleep_forever()
}

fn mode_write_file(arguments: &[String]) -> Outcome {
    let run = || -> Result<Outcome, Outcome> {
        let options = Options::parse(arguments, &["path", "text"])?;
        let path = PathBuf::from(options.required_text("path")?);
        let text = options.required_text("text")?;
        announce("write-file");
        fs::write(&path, text)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        say(&format!("wrote {}", path.display()));
        sleep_forever()
    };
    run().unwrap_or_else(|outcome| outcome)
}

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, rest)) = arguments.split_first() else {
        eprintln!("berth-test-helper: no mode given\n{USAGE}");
        return ExitCode::from(2);
    };
    let outcome = match mode.as_str() {
        "serve" => mode_serve(rest),
        "exit" => mode_exit(rest),
        "sleep" => mode_sleep(rest),
        "ignore-term" => mode_ignore_term(rest),
        "grandchild" => mode_grandchild(rest),
        "flood" => mode_flood(rest),
        "log-ready" => mode_log_ready(rest),
        "crash-count" => mode_crash_count(rest),
        "print-env" => mode_print_env(rest),
        "write-file" => mode_write_file(rest),
        other => UsageError(format!("unknown mode {other:?}")).into(),
    };
    match outcome {
        Outcome::Usage(UsageError(message)) => {
            eprintln!("berth-test-helper: {message}\n{USAGE}");
            ExitCode::from(2)
        }
        Outcome::Failed(message) => {
            eprintln!("berth-test-helper {mode}: {message}");
            ExitCode::from(1)
        }
        // Codes outside 0..=255 cannot be expressed by ExitCode, and tests
        // may ask for any i32, so exit directly with the raw value.
        Outcome::Exit(code) => std::process::exit(code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn parses_options_in_both_spellings() {
        let options = Options::parse(
            &strings(&["--code", "3", "--after-ms=10"]),
            &["code", "after-ms"],
        );
        let Ok(options) = options else {
            panic!("options should parse");
        };
        assert_eq!(options.required_number::<i32>("code").ok(), Some(3));
        assert_eq!(options.number::<u64>("after-ms").ok().flatten(), Some(10));
    }

    #[test]
    fn rejects_bad_options() {
        assert!(Options::parse(&strings(&["--nope", "1"]), &["code"]).is_err());
        assert!(Options::parse(&strings(&["--code"]), &["code"]).is_err());
        assert!(Options::parse(&strings(&["--code", "1", "--code", "2"]), &["code"]).is_err());
        assert!(Options::parse(&strings(&["stray"]), &["code"]).is_err());
    }
}
