//! Property tests, and a bounded-time fuzz mode, for the four parsers berth feeds with text
//! people write: the berth.toml loader, the template engine, the dotenv editor and the
//! Compose `ports:` parser.
//!
//! Each property is a strategy (random input, from plain arbitrary text to generated
//! configurations with a known verdict) and a check that must hold for every input.
//! `cargo test --test properties` runs each one for a modest number of cases from a
//! fixed seed, so a normal run is quick and reproducible; `PROPTEST_CASES` and
//! `PROPTEST_RNG_SEED` change the count and the seed. `scripts/fuzz.sh --seconds N` runs the
//! ignored `fuzz` test instead, which gives every property an equal share of N seconds
//! from fresh random seeds and reports executions, findings (shrunk to a minimal input)
//! and time per target.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Debug};
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::time::{Duration, Instant};

use berth::compose::ports::{PortMapping, parse_entry};
use berth::config::template::{CommandTemplate, Template, Var};
use berth::config::{Config, PortBase};
use berth::dotenv;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{
    Config as RunnerConfig, RngSeed, TestCaseError, TestError, TestRunner,
};
use serde_json::{Map, Number, Value};

// ---------------------------------------------------------------------------------------
// The harness: one runner for both modes, panics caught and located.
// ---------------------------------------------------------------------------------------

/// One property of one target, runnable for a number of cases or until a deadline.
struct Property {
    target: &'static str,
    name: &'static str,
    /// The test function that runs it normally, to repeat a fuzzing finding with.
    test: &'static str,
    /// Cases for a normal test run, chosen so that the whole file stays well under 10 s
    /// in a debug build.
    cases: u32,
    run: fn(&Budget, u64) -> Outcome,
}

/// How long a property runs.
enum Budget {
    /// A normal test: this many cases from one seed.
    Cases(u32),
    /// Fuzzing: batches from fresh seeds until the deadline.
    Until(Instant),
}

/// What running a property found.
struct Outcome {
    /// Every call of the check, shrinking included.
    executions: u64,
    /// Distinct failures, each shrunk to a minimal input.
    findings: Vec<Finding>,
}

/// A failing input, shrunk, and how to get it back.
struct Finding {
    reason: String,
    input: String,
    /// The seed of the runner that found it, which repeats it with `FUZZ_BATCH` cases.
    seed: u64,
}

/// Cases per runner while fuzzing; small, so the deadline is checked often.
const FUZZ_BATCH: u32 = 128;
/// Bounds on shrinking one failure, so a finding cannot eat the whole budget; proptest's
/// own default of four steps per case often stops short of a minimal input.
const SHRINK_MILLIS: u32 = 10_000;
const SHRINK_STEPS: u32 = 100_000;
/// Distinct findings a property reports at most while fuzzing.
const MAX_FINDINGS: usize = 4;

impl Property {
    /// Runs the property as a normal test and panics with the minimal input on failure.
    fn holds(&self) {
        let cases = env_number("PROPTEST_CASES").map_or(self.cases, |cases| cases as u32);
        let seed = env_number("PROPTEST_RNG_SEED").unwrap_or_else(|| name_seed(self.test));
        let outcome = (self.run)(&Budget::Cases(cases), seed);
        if let Some(finding) = outcome.findings.first() {
            panic!(
                "{}/{} failed (seed {}, {} executions): {}\nminimal failing input: {}",
                self.target,
                self.name,
                finding.seed,
                outcome.executions,
                finding.reason,
                finding.input
            );
        }
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// A fixed seed per property (FNV-1a of its name), so normal runs are reproducible.
fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The seed of one fuzzing batch: a splitmix64 step away from the property's seed.
fn batch_seed(seed: u64, batch: u64) -> u64 {
    let mut z = seed.wrapping_add(batch.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where a failure comes from: the panic's location, or the assertion's line in this
/// file, or else its message without numbers. Findings with the same signature are
/// taken for the same bug.
fn signature(reason: &str) -> String {
    if let Some(panic) = reason.strip_prefix("panicked at ") {
        let location: String = panic.split(": ").next().unwrap_or(panic).to_string();
        return format!("panic at {location}");
    }
    if let Some(index) = reason.rfind(" at tests/properties.rs:") {
        return reason[index + 4..].to_string();
    }
    reason
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .take(80)
        .collect()
}

/// Whether a run shrinks a failure to a minimal input.
#[derive(Clone, Copy)]
enum Shrink<'a> {
    No,
    Any,
    /// Only failures with this signature; any other counts as a pass while shrinking,
    /// so that shrinking cannot wander from one bug to another.
    Only(&'a str),
}

/// Runs `check` on inputs from `strategy` within `budget`. A normal run stops at the
/// first failure, which proptest shrinks to a minimal input; fuzzing goes on until the
/// deadline, shrinking only failures with a signature not seen before.
fn exercise<S>(
    budget: &Budget,
    seed: u64,
    strategy: S,
    check: fn(S::Value) -> Result<(), TestCaseError>,
) -> Outcome
where
    S: Strategy,
    S::Value: Debug,
{
    install_panic_capture();
    let executions = Cell::new(0u64);
    let run = |cases: u32, seed: u64, shrink: Shrink| {
        let config = RunnerConfig {
            cases,
            rng_seed: RngSeed::Fixed(seed),
            failure_persistence: None,
            max_shrink_time: SHRINK_MILLIS,
            max_shrink_iters: if let Shrink::No = shrink {
                0
            } else {
                SHRINK_STEPS
            },
            ..RunnerConfig::default()
        };
        let result = TestRunner::new(config).run(&strategy, |value| {
            executions.set(executions.get() + 1);
            match (guarded(check, value), shrink) {
                (Err(TestCaseError::Fail(reason)), Shrink::Only(wanted))
                    if signature(reason.message()) != wanted =>
                {
                    Ok(())
                }
                (result, _) => result,
            }
        });
        match result {
            Ok(()) => None,
            Err(TestError::Fail(reason, value)) => Some(Finding {
                reason: reason.to_string(),
                input: format!("{value:#?}"),
                seed,
            }),
            Err(TestError::Abort(reason)) => Some(Finding {
                reason: format!("the strategy gave up: {reason}"),
                input: String::new(),
                seed,
            }),
        }
    };
    let mut findings = Vec::new();
    match budget {
        Budget::Cases(cases) => findings.extend(run(*cases, seed, Shrink::Any)),
        Budget::Until(deadline) => {
            let mut seen = Vec::new();
            let mut batch = 0;
            while Instant::now() < *deadline && findings.len() < MAX_FINDINGS {
                let seed = batch_seed(seed, batch);
                batch += 1;
                let Some(found) = run(FUZZ_BATCH, seed, Shrink::No) else {
                    continue;
                };
                let signature = signature(&found.reason);
                if seen.contains(&signature) {
                    continue;
                }
                // The same seed fails the same way again, and this time it is shrunk.
                findings.push(run(FUZZ_BATCH, seed, Shrink::Only(&signature)).unwrap_or(found));
                seen.push(signature);
            }
        }
    }
    Outcome {
        executions: executions.get(),
        findings,
    }
}

thread_local! {
    /// Set while a check runs on this thread: its panics are recorded, not printed.
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Keeps every other panic printed as usual, and records where a check panicked, which
/// proptest's own report leaves out.
fn install_panic_capture() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CAPTURING.get() {
                return previous(info);
            }
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|message| message.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string());
            let location = info
                .location()
                .map_or_else(String::new, |location| format!(" at {location}"));
            LAST_PANIC.set(Some(format!("panicked{location}: {message}")));
        }));
    });
}

/// Runs one check, turning a panic into a failure that says where it happened.
fn guarded<T>(check: fn(T) -> Result<(), TestCaseError>, value: T) -> Result<(), TestCaseError> {
    CAPTURING.set(true);
    let result = panic::catch_unwind(AssertUnwindSafe(|| check(value)));
    CAPTURING.set(false);
    result.unwrap_or_else(|_| {
        let message = LAST_PANIC.take().unwrap_or_else(|| "panicked".to_string());
        Err(TestCaseError::fail(message))
    })
}

// ---------------------------------------------------------------------------------------
// The properties, and the normal tests that run them.
// ---------------------------------------------------------------------------------------

const LOADER_BYTES: Property = Property {
    target: "loader",
    name: "arbitrary-bytes",
    test: "loader_survives_arbitrary_bytes",
    cases: 96,
    run: |budget, seed| exercise(budget, seed, arbitrary_bytes(), check_loader_bytes),
};
const LOADER_TOKENS: Property = Property {
    target: "loader",
    name: "toml-token-soup",
    test: "loader_survives_toml_token_soup",
    cases: 128,
    run: |budget, seed| exercise(budget, seed, toml_token_soup(), check_loader_text),
};
const LOADER_GENERATED: Property = Property {
    target: "loader",
    name: "generated-config",
    test: "loader_accepts_valid_configs_and_rejects_each_mistake",
    cases: 192,
    run: |budget, seed| exercise(budget, seed, config_spec(), check_generated_config),
};
const LOADER_LOCATION: Property = Property {
    target: "loader",
    name: "error-location",
    test: "loader_locates_each_mistake_where_it_is",
    cases: 192,
    run: |budget, seed| exercise(budget, seed, config_spec(), check_generated_location),
};
const LOADER_EDITED: Property = Property {
    target: "loader",
    name: "edited-config",
    test: "loader_survives_edited_configs",
    cases: 128,
    run: |budget, seed| {
        exercise(budget, seed, edited_config(), |text| {
            check_loader_text(text.0)
        })
    },
};
const TEMPLATE_TEXT: Property = Property {
    target: "template",
    name: "arbitrary-text",
    test: "templates_survive_arbitrary_text",
    cases: 256,
    run: |budget, seed| exercise(budget, seed, template_ish_text(), check_template_text),
};
const TEMPLATE_GENERATED: Property = Property {
    target: "template",
    name: "generated-template",
    test: "templates_render_what_they_were_built_from",
    cases: 256,
    run: |budget, seed| exercise(budget, seed, template_case(), check_generated_template),
};
const TEMPLATE_ARGV: Property = Property {
    target: "template",
    name: "argv-command",
    test: "argv_commands_keep_each_value_one_word",
    cases: 256,
    run: |budget, seed| exercise(budget, seed, command_case(), check_argv_command),
};
const TEMPLATE_SHELL: Property = Property {
    target: "template",
    name: "shell-command",
    test: "shell_commands_quote_every_value",
    cases: 256,
    run: |budget, seed| exercise(budget, seed, command_case(), check_shell_command),
};
const DOTENV_TEXT: Property = Property {
    target: "dotenv",
    name: "parse-render",
    test: "dotenv_renders_what_it_parsed",
    cases: 256,
    run: |budget, seed| exercise(budget, seed, dotenv_ish_text(), check_dotenv_round_trip),
};
const DOTENV_UPSERT: Property = Property {
    target: "dotenv",
    name: "upsert",
    test: "dotenv_upsert_sets_the_value_and_reparses",
    cases: 256,
    run: |budget, seed| exercise(budget, seed, upsert_case(), check_upsert),
};
const DOTENV_REWRITE: Property = Property {
    target: "dotenv",
    name: "rewrite-ports",
    test: "dotenv_rewrite_ports_changes_only_port_digits",
    cases: 256,
    run: |budget, seed| exercise(budget, seed, rewrite_case(), check_rewrite_ports),
};
const PORTS_ARBITRARY: Property = Property {
    target: "compose-ports",
    name: "arbitrary-entry",
    test: "compose_ports_survive_arbitrary_entries",
    cases: 256,
    run: |budget, seed| exercise(budget, seed, arbitrary_entry(), check_any_entry),
};
const PORTS_SHORT: Property = Property {
    target: "compose-ports",
    name: "short-syntax",
    test: "compose_short_syntax_parses_as_generated",
    cases: 256,
    run: |budget, seed| exercise(budget, seed, short_spec(), check_short_syntax),
};
const PORTS_LONG: Property = Property {
    target: "compose-ports",
    name: "long-syntax",
    test: "compose_long_syntax_parses_as_generated",
    cases: 256,
    run: |budget, seed| exercise(budget, seed, long_spec(), check_long_syntax),
};
const PORTS_RENDER: Property = Property {
    target: "compose-ports",
    name: "render-reparse",
    test: "compose_rendered_ports_parse_back",
    cases: 256,
    run: |budget, seed| exercise(budget, seed, render_case(), check_render_reparse),
};

const PROPERTIES: [&Property; 16] = [
    &LOADER_BYTES,
    &LOADER_TOKENS,
    &LOADER_GENERATED,
    &LOADER_LOCATION,
    &LOADER_EDITED,
    &TEMPLATE_TEXT,
    &TEMPLATE_GENERATED,
    &TEMPLATE_ARGV,
    &TEMPLATE_SHELL,
    &DOTENV_TEXT,
    &DOTENV_UPSERT,
    &DOTENV_REWRITE,
    &PORTS_ARBITRARY,
    &PORTS_SHORT,
    &PORTS_LONG,
    &PORTS_RENDER,
];

#[test]
fn loader_survives_arbitrary_bytes() {
    LOADER_BYTES.holds();
}

#[test]
fn loader_survives_toml_token_soup() {
    LOADER_TOKENS.holds();
}

#[test]
fn loader_accepts_valid_configs_and_rejects_each_mistake() {
    LOADER_GENERATED.holds();
}

#[test]
fn loader_locates_each_mistake_where_it_is() {
    LOADER_LOCATION.holds();
}

#[test]
fn loader_survives_edited_configs() {
    LOADER_EDITED.holds();
}

#[test]
fn templates_survive_arbitrary_text() {
    TEMPLATE_TEXT.holds();
}

#[test]
fn templates_render_what_they_were_built_from() {
    TEMPLATE_GENERATED.holds();
}

#[test]
fn argv_commands_keep_each_value_one_word() {
    TEMPLATE_ARGV.holds();
}

#[test]
fn shell_commands_quote_every_value() {
    TEMPLATE_SHELL.holds();
}

#[test]
fn dotenv_renders_what_it_parsed() {
    DOTENV_TEXT.holds();
}

#[test]
fn dotenv_upsert_sets_the_value_and_reparses() {
    DOTENV_UPSERT.holds();
}

#[test]
fn dotenv_rewrite_ports_changes_only_port_digits() {
    DOTENV_REWRITE.holds();
}

#[test]
fn compose_ports_survive_arbitrary_entries() {
    PORTS_ARBITRARY.holds();
}

#[test]
fn compose_short_syntax_parses_as_generated() {
    PORTS_SHORT.holds();
}

#[test]
fn compose_long_syntax_parses_as_generated() {
    PORTS_LONG.holds();
}

#[test]
fn compose_rendered_ports_parse_back() {
    PORTS_RENDER.holds();
}

/// Fuzzing: every property gets an equal share of `FUZZ_SECONDS` (60 by default), from
/// random seeds (or from `FUZZ_SEED`, to repeat a run). Run it through scripts/fuzz.sh.
#[test]
#[ignore = "bounded-time fuzzing; run scripts/fuzz.sh"]
fn fuzz() {
    let seconds = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|seconds| seconds.trim().parse::<f64>().ok())
        .filter(|seconds| *seconds > 0.0)
        .unwrap_or(60.0);
    let seed =
        env_number("FUZZ_SEED").unwrap_or_else(|| RandomState::new().hash_one(Instant::now()));
    let mut targets: Vec<&str> = PROPERTIES.iter().map(|property| property.target).collect();
    targets.dedup();
    println!(
        "fuzzing {} properties of {} targets for {seconds} s, FUZZ_SEED={seed}",
        PROPERTIES.len(),
        targets.len(),
    );
    println!(
        "{:<14} {:<20} {:>11} {:>9} {:>8}",
        "target", "property", "executions", "failures", "time"
    );
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut results = Vec::new();
    for (done, property) in PROPERTIES.iter().enumerate() {
        // An equal share of what is left, so that time a property did not use (shrinking
        // aside, the budget is kept to within one batch) goes to the ones after it.
        let started = Instant::now();
        let left = deadline.saturating_duration_since(started);
        let share = left / (PROPERTIES.len() - done) as u32;
        let outcome = (property.run)(
            &Budget::Until(started + share),
            batch_seed(seed, name_seed(property.test)),
        );
        let elapsed = started.elapsed();
        println!(
            "{:<14} {:<20} {:>11} {:>9} {:>7.1}s",
            property.target,
            property.name,
            outcome.executions,
            outcome.findings.len(),
            elapsed.as_secs_f64()
        );
        results.push((property, outcome, elapsed));
    }

    println!("\nper target:");
    for target in targets {
        let of_target = || {
            results
                .iter()
                .filter(|(property, ..)| property.target == target)
        };
        let executions: u64 = of_target().map(|(_, outcome, _)| outcome.executions).sum();
        let failures: usize = of_target()
            .map(|(_, outcome, _)| outcome.findings.len())
            .sum();
        let time: Duration = of_target().map(|(.., elapsed)| *elapsed).sum();
        println!(
            "{target:<14} executions {executions:>9}   failures {failures}   time {:.1}s",
            time.as_secs_f64()
        );
    }

    let mut count = 0;
    for (property, outcome, _) in &results {
        for finding in &outcome.findings {
            count += 1;
            println!(
                "\nFINDING {count}: {}/{}\n  {}\n  minimal failing input: {}\n  \
                 repeat with: PROPTEST_RNG_SEED={} PROPTEST_CASES={} \
                 cargo test --release --test properties {}",
                property.target,
                property.name,
                finding.reason,
                finding.input,
                finding.seed,
                FUZZ_BATCH,
                property.test
            );
        }
    }
    let total: u64 = results
        .iter()
        .map(|(_, outcome, _)| outcome.executions)
        .sum();
    let time: Duration = results.iter().map(|(.., elapsed)| *elapsed).sum();
    println!(
        "\n{total} executions, {count} findings, {:.1}s",
        time.as_secs_f64()
    );
    assert_eq!(count, 0, "fuzzing found {count} failures");
}

// ---------------------------------------------------------------------------------------
// Target: the berth.toml loader.
// ---------------------------------------------------------------------------------------

/// What `[[env_files]]` in generated configurations reads; written into every project.
const ENV_SOURCE: &str = "app.env";

/// Loads `bytes` as `<temp>/berth.toml`. No Compose file exists there, so the resolver
/// must never be called.
fn load_bytes(bytes: &[u8]) -> Result<Result<Config, berth::Error>, TestCaseError> {
    let dir = tempfile::tempdir().map_err(|error| TestCaseError::fail(error.to_string()))?;
    let write = |name: &str, contents: &[u8]| {
        std::fs::write(dir.path().join(name), contents)
            .map_err(|error| TestCaseError::fail(error.to_string()))
    };
    write("berth.toml", bytes)?;
    write(ENV_SOURCE, b"A=1\nB='two'\n")?;
    Ok(berth::config::load(dir.path(), &mut |_, _| {
        panic!("the Compose resolver was called without a Compose file")
    }))
}

fn check_loader_bytes(bytes: Vec<u8>) -> Result<(), TestCaseError> {
    let result = load_bytes(&bytes)?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => check_load_result(text, &result),
        Err(invalid) => {
            let message = result
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default();
            prop_assert!(
                message.contains("not valid UTF-8"),
                "invalid UTF-8 must be an error saying so: {message}"
            );
            // Located at the first byte that is not UTF-8.
            let before = std::str::from_utf8(&bytes[..invalid.valid_up_to()]).unwrap_or_default();
            let expected = line_column(before, before.len());
            prop_assert_eq!(
                location(&message),
                Some(expected),
                "not located at the first invalid byte: {}",
                message
            );
            Ok(())
        }
    }
}

fn check_loader_text(text: String) -> Result<(), TestCaseError> {
    let result = load_bytes(text.as_bytes())?;
    check_load_result(&text, &result)
}

/// Whatever the text: an error names `berth.toml:LINE:COLUMN` inside the text, and a
/// loaded configuration holds only valid names and ports.
fn check_load_result(
    text: &str,
    result: &Result<Config, berth::Error>,
) -> Result<(), TestCaseError> {
    match result {
        Ok(config) => check_config(config),
        Err(error) => {
            let message = error.to_string();
            let location = location(&message);
            prop_assert!(location.is_some(), "error without a location: {message}");
            if let Some((line, column)) = location {
                let lines: Vec<&str> = text.split('\n').collect();
                prop_assert!(
                    (1..=lines.len()).contains(&line),
                    "line {line} is outside the text's {} lines: {message}",
                    lines.len()
                );
                let width = lines[line - 1].chars().count();
                prop_assert!(
                    (1..=width + 1).contains(&column),
                    "column {column} is outside line {line} ({width} characters): {message}"
                );
            }
            Ok(())
        }
    }
}

/// The `LINE:COLUMN` after `berth.toml:` in an error message.
fn location(message: &str) -> Option<(usize, usize)> {
    let marker = "berth.toml:";
    let rest = &message[message.find(marker)? + marker.len()..];
    let mut parts = rest.splitn(3, ':');
    let line = parts.next()?.parse().ok()?;
    let column = parts.next()?.parse().ok()?;
    Some((line, column))
}

/// The 1-based line and column (in characters) of a byte offset, as the loader counts.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

fn check_config(config: &Config) -> Result<(), TestCaseError> {
    prop_assert!(
        !config.project.is_empty() && berth::identity::sanitize(&config.project) == config.project,
        "invalid project name {:?}",
        config.project
    );
    prop_assert!((1..=10_000).contains(&config.stride));
    let (low, high) = config.auto_range;
    prop_assert!(1024 <= low && low <= high, "auto range {low}-{high}");
    for (name, service) in &config.services {
        prop_assert!(is_service_name(name), "invalid service name {name:?}");
        for (port_name, port) in &service.ports {
            if let PortBase::Fixed(number) = port {
                prop_assert!(*number >= 1024, "port {port_name} = {number}");
            }
        }
    }
    Ok(())
}

/// `[a-z0-9][a-z0-9_-]*`.
fn is_service_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        any::<String>().prop_map(String::into_bytes),
        toml_token_soup().prop_map(String::into_bytes),
    ]
}

/// Fragments of berth.toml, from whole headers to lone quotes and escapes.
#[rustfmt::skip]
const TOML_TOKENS: &[&str] = &[
    "[services.api]\n", "[services.db]\n", "[services.\"A b\"]\n", "[project]\n",
    "[ports]\n", "[compose]\n", "[[env_files]]\n", "\n", "\n", " ", "\t", "\r\n",
    " = ", "=", "command", "port", "ports", "shell", "depends_on", "ready",
    "restart", "setup", "stop_grace", "cwd", "env", "env_file", "name", "stride",
    "range", "files", "bind", "source", "target", "set", "services", "tcp", "http",
    "exec", "log", "\"", "\"", "'", "\"\"\"", "'''", "\\", "\\u00e9", "\\t", "\\\"",
    "{", "}", "[", "]", ",", ".", "#", "{{ port.api }}", "{{ port.db.http }}",
    "{{ url.api }}", "{{ instance.root }}", "{{ nope }}", "{{", "}}", "3000",
    "70000", "-1", "0", "80", "1e3", "9223372036854775808", "\"auto\"", "true",
    "\"always\"", "\"5s\"", "\"/health\"", "\"app.env\"", "日", "é", "🦀", "\u{feff}",
    "api", "db", "x", "1979-05-27",
];

fn toml_token_soup() -> impl Strategy<Value = String> {
    let soup = prop::collection::vec(select(TOML_TOKENS), 0..60).prop_map(|tokens| tokens.concat());
    prop_oneof![
        3 => soup.clone(),
        // A plausible start makes the soup reach deeper into validation.
        2 => soup.prop_map(|soup| format!("[services.api]\ncommand = \"run {{{{ port.api }}}}\"\n{soup}")),
        1 => any::<String>(),
    ]
}

/// How a TOML string is written; the loader must locate errors in each the same way.
#[derive(Debug, Clone, Copy)]
enum Quoting {
    Basic,
    BasicEscapingNonAscii,
    Literal,
    MultiLineBasic,
    MultiLineLiteral,
}

fn quoting() -> impl Strategy<Value = Quoting> {
    prop_oneof![
        3 => Just(Quoting::Basic),
        1 => Just(Quoting::BasicEscapingNonAscii),
        2 => Just(Quoting::Literal),
        1 => Just(Quoting::MultiLineBasic),
        1 => Just(Quoting::MultiLineLiteral),
    ]
}

/// `value` as a TOML string in the given style, falling back to a basic string where
/// the style cannot hold the value.
fn toml_string(value: &str, quoting: Quoting) -> String {
    let control = |c: char| c.is_control() && c != '\t';
    match quoting {
        Quoting::Literal if !value.contains('\'') && !value.contains(control) => {
            format!("'{value}'")
        }
        Quoting::MultiLineLiteral
            if !value.contains("''")
                && !value.ends_with('\'')
                && !value.contains(|c: char| control(c) && c != '\n') =>
        {
            format!("'''\n{value}'''")
        }
        Quoting::MultiLineBasic => {
            let mut text = String::from("\"\"\"\n");
            for c in value.chars() {
                match c {
                    '\n' => text.push('\n'),
                    c => escape_basic(c, false, &mut text),
                }
            }
            text.push_str("\"\"\"");
            text
        }
        Quoting::BasicEscapingNonAscii => basic_string(value, true),
        _ => basic_string(value, false),
    }
}

fn basic_string(value: &str, escape_non_ascii: bool) -> String {
    let mut text = String::from("\"");
    for c in value.chars() {
        escape_basic(c, escape_non_ascii, &mut text);
    }
    text.push('"');
    text
}

fn escape_basic(c: char, escape_non_ascii: bool, text: &mut String) {
    match c {
        '"' => text.push_str("\\\""),
        '\\' => text.push_str("\\\\"),
        '\n' => text.push_str("\\n"),
        '\t' => text.push_str("\\t"),
        '\r' => text.push_str("\\r"),
        c if c.is_control() => text.push_str(&format!("\\u{:04X}", c as u32)),
        c if escape_non_ascii && !c.is_ascii() => {
            if (c as u32) < 0x10000 {
                text.push_str(&format!("\\u{:04X}", c as u32));
            } else {
                text.push_str(&format!("\\U{:08X}", c as u32));
            }
        }
        c => text.push(c),
    }
}

/// A generated berth.toml: valid as a whole, unless `mistake` breaks exactly one thing.
#[derive(Clone)]
struct ConfigSpec {
    project: Option<String>,
    ports: Option<(i64, Option<(u16, u16)>)>,
    services: Vec<ServiceSpec>,
    env_file: Option<EnvFileSpec>,
    quoting: Vec<Quoting>,
    mistake: Option<Mistake>,
}

/// Shown as the berth.toml it writes, which is what a failure's reader needs.
impl Debug for ConfigSpec {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(formatter, "berth.toml with mistake {:?}:", self.mistake)?;
        TomlText(write_config(self).text).fmt(formatter)
    }
}

/// A berth.toml's text, shown line by line with control characters escaped.
#[derive(Clone)]
struct TomlText(String);

impl Debug for TomlText {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in self.0.split_inclusive('\n') {
            formatter.write_str("    ")?;
            for c in line.trim_end_matches('\n').chars() {
                if c.is_control() || c == '\u{feff}' {
                    write!(formatter, "{}", c.escape_debug())?;
                } else {
                    write!(formatter, "{c}")?;
                }
            }
            formatter.write_str("\n")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct ServiceSpec {
    /// The name is `{base}-{index}`, which keeps names and their variables distinct.
    base: String,
    command: CommandSpec,
    shell: bool,
    ports: PortsSpec,
    /// Resolved against the services before this one, so there is never a cycle.
    depends_on: Vec<usize>,
    restart: Option<&'static str>,
    stop_grace: Option<&'static str>,
    cwd: Option<Vec<Segment>>,
    env: Vec<(String, Vec<Segment>)>,
    env_file: Option<Vec<Segment>>,
    setup: Option<Vec<Vec<Segment>>>,
    ready: ReadySpec,
}

#[derive(Debug, Clone)]
enum CommandSpec {
    /// Words joined by the separator.
    Line(Vec<Vec<Segment>>, &'static str),
    Argv(Vec<Vec<Segment>>),
}

#[derive(Debug, Clone)]
enum PortsSpec {
    None,
    Single(PortSpec),
    Named(Vec<(String, PortSpec)>),
}

/// A fixed port is an offset in a block that belongs to its service and port, so
/// fixed ports never collide.
#[derive(Debug, Clone, Copy)]
enum PortSpec {
    Fixed(u16),
    Auto,
}

#[derive(Debug, Clone)]
enum ReadySpec {
    Default,
    Tcp,
    Http(String),
    Log(String),
    Exec(Vec<Vec<Segment>>),
}

#[derive(Debug, Clone)]
struct EnvFileSpec {
    target: Vec<Segment>,
    set: Vec<(String, Vec<Segment>)>,
    services: Vec<usize>,
}

/// Text, or a placeholder resolved against the generated services when written.
#[derive(Debug, Clone)]
enum Segment {
    Text(String),
    Port {
        service: usize,
        port: Option<usize>,
        url: bool,
        spacing: (&'static str, &'static str),
    },
    Instance(&'static str),
}

/// The one thing a generated configuration gets wrong, and where.
#[derive(Debug, Clone)]
enum Mistake {
    UnknownKey {
        service: usize,
        key: String,
    },
    PortNumber {
        service: usize,
        number: i64,
    },
    PortWord {
        service: usize,
        word: String,
    },
    Restart {
        service: usize,
        word: String,
    },
    StopGrace {
        service: usize,
        word: String,
    },
    ServiceName {
        service: usize,
        name: String,
    },
    Template {
        service: usize,
        field: Field,
        kind: BadPlaceholder,
        prefix: String,
    },
    SelfDependency {
        service: usize,
    },
    UnknownDependency {
        service: usize,
    },
    EnvKey {
        service: usize,
        key: String,
    },
    DuplicatePort,
    Stride(i64),
    ProjectName(String),
    ComposeWithoutFile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Command,
    Cwd,
    Env,
    EnvFile,
    Setup,
    ReadyExec,
}

#[derive(Debug, Clone, Copy)]
enum BadPlaceholder {
    UnknownService,
    UnknownName,
    Unclosed,
}

impl BadPlaceholder {
    fn text(self) -> &'static str {
        match self {
            BadPlaceholder::UnknownService => "{{ port.nosuch }}",
            BadPlaceholder::UnknownName => "{{ instance.nope }}",
            BadPlaceholder::Unclosed => "{{ port.unclosed",
        }
    }

    fn message(self) -> &'static str {
        match self {
            BadPlaceholder::UnknownService => "unknown service `nosuch`",
            BadPlaceholder::UnknownName => "unknown template name",
            BadPlaceholder::Unclosed => "unclosed",
        }
    }
}

/// Text of command words: nothing a shell-like splitter treats specially, but
/// characters that TOML may escape and multi-byte ones.
fn command_word_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_./=:@%+,é日🦀-]{1,6}"
}

/// Text of plain templates (`cwd`, `env`): anything but `{`, which could open a placeholder.
fn template_text() -> impl Strategy<Value = String> {
    "[ -z|~}\t\né日🦀]{0,8}"
}

fn spacing() -> impl Strategy<Value = (&'static str, &'static str)> {
    (
        select(&[" ", "", "  ", "\t"][..]),
        select(&[" ", "", "\t"][..]),
    )
}

fn segment(text: BoxedStrategy<String>) -> impl Strategy<Value = Segment> {
    prop_oneof![
        3 => text.prop_map(Segment::Text),
        2 => (0..8usize, prop::option::of(0..4usize), any::<bool>(), spacing()).prop_map(
            |(service, port, url, spacing)| Segment::Port { service, port, url, spacing }
        ),
        1 => select(&["name", "index", "root", "data", "port_offset"][..]).prop_map(Segment::Instance),
    ]
}

fn word() -> impl Strategy<Value = Vec<Segment>> {
    prop::collection::vec(segment(command_word_text().boxed()), 1..4)
}

fn words() -> impl Strategy<Value = Vec<Vec<Segment>>> {
    prop::collection::vec(word(), 1..4)
}

fn plain_template() -> impl Strategy<Value = Vec<Segment>> {
    prop::collection::vec(segment(template_text().boxed()), 0..4)
}

fn port_spec() -> impl Strategy<Value = PortSpec> {
    prop_oneof![3 => (0..1000u16).prop_map(PortSpec::Fixed), 1 => Just(PortSpec::Auto)]
}

fn ports_spec() -> impl Strategy<Value = PortsSpec> {
    prop_oneof![
        1 => Just(PortsSpec::None),
        2 => port_spec().prop_map(PortsSpec::Single),
        1 => prop::collection::vec(("[a-z0-9][a-z0-9_]{0,5}", port_spec()), 1..4)
            .prop_map(PortsSpec::Named),
    ]
}

fn ready_spec() -> impl Strategy<Value = ReadySpec> {
    prop_oneof![
        3 => Just(ReadySpec::Default),
        1 => Just(ReadySpec::Tcp),
        1 => "/[a-z/]{0,8}".prop_map(ReadySpec::Http),
        1 => "[a-z ]{0,8}".prop_map(ReadySpec::Log),
        1 => words().prop_map(ReadySpec::Exec),
    ]
}

fn service_spec() -> impl Strategy<Value = ServiceSpec> {
    let command = prop_oneof![
        3 => (words(), select(&[" ", "\t", "  "][..])).prop_map(|(words, separator)| CommandSpec::Line(words, separator)),
        1 => words().prop_map(CommandSpec::Argv),
    ];
    let env = prop::collection::vec(("[A-Z_][A-Z0-9_]{0,5}", plain_template()), 0..3);
    (
        (
            "[a-z0-9][a-z0-9_-]{0,6}",
            command,
            any::<bool>(),
            ports_spec(),
        ),
        (
            prop::collection::vec(0..8usize, 0..3),
            prop::option::of(select(&["on-failure", "always", "never"][..])),
            prop::option::of(select(&["2s", "250ms", "1m 30s", "0s"][..])),
        ),
        (
            prop::option::of(plain_template()),
            env,
            prop::option::of(plain_template()),
            prop::option::of(words()),
            ready_spec(),
        ),
    )
        .prop_map(
            |(
                (base, command, shell, ports),
                (depends_on, restart, stop_grace),
                (cwd, env, env_file, setup, ready),
            )| {
                // `shell = true` takes the command as one line.
                let shell = shell && matches!(command, CommandSpec::Line(..));
                ServiceSpec {
                    base,
                    command,
                    shell,
                    ports,
                    depends_on,
                    restart,
                    stop_grace,
                    cwd,
                    env,
                    env_file,
                    setup,
                    ready,
                }
            },
        )
}

fn field() -> impl Strategy<Value = Field> {
    select(
        &[
            Field::Command,
            Field::Cwd,
            Field::Env,
            Field::EnvFile,
            Field::Setup,
            Field::ReadyExec,
        ][..],
    )
}

fn mistake() -> impl Strategy<Value = Mistake> {
    let service = 0..8usize;
    let bad_placeholder = select(
        &[
            BadPlaceholder::UnknownService,
            BadPlaceholder::UnknownName,
            BadPlaceholder::Unclosed,
        ][..],
    );
    prop_oneof![
        1 => (service.clone(), "x_[a-z]{1,6}").prop_map(|(service, key)| Mistake::UnknownKey { service, key }),
        1 => (service.clone(), prop_oneof![i64::MIN..1024, 65536..=i64::MAX])
            .prop_map(|(service, number)| Mistake::PortNumber { service, number }),
        1 => (service.clone(), "[a-z0-9 ]{0,6}".prop_filter("auto is valid", |word| word != "auto"))
            .prop_map(|(service, word)| Mistake::PortWord { service, word }),
        1 => (service.clone(), "[a-z-]{0,10}".prop_filter("a valid policy", |word| {
            !["on-failure", "always", "never"].contains(&word.as_str())
        }))
        .prop_map(|(service, word)| Mistake::Restart { service, word }),
        1 => (service.clone(), "[a-z ]{0,6}").prop_map(|(service, word)| Mistake::StopGrace { service, word }),
        1 => (
            service.clone(),
            prop_oneof![
                "[A-Z][a-z]{0,5}",
                "[-_][a-z]{0,5}",
                "[a-z]{1,4}[A-Z. é日]{1,3}",
                "[a-z]{64,70}",
                Just(String::new()),
            ]
        )
            .prop_map(|(service, name)| Mistake::ServiceName { service, name }),
        3 => (service.clone(), field(), bad_placeholder, "[a-z0-9é日🦀\\\\\"\t ]{0,6}").prop_map(
            |(service, field, kind, prefix)| Mistake::Template { service, field, kind, prefix }
        ),
        1 => service.clone().prop_map(|service| Mistake::SelfDependency { service }),
        1 => service.clone().prop_map(|service| Mistake::UnknownDependency { service }),
        1 => (service, prop_oneof!["[0-9][A-Z]{0,3}", "[A-Z]{1,3}[-. é][A-Z]{0,2}", Just(String::new())])
            .prop_map(|(service, key)| Mistake::EnvKey { service, key }),
        1 => Just(Mistake::DuplicatePort),
        1 => prop_oneof![i64::MIN..1, 10_001..=i64::MAX].prop_map(Mistake::Stride),
        1 => prop_oneof!["[A-Z][a-z]{0,4}", "[a-z]{1,3}[ _.][a-z]{1,3}", "-[a-z]{1,3}", Just(String::new())]
            .prop_map(Mistake::ProjectName),
        1 => Just(Mistake::ComposeWithoutFile),
    ]
}

fn env_file_spec() -> impl Strategy<Value = EnvFileSpec> {
    (
        plain_template(),
        prop::collection::vec(("[A-Za-z_][A-Za-z0-9_]{0,4}", plain_template()), 0..3),
        prop::collection::vec(0..8usize, 0..2),
    )
        .prop_map(|(target, set, services)| EnvFileSpec {
            target,
            set,
            services,
        })
}

fn config_spec() -> impl Strategy<Value = ConfigSpec> {
    (
        prop::option::of("[a-z0-9]{1,6}(-[a-z0-9]{1,4}){0,2}"),
        prop::option::of((
            1..=10_000i64,
            prop::option::of(
                (1024..=65535u16, 0..=1000u16)
                    .prop_map(|(low, width)| (low, low.saturating_add(width))),
            ),
        )),
        prop::collection::vec(service_spec(), 1..4),
        prop::option::of(env_file_spec()),
        prop::collection::vec(quoting(), 1..6),
        prop::option::of(mistake()),
    )
        .prop_map(
            |(project, ports, services, env_file, quoting, mistake)| ConfigSpec {
                project,
                ports,
                services,
                env_file,
                quoting,
                mistake,
            },
        )
}

/// A written configuration and what loading it must give.
struct WrittenConfig {
    text: String,
    /// `None` when the configuration is valid; else the message the error must hold and
    /// the byte offsets it may point at (any offset when empty).
    error: Option<(&'static str, Vec<usize>)>,
}

/// Writes a [`ConfigSpec`] as berth.toml, noting where its mistake is.
struct Writer<'a> {
    spec: &'a ConfigSpec,
    text: String,
    accept: Vec<usize>,
}

impl Writer<'_> {
    fn service_name(&self, index: usize) -> String {
        format!("{}-{index}", self.spec.services[index].base)
    }

    /// The quoting of a string, chosen by its value so that it stays the same while
    /// shrinking removes other strings.
    fn quoting(&self, value: &str) -> Quoting {
        self.spec.quoting[(name_seed(value) % self.spec.quoting.len() as u64) as usize]
    }

    /// The names of a service's ports (`default` for a single `port`).
    fn port_names(&self, index: usize) -> Vec<String> {
        match &self.spec.services[index].ports {
            PortsSpec::None => Vec::new(),
            PortsSpec::Single(_) => vec!["default".to_string()],
            PortsSpec::Named(ports) => (0..ports.len()).map(|i| port_name(ports, i)).collect(),
        }
    }

    fn segments(&self, segments: &[Segment]) -> String {
        let services = self.spec.services.len();
        segments
            .iter()
            .map(|segment| match segment {
                Segment::Text(text) => text.clone(),
                Segment::Instance(name) => format!("{{{{ instance.{name} }}}}"),
                Segment::Port {
                    service,
                    port,
                    url,
                    spacing: (left, right),
                } => {
                    let service = service % services;
                    let names = self.port_names(service);
                    if names.is_empty() {
                        return "{{ project.name }}".to_string();
                    }
                    let kind = if *url { "url" } else { "port" };
                    let name = self.service_name(service);
                    match port {
                        None => format!("{{{{{left}{kind}.{name}{right}}}}}"),
                        Some(port) => {
                            let port = &names[port % names.len()];
                            format!("{{{{{left}{kind}.{name}.{port}{right}}}}}")
                        }
                    }
                }
            })
            .collect()
    }

    fn line(&self, words: &[Vec<Segment>], separator: &str) -> String {
        words
            .iter()
            .map(|word| self.segments(word))
            .collect::<Vec<_>>()
            .join(separator)
    }

    /// Writes a string value and returns where it starts.
    fn string(&mut self, value: &str) -> usize {
        let quoting = self.quoting(value);
        let start = self.text.len();
        self.text.push_str(&toml_string(value, quoting));
        start
    }

    /// Writes a string value holding the mistake's placeholder, accepting an error at
    /// the placeholder or at `value_start` (the start of the whole value).
    fn bad_string(&mut self, value: &str, value_start: usize, placeholder: &str) {
        let start = self.string(value);
        let written = &self.text[start..];
        if let Some(index) = written.find(placeholder) {
            self.accept.push(start + index);
        }
        self.accept.push(start);
        self.accept.push(value_start);
    }

    fn key(&mut self, key: &str) {
        self.text.push_str(key);
        self.text.push_str(" = ");
    }

    fn mistake_in(&self, service: usize, field: Field) -> Option<(BadPlaceholder, String)> {
        match &self.spec.mistake {
            Some(Mistake::Template {
                service: target,
                field: wrong,
                kind,
                prefix,
            }) if target % self.spec.services.len() == service && *wrong == field => {
                Some((*kind, prefix.clone()))
            }
            _ => None,
        }
    }

    fn write(mut self) -> WrittenConfig {
        let spec = self.spec;
        let services = spec.services.len();
        let mut error = None;
        let mistake = spec.mistake.clone();

        let project = match &mistake {
            Some(Mistake::ProjectName(name)) => Some(name.clone()),
            _ => spec.project.clone(),
        };
        if let Some(name) = project {
            self.text.push_str("[project]\n");
            self.key("name");
            let start = self.string(&name);
            self.text.push('\n');
            if let Some(Mistake::ProjectName(_)) = mistake {
                error = Some(("project name", vec![start]));
            }
        }

        let ports = match &mistake {
            Some(Mistake::Stride(stride)) => Some((*stride, None)),
            _ => spec.ports,
        };
        if let Some((stride, range)) = ports {
            self.text.push_str("[ports]\n");
            self.key("stride");
            let start = self.text.len();
            self.text.push_str(&format!("{stride}\n"));
            if let Some(Mistake::Stride(_)) = mistake {
                error = Some(("stride", vec![start]));
            }
            if let Some((low, high)) = range {
                self.text.push_str(&format!("range = [{low}, {high}]\n"));
            }
        }

        if let Some(Mistake::ComposeWithoutFile) = mistake {
            self.text.push_str("[compose]\nprofiles = []\n");
            error = Some(("holds no Compose file", Vec::new()));
        }

        let mut fixed_ports = Vec::new();
        for index in 0..services {
            let service_error = self.write_service(index, &mut fixed_ports);
            error = error.or(service_error);
        }

        if let Some(Mistake::DuplicatePort) = mistake {
            // New services, so that nothing else refers to them: one taking the first
            // fixed port, or two sharing a port when no service has a fixed one.
            let (port, count) = match fixed_ports.first() {
                Some(port) => (*port, 1),
                None => (1500, 2),
            };
            let mut headers = Vec::new();
            for name in ["dup0", "dup1"].into_iter().take(count) {
                self.text.push_str("[services.");
                headers.push(self.text.len());
                self.text
                    .push_str(&format!("{name}]\ncommand = \"x\"\nport = {port}\n"));
            }
            // The error names the service where the port is seen again: the last one.
            error = Some(("declared by both", headers.split_off(count - 1)));
        }

        if let Some(env_file) = &spec.env_file {
            self.text.push_str("[[env_files]]\nsource = ");
            self.string(ENV_SOURCE);
            self.text.push_str("\ntarget = ");
            // A target is one plain file name inside the project (a path with `..` or a
            // leading `/` is an error); its text may hold any character but `/`.
            let target = format!("out-{}", self.segments(&env_file.target).replace('/', "_"));
            self.string(&target);
            self.text.push_str("\nset = { ");
            for (index, (key, value)) in env_file.set.iter().enumerate() {
                let value = self.segments(value);
                self.key(&format!("{key}_{index}"));
                self.string(&value);
                self.text.push_str(", ");
            }
            self.text.push_str("}\nservices = [");
            for service in &env_file.services {
                let name = self.service_name(service % services);
                self.string(&name);
                self.text.push_str(", ");
            }
            self.text.push_str("]\n");
        }

        WrittenConfig {
            text: self.text,
            error: error.map(|(message, mut accept)| {
                accept.extend(self.accept);
                (message, accept)
            }),
        }
    }

    /// Writes `[services.NAME]`; returns the error the mistake should cause, if it is here.
    fn write_service(
        &mut self,
        index: usize,
        fixed_ports: &mut Vec<u16>,
    ) -> Option<(&'static str, Vec<usize>)> {
        let spec = self.spec;
        let service = &spec.services[index];
        let mistake = spec
            .mistake
            .clone()
            .filter(|mistake| mistake_service(mistake, spec.services.len()) == Some(index));
        let mut error = None;

        self.text.push_str("[services.");
        let header = self.text.len();
        match &mistake {
            Some(Mistake::ServiceName { name, .. }) => {
                self.text.push_str(&basic_string(name, false));
                error = Some(("service name", vec![header]));
            }
            _ => self.text.push_str(&self.service_name(index)),
        }
        self.text.push_str("]\n");

        self.key("command");
        let value_start = self.text.len();
        let bad = self.mistake_in(index, Field::Command);
        match &service.command {
            CommandSpec::Line(words, separator) => {
                let mut line = self.line(words, separator);
                match bad {
                    Some((kind, prefix)) => {
                        line.push(' ');
                        line.push_str(&prefix.replace(['"', '\\'], ""));
                        line.push_str(kind.text());
                        self.bad_string(&line, value_start, kind.text());
                        error = Some((kind.message(), Vec::new()));
                    }
                    None => {
                        self.string(&line);
                    }
                }
            }
            CommandSpec::Argv(words) => {
                self.text.push('[');
                for word in words {
                    let word = self.segments(word);
                    self.string(&word);
                    self.text.push_str(", ");
                }
                if let Some((kind, prefix)) = bad {
                    self.bad_string(
                        &format!("{prefix}{}", kind.text()),
                        value_start,
                        kind.text(),
                    );
                    error = Some((kind.message(), Vec::new()));
                }
                self.text.push(']');
            }
        }
        self.text.push('\n');

        if service.shell {
            self.text.push_str("shell = true\n");
        }

        match &mistake {
            Some(Mistake::PortNumber { number, .. }) => {
                self.key("port");
                error = Some(("out of range", vec![self.text.len()]));
                self.text.push_str(&format!("{number}\n"));
            }
            Some(Mistake::PortWord { word, .. }) => {
                self.key("port");
                let start = self.string(word);
                self.text.push('\n');
                error = Some(("neither a number nor", vec![start]));
            }
            _ => self.write_ports(index, fixed_ports),
        }

        let names: Vec<String> = service
            .depends_on
            .iter()
            .filter(|_| index > 0)
            .map(|dependency| self.service_name(dependency % index))
            .collect();
        let extra_dependency = match &mistake {
            Some(Mistake::SelfDependency { .. }) => {
                Some((self.service_name(index), "depends on itself"))
            }
            Some(Mistake::UnknownDependency { .. }) => {
                Some(("nosuch".to_string(), "not a service"))
            }
            _ => None,
        };
        if !names.is_empty() || extra_dependency.is_some() {
            self.key("depends_on");
            self.text.push('[');
            for name in &names {
                self.string(name);
                self.text.push_str(", ");
            }
            if let Some((name, message)) = extra_dependency {
                let start = self.string(&name);
                error = Some((message, vec![start]));
            }
            self.text.push_str("]\n");
        }

        let restart = match &mistake {
            Some(Mistake::Restart { word, .. }) => Some(word.as_str()),
            _ => service.restart,
        };
        if let Some(restart) = restart {
            self.key("restart");
            let start = self.string(restart);
            self.text.push('\n');
            if let Some(Mistake::Restart { .. }) = mistake {
                error = Some(("unknown restart policy", vec![start]));
            }
        }

        let stop_grace = match &mistake {
            Some(Mistake::StopGrace { word, .. }) => Some(word.as_str()),
            _ => service.stop_grace,
        };
        if let Some(stop_grace) = stop_grace {
            self.key("stop_grace");
            let start = self.string(stop_grace);
            self.text.push('\n');
            if let Some(Mistake::StopGrace { .. }) = mistake {
                error = Some(("stop_grace", vec![start]));
            }
        }

        for (field, key, template) in [
            (Field::Cwd, "cwd", &service.cwd),
            (Field::EnvFile, "env_file", &service.env_file),
        ] {
            let bad = self.mistake_in(index, field);
            if template.is_none() && bad.is_none() {
                continue;
            }
            let mut value = template
                .as_ref()
                .map(|template| self.segments(template))
                .unwrap_or_default();
            // A `cwd` without templates must exist when loaded; under the instance's
            // data directory it is known only per instance.
            if field == Field::Cwd {
                value.insert_str(0, "{{ instance.data }}/");
            }
            self.key(key);
            let value_start = self.text.len();
            match bad {
                Some((kind, prefix)) => {
                    value.push_str(&prefix);
                    value.push_str(kind.text());
                    self.bad_string(&value, value_start, kind.text());
                    error = Some((kind.message(), Vec::new()));
                }
                None => {
                    self.string(&value);
                }
            }
            self.text.push('\n');
        }

        let bad_env = self.mistake_in(index, Field::Env);
        let bad_key = match &mistake {
            Some(Mistake::EnvKey { key, .. }) => Some(key.clone()),
            _ => None,
        };
        if !service.env.is_empty() || bad_env.is_some() || bad_key.is_some() {
            self.key("env");
            self.text.push_str("{ ");
            for (number, (key, value)) in service.env.iter().enumerate() {
                let value = self.segments(value);
                self.key(&format!("{key}_{number}"));
                self.string(&value);
                self.text.push_str(", ");
            }
            if let Some((kind, prefix)) = bad_env {
                self.key("ZZ_BAD");
                let value_start = self.text.len();
                self.bad_string(
                    &format!("{prefix}{}", kind.text()),
                    value_start,
                    kind.text(),
                );
                self.text.push_str(", ");
                error = Some((kind.message(), Vec::new()));
            }
            if let Some(key) = bad_key {
                error = Some((
                    "not a valid environment variable name",
                    vec![self.text.len()],
                ));
                self.text.push_str(&basic_string(&key, false));
                self.text.push_str(" = \"x\", ");
            }
            // No trailing comma here, one in `[[env_files]]` `set`: TOML 1.1 allows both.
            if self.text.ends_with(", ") {
                self.text.truncate(self.text.len() - 2);
            }
            self.text.push_str(" }\n");
        }

        let bad_setup = self.mistake_in(index, Field::Setup);
        if service.setup.is_some() || bad_setup.is_some() {
            let mut line = service
                .setup
                .as_ref()
                .map(|words| self.line(words, " "))
                .unwrap_or_default();
            self.key("setup");
            let value_start = self.text.len();
            match bad_setup {
                Some((kind, prefix)) => {
                    line.push(' ');
                    line.push_str(&prefix.replace(['"', '\\'], ""));
                    line.push_str(kind.text());
                    self.bad_string(&line, value_start, kind.text());
                    error = Some((kind.message(), Vec::new()));
                }
                None => {
                    self.string(&line);
                }
            }
            self.text.push('\n');
        }

        let has_ports = !self.port_names(index).is_empty()
            || matches!(
                mistake,
                Some(Mistake::PortNumber { .. } | Mistake::PortWord { .. })
            );
        let bad_ready = self.mistake_in(index, Field::ReadyExec);
        match (&service.ready, bad_ready) {
            (_, Some((kind, prefix))) => {
                self.key("ready");
                let table_start = self.text.len();
                self.text.push_str("{ exec = ");
                let mut line = match &service.ready {
                    ReadySpec::Exec(words) => self.line(words, " "),
                    _ => "check".to_string(),
                };
                line.push(' ');
                line.push_str(&prefix.replace(['"', '\\'], ""));
                line.push_str(kind.text());
                self.bad_string(&line, table_start, kind.text());
                self.text.push_str(" }\n");
                error = Some((kind.message(), Vec::new()));
            }
            (ReadySpec::Default, None) => {}
            (ReadySpec::Tcp, None) if has_ports => self.text.push_str("ready = { tcp = true }\n"),
            (ReadySpec::Http(path), None) if has_ports => {
                self.text.push_str("ready = { http = ");
                self.string(path);
                self.text.push_str(" }\n");
            }
            (ReadySpec::Tcp | ReadySpec::Http(_), None) => {}
            (ReadySpec::Log(pattern), None) => {
                self.text.push_str("ready = { log = ");
                self.string(pattern);
                self.text.push_str(" }\n");
            }
            (ReadySpec::Exec(words), None) => {
                let line = self.line(words, " ");
                self.text.push_str("ready = { exec = ");
                self.string(&line);
                self.text.push_str(" }\n");
            }
        }

        if let Some(Mistake::UnknownKey { key, .. }) = &mistake {
            error = Some(("unknown field", vec![self.text.len()]));
            self.text.push_str(&format!("{key} = 1\n"));
        }
        error
    }

    fn write_ports(&mut self, index: usize, fixed_ports: &mut Vec<u16>) {
        let number =
            |port: usize, offset: u16| 2000 + 10_000 * index as u16 + 1000 * port as u16 + offset;
        match &self.spec.services[index].ports {
            PortsSpec::None => {}
            PortsSpec::Single(PortSpec::Auto) => self.text.push_str("port = \"auto\"\n"),
            PortsSpec::Single(PortSpec::Fixed(offset)) => {
                let port = number(0, *offset);
                fixed_ports.push(port);
                self.text.push_str(&format!("port = {port}\n"));
            }
            PortsSpec::Named(ports) => {
                self.text.push_str("ports = { ");
                let entries: Vec<String> = ports
                    .iter()
                    .enumerate()
                    .map(|(position, (_, port))| {
                        let value = match port {
                            PortSpec::Auto => "\"auto\"".to_string(),
                            PortSpec::Fixed(offset) => {
                                let port = number(position, *offset);
                                fixed_ports.push(port);
                                port.to_string()
                            }
                        };
                        format!("{} = {value}", port_name(ports, position))
                    })
                    .collect();
                self.text.push_str(&entries.join(", "));
                self.text.push_str(" }\n");
            }
        }
    }
}

/// A named port's name, made distinct by its position.
fn port_name(ports: &[(String, PortSpec)], position: usize) -> String {
    format!("{}_{position}", ports[position].0)
}

/// The service a mistake is about, if it is about one.
fn mistake_service(mistake: &Mistake, services: usize) -> Option<usize> {
    match mistake {
        Mistake::UnknownKey { service, .. }
        | Mistake::PortNumber { service, .. }
        | Mistake::PortWord { service, .. }
        | Mistake::Restart { service, .. }
        | Mistake::StopGrace { service, .. }
        | Mistake::ServiceName { service, .. }
        | Mistake::Template { service, .. }
        | Mistake::SelfDependency { service }
        | Mistake::UnknownDependency { service }
        | Mistake::EnvKey { service, .. } => Some(service % services),
        Mistake::DuplicatePort
        | Mistake::Stride(_)
        | Mistake::ProjectName(_)
        | Mistake::ComposeWithoutFile => None,
    }
}

fn write_config(spec: &ConfigSpec) -> WrittenConfig {
    Writer {
        spec,
        text: String::new(),
        accept: Vec::new(),
    }
    .write()
}

/// A valid configuration loads; one with a mistake fails with the mistake's message.
fn check_generated_config(spec: ConfigSpec) -> Result<(), TestCaseError> {
    check_verdict(&spec, false)
}

/// An error points at the mistake: its placeholder, or the start of the value, key or
/// table holding it.
fn check_generated_location(spec: ConfigSpec) -> Result<(), TestCaseError> {
    check_verdict(&spec, true)
}

fn check_verdict(spec: &ConfigSpec, exact_location: bool) -> Result<(), TestCaseError> {
    let written = write_config(spec);
    let text = &written.text;
    let result = load_bytes(text.as_bytes())?;
    check_load_result(text, &result)?;
    match (&written.error, &result) {
        (None, Ok(_)) => {}
        (None, Err(error)) => {
            prop_assert!(false, "a valid configuration failed: {error}");
        }
        (Some((message, _)), Ok(_)) => {
            prop_assert!(false, "loaded despite the mistake ({message})");
        }
        (Some((expected, accept)), Err(error)) => {
            let message = error.to_string();
            prop_assert!(
                message.contains(expected),
                "expected an error about {expected:?}, got: {message}"
            );
            if exact_location
                && !accept.is_empty()
                && let Some(found) = location(&message)
            {
                let mut wanted: Vec<(usize, usize)> = accept
                    .iter()
                    .map(|offset| line_column(text, *offset))
                    .collect();
                wanted.sort();
                wanted.dedup();
                prop_assert!(
                    wanted.contains(&found),
                    "located at {found:?}, not at the mistake {wanted:?}: {message}"
                );
            }
        }
    }
    Ok(())
}

/// A valid generated configuration with a few blind edits: a deleted range, an
/// inserted token, a duplicated or swapped line.
fn edited_config() -> impl Strategy<Value = TomlText> {
    let edit = prop_oneof![
        (any::<prop::sample::Index>(), 1..8usize).prop_map(|(at, len)| Edit::Delete(at, len)),
        (any::<prop::sample::Index>(), select(TOML_TOKENS))
            .prop_map(|(at, token)| Edit::Insert(at, token)),
        any::<prop::sample::Index>().prop_map(Edit::DuplicateLine),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ];
    (config_spec(), prop::collection::vec(edit, 1..4)).prop_map(|(mut spec, edits)| {
        spec.mistake = None;
        let mut text = write_config(&spec).text;
        for edit in edits {
            text = edit.apply(&text);
        }
        TomlText(text)
    })
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(prop::sample::Index, usize),
    Insert(prop::sample::Index, &'static str),
    DuplicateLine(prop::sample::Index),
    SwapLines(prop::sample::Index, prop::sample::Index),
}

impl Edit {
    fn apply(&self, text: &str) -> String {
        let boundaries: Vec<usize> = text
            .char_indices()
            .map(|(index, _)| index)
            .chain([text.len()])
            .collect();
        let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
        match self {
            Edit::Delete(at, len) => {
                let start = at.index(boundaries.len());
                let end = boundaries[(start + len).min(boundaries.len() - 1)];
                format!("{}{}", &text[..boundaries[start]], &text[end..])
            }
            Edit::Insert(at, token) => {
                let at = boundaries[at.index(boundaries.len())];
                format!("{}{token}{}", &text[..at], &text[at..])
            }
            Edit::DuplicateLine(line) if !lines.is_empty() => {
                let line = line.index(lines.len());
                lines.insert(line, lines[line]);
                lines.concat()
            }
            Edit::SwapLines(a, b) if !lines.is_empty() => {
                let (a, b) = (a.index(lines.len()), b.index(lines.len()));
                lines.swap(a, b);
                lines.concat()
            }
            Edit::DuplicateLine(_) | Edit::SwapLines(..) => text.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Target: the template engine.
// ---------------------------------------------------------------------------------------

#[rustfmt::skip]
const TEMPLATE_TOKENS: &[&str] = &[
    "{{ port.api }}", "{{port.api.http}}", "{{ url.db }}", "{{ instance.root }}",
    "{{\tproject.name  }}", "{{ port..x }}",
    "{{", "}}", "{", "}", " ", "\t", "port", "url", "instance", "project", ".",
    "api", "db", "name", "index", "root", "data", "port_offset", "http", "'", "\"",
    "\\", "é", "日", "🦀", "\u{E000}", "\u{E001}", "0", "1", "#", "$", "x",
];

fn template_ish_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(select(TEMPLATE_TOKENS), 0..40).prop_map(|tokens| tokens.concat()),
        1 => any::<String>(),
    ]
}

/// Renders every variable as its own debug text, which no template source contains.
fn debug_value(var: &Var) -> String {
    format!("<{var:?}>")
}

/// Never a panic; placeholders and errors point at a `{{`; text without `{{` renders to
/// itself, and as a command splits as a POSIX shell would split it.
fn check_template_text(text: String) -> Result<(), TestCaseError> {
    match Template::parse(&text) {
        Ok(template) => {
            let rendered = template.render(&debug_value);
            if !text.contains("{{") {
                prop_assert_eq!(&rendered, &text);
            }
            for placeholder in template.placeholders() {
                prop_assert!(text[placeholder.offset..].starts_with("{{"));
            }
        }
        Err(error) => {
            prop_assert!(
                text.is_char_boundary(error.offset) && text[error.offset..].starts_with("{{"),
                "error offset {} is not at a `{{{{`: {}",
                error.offset,
                error.message
            );
        }
    }
    for shell in [false, true] {
        let Ok(command) = CommandTemplate::parse(&text, shell) else {
            continue;
        };
        let argv = command.render(&debug_value);
        if text.contains("{{") {
            continue;
        }
        if shell {
            prop_assert_eq!(argv, vec!["sh".to_string(), "-c".to_string(), text.clone()]);
        } else {
            prop_assert_eq!(Some(argv), shlex::split(&text));
        }
    }
    if !text.contains("{{") {
        let split = shlex::split(&text).filter(|words| !words.is_empty());
        prop_assert_eq!(
            CommandTemplate::parse(&text, false).is_ok(),
            split.is_some(),
            "a line without placeholders parses exactly when it splits into words"
        );
    }
    Ok(())
}

/// A placeholder's source text (with its spacing) and the variable it names.
fn placeholder() -> impl Strategy<Value = (String, Var)> {
    let name = "[a-z0-9_-]{1,6}";
    let var = prop_oneof![
        (any::<bool>(), name, prop::option::of(name)).prop_map(|(url, service, port)| {
            let kind = if url { "url" } else { "port" };
            let text = match &port {
                Some(port) => format!("{kind}.{service}.{port}"),
                None => format!("{kind}.{service}"),
            };
            let var = if url {
                Var::Url { service, port }
            } else {
                Var::Port { service, port }
            };
            (text, var)
        }),
        select(
            &[
                ("instance.name", Var::InstanceName),
                ("instance.index", Var::InstanceIndex),
                ("instance.root", Var::InstanceRoot),
                ("instance.data", Var::InstanceData),
                ("instance.port_offset", Var::InstancePortOffset),
                ("project.name", Var::ProjectName),
            ][..]
        )
        .prop_map(|(text, var)| (text.to_string(), var)),
    ];
    (var, spacing())
        .prop_map(|((text, var), (left, right))| (format!("{{{{{left}{text}{right}}}}}"), var))
}

/// Text that cannot open a placeholder, whatever follows it.
fn literal_text(text: String) -> String {
    let mut text = text;
    while text.contains("{{") {
        text = text.replace("{{", "{x{");
    }
    if text.ends_with('{') {
        text.push('x');
    }
    text
}

/// Literal text, or a placeholder's source and the variable it names.
#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Placeholder(String, Var),
}

/// Pieces of a template and the values its variables render to.
#[derive(Debug, Clone)]
struct TemplateCase {
    pieces: Vec<Piece>,
    values: Vec<String>,
}

fn template_case() -> impl Strategy<Value = TemplateCase> {
    let piece = prop_oneof![
        prop_oneof![any::<String>(), "[{}a-z. ]{0,8}"]
            .prop_map(|text| Piece::Text(literal_text(text))),
        placeholder().prop_map(|(text, var)| Piece::Placeholder(text, var)),
    ];
    (
        prop::collection::vec(piece, 0..8),
        prop::collection::vec(any::<String>(), 1..4),
    )
        .prop_map(|(pieces, values)| TemplateCase { pieces, values })
}

/// One of the generated values, chosen by the variable.
fn value_of(var: &Var, values: &[String]) -> String {
    values[(name_seed(&format!("{var:?}")) % values.len() as u64) as usize].clone()
}

fn check_generated_template(case: TemplateCase) -> Result<(), TestCaseError> {
    let source: String = case
        .pieces
        .iter()
        .map(|piece| match piece {
            Piece::Text(text) | Piece::Placeholder(text, _) => text.as_str(),
        })
        .collect();
    let expected: String = case
        .pieces
        .iter()
        .map(|piece| match piece {
            Piece::Text(text) => text.clone(),
            Piece::Placeholder(_, var) => value_of(var, &case.values),
        })
        .collect();
    let template = Template::parse(&source)
        .map_err(|error| TestCaseError::fail(format!("{source:?}: {}", error.message)))?;
    let values = |var: &Var| value_of(var, &case.values);
    prop_assert_eq!(template.render(&values), expected);
    let vars: Vec<&Var> = template
        .placeholders()
        .map(|placeholder| &placeholder.var)
        .collect();
    let generated: Vec<&Var> = case
        .pieces
        .iter()
        .filter_map(|piece| match piece {
            Piece::Placeholder(_, var) => Some(var),
            Piece::Text(_) => None,
        })
        .collect();
    prop_assert_eq!(vars, generated);
    Ok(())
}

/// A command of words built from safe text and placeholders, and the values to render.
#[derive(Debug, Clone)]
struct CommandCase {
    words: Vec<Vec<Piece>>,
    separators: Vec<&'static str>,
    values: Vec<String>,
}

impl CommandCase {
    fn line(&self) -> String {
        let mut line = String::new();
        for (index, word) in self.words.iter().enumerate() {
            if index > 0 {
                line.push_str(self.separators[index % self.separators.len()]);
            }
            for segment in word {
                match segment {
                    Piece::Text(text) | Piece::Placeholder(text, _) => {
                        line.push_str(text);
                    }
                }
            }
        }
        line
    }

    /// The argv: each word with its placeholders replaced by their values.
    fn expected(&self) -> Vec<String> {
        self.words
            .iter()
            .map(|word| {
                word.iter()
                    .map(|segment| match segment {
                        Piece::Text(text) => text.clone(),
                        Piece::Placeholder(_, var) => value_of(var, &self.values),
                    })
                    .collect()
            })
            .collect()
    }
}

fn command_case() -> impl Strategy<Value = CommandCase> {
    let text = prop_oneof![
        8 => "[a-zA-Z0-9_./=:@%+,é日-]{1,6}",
        // Private-use characters: the engine marks placeholders with U+E000 and U+E001.
        1 => "[\u{E000}\u{E001}0]{1,4}",
    ];
    let segment = prop_oneof![
        text.prop_map(Piece::Text),
        placeholder().prop_map(|(text, var)| Piece::Placeholder(text, var)),
    ];
    // No value holds a NUL: no shell can take one, and no path or port contains one.
    let value = prop_oneof![any::<String>(), "[ -~\t\n'\"\\\\$`;&|é]{0,12}"]
        .prop_map(|value| value.replace('\0', ""));
    (
        prop::collection::vec(prop::collection::vec(segment, 1..4), 1..5),
        prop::collection::vec(select(&[" ", "\t", "  ", " \t "][..]), 1..3),
        prop::collection::vec(value, 1..4),
    )
        .prop_map(|(words, separators, values)| CommandCase {
            words,
            separators,
            values,
        })
}

/// Without `shell`, every word renders with its values substituted, spaces and quotes
/// in a value never splitting it.
fn check_argv_command(case: CommandCase) -> Result<(), TestCaseError> {
    let line = case.line();
    let command = CommandTemplate::parse(&line, false)
        .map_err(|error| TestCaseError::fail(format!("{line:?}: {}", error.message)))?;
    let values = |var: &Var| value_of(var, &case.values);
    prop_assert_eq!(command.render(&values), case.expected(), "line {:?}", line);
    Ok(())
}

/// With `shell`, the rendered line is one `sh -c` argument in which every value is
/// quoted: split as a shell would, it gives the same words as the argv form.
fn check_shell_command(case: CommandCase) -> Result<(), TestCaseError> {
    let line = case.line();
    let command = CommandTemplate::parse(&line, true)
        .map_err(|error| TestCaseError::fail(format!("{line:?}: {}", error.message)))?;
    let values = |var: &Var| value_of(var, &case.values);
    let argv = command.render(&values);
    prop_assert_eq!(argv.len(), 3);
    prop_assert_eq!(&argv[..2], &["sh".to_string(), "-c".to_string()]);
    prop_assert_eq!(
        shlex::split(&argv[2]),
        Some(case.expected()),
        "line {:?} rendered as {:?}",
        line,
        argv[2]
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Target: the dotenv editor.
// ---------------------------------------------------------------------------------------

#[rustfmt::skip]
const DOTENV_TOKENS: &[&str] = &[
    "A", "KEY", "export", "export ", " ", "\t", "=", "#", " #", "'", "\"", "\\",
    "\\n", "\\\"", "\n", "\r\n", "\r", "localhost:5432", "127.0.0.1:80",
    "LOCALHOST:", "$X", "`", "é", "日", "\u{feff}", "_", ".", "-", "1", "x y",
    "\u{0}",
];

const DOTENV_KEYS: &[&str] = &["A", "KEY", "export", "DATABASE_URL", "b.c-d", "_x"];

fn dotenv_ish_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::collection::vec(select(DOTENV_TOKENS), 0..40).prop_map(|tokens| tokens.concat()),
        2 => dotenv_file(),
        1 => any::<String>(),
    ]
}

/// Value text with loopback `host:port` fragments among filler.
fn dotenv_value(filler: &'static str) -> impl Strategy<Value = String> {
    let host = select(
        &[
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "mylocalhost",
            "127.0.0.10",
        ][..],
    );
    let fragment = prop_oneof![
        filler,
        (host, port_digits(), "[/a-z0-9]{0,2}")
            .prop_map(|(host, port, after)| format!("{host}:{port}{after}")),
    ];
    prop::collection::vec(fragment, 0..4).prop_map(|fragments| fragments.concat())
}

/// Mostly real port numbers, sometimes none, too many digits or leading zeros.
fn port_digits() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (1..=65535u16).prop_map(|port| port.to_string()),
        1 => "[0-9]{0,6}",
    ]
}

/// A dotenv line as people write them, sometimes broken.
fn dotenv_line() -> impl Strategy<Value = String> {
    let blank = || select(&["", "", " ", "\t"][..]);
    let assignment = (
        blank(),
        select(&["", "", "export ", "export\t"][..]),
        select(DOTENV_KEYS),
        blank(),
        blank(),
        prop_oneof![
            dotenv_value("[a-zA-Z0-9_./:@,+=%-]{0,6}"),
            dotenv_value("[a-z $#\"\\\\\n日]{0,6}")
                .prop_map(|value| format!("'{}'", value.replace('\'', ""))),
            (dotenv_value("[a-z $#'\\\\\n\r日]{0,6}"), any::<bool>()).prop_map(
                |(value, escape_newlines)| {
                    let mut escaped = String::from("\"");
                    for c in value.chars() {
                        match c {
                            '\\' | '"' | '$' | '`' => {
                                escaped.push('\\');
                                escaped.push(c);
                            }
                            '\n' if escape_newlines => escaped.push_str("\\n"),
                            '\r' => escaped.push_str("\\r"),
                            c => escaped.push(c),
                        }
                    }
                    escaped.push('"');
                    escaped
                }
            ),
        ],
        prop::option::of("[ \t]{1,2}#[ a-z#=\"']{0,6}"),
    )
        .prop_map(|(indent, export, key, before, after, value, comment)| {
            format!(
                "{indent}{export}{key}{before}={after}{value}{}",
                comment.unwrap_or_default()
            )
        });
    prop_oneof![
        1 => Just(String::new()),
        1 => "[ \t]{0,2}#[ -~é]{0,10}",
        1 => (select(DOTENV_KEYS), prop::option::of("[ \t]{1,2}#[a-z ]{0,4}"))
            .prop_map(|(key, comment)| format!("{key}{}", comment.unwrap_or_default())),
        5 => assignment,
        1 => prop::collection::vec(select(DOTENV_TOKENS), 0..8).prop_map(|tokens| tokens.concat()),
    ]
}

fn dotenv_file() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((dotenv_line(), select(&["\n", "\n", "\r\n"][..])), 0..8),
        any::<bool>(),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(lines, last_ending, byte_order_mark)| {
            let mut text = if byte_order_mark {
                "\u{feff}".to_string()
            } else {
                String::new()
            };
            let count = lines.len();
            for (index, (line, ending)) in lines.into_iter().enumerate() {
                text.push_str(&line);
                if index + 1 < count || last_ending {
                    text.push_str(ending);
                }
            }
            text
        })
}

/// Whatever parses renders back byte for byte, and parses back to the same document.
fn check_dotenv_round_trip(text: String) -> Result<(), TestCaseError> {
    let Ok(document) = dotenv::parse(&text) else {
        return Ok(());
    };
    let rendered = document.render();
    prop_assert_eq!(&rendered, &text);
    prop_assert_eq!(dotenv::parse(&rendered).ok(), Some(document));
    Ok(())
}

fn upsert_case() -> impl Strategy<Value = (String, String, String)> {
    (
        dotenv_file(),
        prop_oneof![
            select(DOTENV_KEYS).prop_map(str::to_string),
            "[A-Za-z_][A-Za-z0-9_.-]{0,6}"
        ],
        prop_oneof![any::<String>(), "[ -~\t\r\n'\"\\\\$`#é]{0,12}"],
    )
}

/// `upsert(key, value)` makes `get(key)` the value, leaves every other key alone, and
/// renders text that parses back to the same document.
fn check_upsert((text, key, value): (String, String, String)) -> Result<(), TestCaseError> {
    prop_assert!(dotenv::is_valid_key(&key));
    let Ok(document) = dotenv::parse(&text) else {
        return Ok(());
    };
    let mut updated = document.clone();
    updated.upsert(&key, &value);
    prop_assert_eq!(updated.get(&key), Some(value.clone()));
    let mut keys = document.keys();
    if !keys.contains(&key) {
        keys.push(key.clone());
    }
    prop_assert_eq!(updated.keys(), keys);
    for other in document.keys().iter().filter(|other| **other != key) {
        prop_assert_eq!(updated.get(other), document.get(other), "key {}", other);
    }
    let rendered = updated.render();
    let reparsed = dotenv::parse(&rendered)
        .map_err(|error| TestCaseError::fail(format!("{rendered:?} does not parse: {error}")))?;
    prop_assert_eq!(reparsed.get(&key), Some(value));
    prop_assert_eq!(reparsed.render(), rendered.clone());
    prop_assert_eq!(&reparsed, &updated, "rendered {:?}", rendered);
    Ok(())
}

/// Rewrites a port when `port % modulus == remainder`, to `port + shift` (never 0).
#[derive(Debug, Clone, Copy)]
struct PortMap {
    modulus: u16,
    remainder: u16,
    shift: u16,
}

impl PortMap {
    fn map(self, port: u16) -> Option<u16> {
        (port % self.modulus == self.remainder % self.modulus)
            .then(|| port.wrapping_add(self.shift).max(1))
    }
}

fn rewrite_case() -> impl Strategy<Value = (String, PortMap)> {
    (
        dotenv_file(),
        (1..4u16, 0..4u16, any::<u16>()).prop_map(|(modulus, remainder, shift)| PortMap {
            modulus,
            remainder,
            shift,
        }),
    )
}

/// Each run of digits as one NUL: the text but for its numbers.
fn skeleton(text: &str) -> String {
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

/// `rewrite_ports` changes nothing but port digits, only in values that name a loopback
/// host, and leaves a document that parses back to itself.
fn check_rewrite_ports((text, map): (String, PortMap)) -> Result<(), TestCaseError> {
    let Ok(document) = dotenv::parse(&text) else {
        return Ok(());
    };
    let mut rewritten = document.clone();
    let count = rewritten.rewrite_ports(&|port| map.map(port));
    let after = rewritten.render();
    prop_assert_eq!(skeleton(&after), skeleton(&text), "after {:?}", after);
    prop_assert_eq!(rewritten.keys(), document.keys());
    let loopbacks = |value: &str| {
        let lower = value.to_ascii_lowercase();
        lower.matches("localhost:").count() + lower.matches("127.0.0.1:").count()
    };
    let mut possible = 0;
    for key in document.keys() {
        let before = document.get(&key).unwrap_or_default();
        possible += loopbacks(&before);
        if loopbacks(&before) == 0 {
            prop_assert_eq!(rewritten.get(&key), document.get(&key), "key {}", key);
        }
    }
    // Duplicated keys hide earlier values from `get`, so this bound counts every line.
    let every_line = loopbacks(&text);
    prop_assert!(count <= every_line.max(possible), "{count} rewrites");
    if count == 0 {
        prop_assert_eq!(&after, &text);
    }
    let reparsed = dotenv::parse(&after)
        .map_err(|error| TestCaseError::fail(format!("{after:?} does not parse: {error}")))?;
    prop_assert_eq!(&reparsed, &rewritten);

    // Mapping every port to itself changes nothing, but for leading zeros (`:080`).
    if !text.contains(":0") {
        let mut same = document.clone();
        same.rewrite_ports(&Some);
        prop_assert_eq!(same.render(), text, "mapping every port to itself");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Target: the Compose port parser.
// ---------------------------------------------------------------------------------------

#[rustfmt::skip]
const PORT_TOKENS: &[&str] = &[
    "127.0.0.1", "0.0.0.0", "[::1]", "::1", "::", ":", ":", "-", "/", "tcp", "UDP",
    "sctp", "icmp", "0", "1", "80", "8080", "65535", "65536", "99999999999", " ",
    "[", "]", "a", ".", "9000-9002", "é", "+1",
];

const PORT_KEYS: &[&str] = &[
    "target",
    "published",
    "protocol",
    "host_ip",
    "mode",
    "name",
    "app_protocol",
    "x",
];

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0..70_000i64).prop_map(Value::from),
        any::<f64>().prop_map(|number| Number::from_f64(number).map_or(Value::Null, Value::Number)),
        port_token_soup().prop_map(Value::String),
        any::<String>().prop_map(Value::String),
    ]
}

fn port_token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(select(PORT_TOKENS), 0..8).prop_map(|tokens| tokens.concat())
}

fn arbitrary_entry() -> impl Strategy<Value = Value> {
    let map = prop::collection::vec((select(PORT_KEYS), json_leaf()), 0..7).prop_map(|entries| {
        Value::Object(
            entries
                .into_iter()
                .map(|(key, value)| (key.to_string(), value))
                .collect(),
        )
    });
    prop_oneof![
        3 => port_token_soup().prop_map(Value::String),
        1 => any::<String>().prop_map(Value::String),
        3 => map,
        1 => json_leaf().prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((select(PORT_KEYS), inner), 0..4).prop_map(|entries| {
                    Value::Object(entries.into_iter().map(|(key, value)| (key.to_string(), value)).collect())
                }),
            ]
        }),
    ]
}

/// What holds for every parsed entry: one mapping per port of a range, all alike.
fn check_mappings(mappings: &[PortMapping]) -> Result<(), TestCaseError> {
    prop_assert!(!mappings.is_empty());
    let first = &mappings[0];
    for (step, mapping) in mappings.iter().enumerate() {
        prop_assert!(mapping.target > 0);
        prop_assert_eq!(
            usize::from(mapping.target),
            usize::from(first.target) + step
        );
        match (first.published, mapping.published) {
            (None, None) => {}
            (Some(low), Some(published)) => {
                prop_assert!(published > 0);
                prop_assert_eq!(usize::from(published), usize::from(low) + step);
            }
            (low, published) => prop_assert!(false, "published {low:?} then {published:?}"),
        }
        prop_assert!(["tcp", "udp", "sctp"].contains(&mapping.protocol.as_str()));
        prop_assert_eq!(&mapping.protocol, &first.protocol);
        prop_assert_eq!(&mapping.extra, &first.extra);
    }
    Ok(())
}

fn check_any_entry(entry: Value) -> Result<(), TestCaseError> {
    if let Ok(mappings) = parse_entry(&entry) {
        check_mappings(&mappings)?;
        if !entry.is_object() {
            prop_assert!(mappings[0].extra.is_empty());
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum HostIp {
    V4(Ipv4Addr),
    Bracketed(Ipv6Addr),
    /// As Compose v1's `config` prints it; only written with a host port.
    Unbracketed(Ipv6Addr),
}

/// `[ip:][host[-host2]:]container[-container2][/protocol]`.
#[derive(Debug, Clone)]
struct ShortSpec {
    ip: Option<HostIp>,
    host: Option<u16>,
    container: u16,
    /// Ports beyond the first in both ranges.
    extra_ports: u16,
    /// Write a single port `host-host` rather than `host`.
    degenerate_range: bool,
    protocol: Option<String>,
    /// Write a lone container port as a YAML number.
    as_number: bool,
}

fn protocol_as_written() -> impl Strategy<Value = String> {
    (select(&["tcp", "udp", "sctp"][..]), any::<u8>()).prop_map(|(protocol, case)| {
        protocol
            .chars()
            .enumerate()
            .map(|(index, c)| {
                if case >> index & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    })
}

fn short_spec() -> impl Strategy<Value = ShortSpec> {
    let ip = prop_oneof![
        any::<Ipv4Addr>().prop_map(HostIp::V4),
        any::<Ipv6Addr>().prop_map(HostIp::Bracketed),
        any::<Ipv6Addr>().prop_map(HostIp::Unbracketed),
    ];
    (
        prop::option::of(ip),
        prop::option::of(1..=65535u16),
        1..=65535u16,
        0..5u16,
        any::<bool>(),
        prop::option::of(protocol_as_written()),
        any::<bool>(),
    )
        .prop_map(
            |(ip, host, container, extra_ports, degenerate_range, protocol, as_number)| {
                let room = |port: u16| 65535 - port;
                let extra_ports = extra_ports
                    .min(room(container))
                    .min(host.map_or(u16::MAX, room));
                let ip = match (ip, host) {
                    (Some(HostIp::Unbracketed(ip)), None) => Some(HostIp::Bracketed(ip)),
                    (ip, _) => ip,
                };
                ShortSpec {
                    ip,
                    host,
                    container,
                    extra_ports,
                    degenerate_range,
                    protocol,
                    as_number,
                }
            },
        )
}

impl ShortSpec {
    fn range(&self, low: u16) -> String {
        if self.extra_ports > 0 || self.degenerate_range {
            format!("{low}-{}", low + self.extra_ports)
        } else {
            low.to_string()
        }
    }

    fn entry(&self) -> Value {
        if self.as_number
            && self.ip.is_none()
            && self.host.is_none()
            && self.extra_ports == 0
            && self.protocol.is_none()
        {
            return Value::from(self.container);
        }
        let mut text = String::new();
        match &self.ip {
            Some(HostIp::V4(ip)) => text.push_str(&format!("{ip}:")),
            Some(HostIp::Bracketed(ip)) => text.push_str(&format!("[{ip}]:")),
            Some(HostIp::Unbracketed(ip)) => text.push_str(&format!("{ip}:")),
            None => {}
        }
        match self.host {
            Some(host) => text.push_str(&format!("{}:", self.range(host))),
            None if self.ip.is_some() => text.push(':'),
            None => {}
        }
        text.push_str(&self.range(self.container));
        if let Some(protocol) = &self.protocol {
            text.push_str(&format!("/{protocol}"));
        }
        Value::String(text)
    }

    fn expected(&self) -> Vec<(Option<u16>, u16, String)> {
        let protocol = self
            .protocol
            .as_deref()
            .unwrap_or("tcp")
            .to_ascii_lowercase();
        (0..=self.extra_ports)
            .map(|step| {
                (
                    self.host.map(|host| host + step),
                    self.container + step,
                    protocol.clone(),
                )
            })
            .collect()
    }
}

fn brief(mappings: &[PortMapping]) -> Vec<(Option<u16>, u16, String)> {
    mappings
        .iter()
        .map(|mapping| (mapping.published, mapping.target, mapping.protocol.clone()))
        .collect()
}

fn check_short_syntax(spec: ShortSpec) -> Result<(), TestCaseError> {
    let entry = spec.entry();
    let mappings =
        parse_entry(&entry).map_err(|error| TestCaseError::fail(format!("{entry}: {error}")))?;
    prop_assert_eq!(brief(&mappings), spec.expected(), "entry {}", entry);
    prop_assert!(mappings.iter().all(|mapping| mapping.extra.is_empty()));
    Ok(())
}

/// A long-syntax entry: which keys it has and how each is written.
#[derive(Debug, Clone)]
struct LongSpec {
    target: u16,
    extra_ports: u16,
    target_as_number: bool,
    /// 0: absent, 1: null, 2: "", 3: a number, 4: a string (a range when ports > 1).
    published: (u8, u16),
    protocol: Option<Option<String>>,
    host_ip: Option<Option<String>>,
    mode: Option<Value>,
    name: Option<String>,
    app_protocol: Option<String>,
    /// Rotates the keys, as tools print them in different orders.
    rotation: usize,
}

fn long_spec() -> impl Strategy<Value = LongSpec> {
    let ip = prop_oneof![
        any::<Ipv4Addr>().prop_map(|ip| ip.to_string()),
        any::<Ipv6Addr>().prop_map(|ip| ip.to_string()),
        any::<Ipv6Addr>().prop_map(|ip| format!("[{ip}]")),
    ];
    (
        (1..=65535u16, 0..4u16, any::<bool>()),
        (0..5u8, 1..=65535u16),
        prop::option::of(prop::option::of(protocol_as_written())),
        prop::option::of(prop::option::of(ip)),
        prop::option::of(prop_oneof![
            Just(Value::from("ingress")),
            Just(Value::from("host")),
            Just(Value::Null),
            Just(Value::from(1)),
        ]),
        prop::option::of("[a-z]{0,6}"),
        prop::option::of("[a-z0-9]{1,6}"),
        0..8usize,
    )
        .prop_map(
            |(
                (target, extra_ports, target_as_number),
                published,
                protocol,
                host_ip,
                mode,
                name,
                app_protocol,
                rotation,
            )| {
                let extra_ports = extra_ports.min(65535 - target).min(65535 - published.1);
                LongSpec {
                    target,
                    extra_ports,
                    target_as_number: target_as_number && extra_ports == 0,
                    published,
                    protocol,
                    host_ip,
                    mode,
                    name,
                    app_protocol,
                    rotation,
                }
            },
        )
}

impl LongSpec {
    fn range(low: u16, extra: u16) -> String {
        if extra == 0 {
            low.to_string()
        } else {
            format!("{low}-{}", low + extra)
        }
    }

    fn entry(&self) -> Value {
        let mut entries: Vec<(&str, Value)> = Vec::new();
        entries.push((
            "target",
            if self.target_as_number {
                Value::from(self.target)
            } else {
                Value::from(Self::range(self.target, self.extra_ports))
            },
        ));
        let (kind, host) = self.published;
        match kind {
            1 => entries.push(("published", Value::Null)),
            2 => entries.push(("published", Value::from(""))),
            3 if self.extra_ports == 0 => entries.push(("published", Value::from(host))),
            3 | 4 => entries.push((
                "published",
                Value::from(Self::range(host, self.extra_ports)),
            )),
            _ => {}
        }
        if let Some(protocol) = &self.protocol {
            entries.push((
                "protocol",
                protocol.clone().map_or(Value::Null, Value::from),
            ));
        }
        if let Some(ip) = &self.host_ip {
            entries.push(("host_ip", ip.clone().map_or(Value::Null, Value::from)));
        }
        if let Some(mode) = &self.mode {
            entries.push(("mode", mode.clone()));
        }
        if let Some(name) = &self.name {
            entries.push(("name", Value::from(name.clone())));
        }
        if let Some(app_protocol) = &self.app_protocol {
            entries.push(("app_protocol", Value::from(app_protocol.clone())));
        }
        let rotation = self.rotation % entries.len();
        entries.rotate_left(rotation);
        Value::Object(
            entries
                .into_iter()
                .map(|(key, value)| (key.to_string(), value))
                .collect(),
        )
    }

    fn published(&self) -> Option<u16> {
        matches!(self.published.0, 3 | 4).then_some(self.published.1)
    }

    fn expected(&self) -> Vec<(Option<u16>, u16, String)> {
        let protocol = self
            .protocol
            .clone()
            .flatten()
            .unwrap_or_else(|| "tcp".to_string())
            .to_ascii_lowercase();
        (0..=self.extra_ports)
            .map(|step| {
                (
                    self.published().map(|host| host + step),
                    self.target + step,
                    protocol.clone(),
                )
            })
            .collect()
    }

    fn extra(&self) -> Map<String, Value> {
        let entry = self.entry();
        entry
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(key, _)| matches!(key.as_str(), "name" | "app_protocol"))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }
}

fn check_long_syntax(spec: LongSpec) -> Result<(), TestCaseError> {
    let entry = spec.entry();
    let mappings =
        parse_entry(&entry).map_err(|error| TestCaseError::fail(format!("{entry}: {error}")))?;
    prop_assert_eq!(brief(&mappings), spec.expected(), "entry {}", entry);
    let extra = spec.extra();
    for mapping in &mappings {
        prop_assert_eq!(&mapping.extra, &extra, "entry {}", entry);
    }
    Ok(())
}

fn render_case() -> impl Strategy<Value = (Value, IpAddr, u16)> {
    (
        prop_oneof![
            short_spec().prop_map(|spec| spec.entry()),
            long_spec().prop_map(|spec| spec.entry()),
        ],
        any::<IpAddr>(),
        1..=65535u16,
    )
}

/// A mapping rendered with the planned host port parses back to the same container
/// port and protocol, published on that port, keeping its long-syntax keys.
fn check_render_reparse((entry, bind, port): (Value, IpAddr, u16)) -> Result<(), TestCaseError> {
    let mappings =
        parse_entry(&entry).map_err(|error| TestCaseError::fail(format!("{entry}: {error}")))?;
    for mapping in &mappings {
        let rendered = mapping.render(bind, port);
        prop_assert_eq!(
            rendered.is_string(),
            mapping.extra.is_empty(),
            "{}",
            rendered
        );
        let reparsed = parse_entry(&rendered)
            .map_err(|error| TestCaseError::fail(format!("rendered {rendered}: {error}")))?;
        prop_assert_eq!(reparsed.len(), 1, "{}", rendered);
        prop_assert_eq!(reparsed[0].published, Some(port));
        prop_assert_eq!(reparsed[0].target, mapping.target);
        prop_assert_eq!(&reparsed[0].protocol, &mapping.protocol);
        prop_assert_eq!(&reparsed[0].extra, &mapping.extra);
    }
    Ok(())
}
