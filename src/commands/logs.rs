//! `berth logs`: service logs prefixed with the service name; `-f` merges them live.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::cli::LogsArgs;
use crate::context::Context;
use crate::error::Result;
use crate::lifecycle::{self, tail_lines};
use crate::output;
use crate::state::{FileLock, InstanceFile};

pub fn run(context: &Context, args: &LogsArgs) -> Result<()> {
    let selected = context.select()?;
    let file = selected.started_with(&args.services)?;
    let logs = chosen_logs(file, &args.services);
    let width = logs.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut stdout = std::io::stdout().lock();
    for (name, path) in &logs {
        for line in tail_lines(path, args.lines) {
            writeln!(stdout, "{name:<width$} | {line}")?;
        }
    }
    drop(stdout);
    if args.follow {
        follow(&logs, &AtomicBool::new(false))?;
    }
    Ok(())
}

fn chosen_logs(file: &InstanceFile, services: &[String]) -> Vec<(String, PathBuf)> {
    file.services
        .iter()
        .filter(|(name, _)| services.is_empty() || services.contains(name))
        .map(|(name, record)| (name.clone(), record.log().to_path_buf()))
        .collect()
}

/// Prints lines appended to any of the logs, as they arrive, until `stop` is set.
fn follow(logs: &[(String, PathBuf)], stop: &AtomicBool) -> Result<()> {
    let width = logs.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut offsets: Vec<u64> = logs
        .iter()
        .map(|(_, path)| std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0))
        .collect();
    let mut partial: Vec<String> = vec![String::new(); logs.len()];
    while !stop.load(Ordering::Relaxed) {
        let mut stdout = std::io::stdout().lock();
        for (index, (name, path)) in logs.iter().enumerate() {
            let Ok(mut file) = std::fs::File::open(path) else {
                continue;
            };
            let length = file.metadata().map(|meta| meta.len()).unwrap_or(0);
            if length < offsets[index] {
                offsets[index] = 0;
            }
            if length == offsets[index] || file.seek(SeekFrom::Start(offsets[index])).is_err() {
                continue;
            }
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            offsets[index] += bytes.len() as u64;
            partial[index].push_str(&String::from_utf8_lossy(&bytes));
            while let Some(end) = partial[index].find('\n') {
                let line: String = partial[index].drain(..=end).collect();
                if writeln!(stdout, "{name:<width$} | {}", line.trim_end_matches('\n')).is_err() {
                    // stdout closed (piped into `head`): following is over.
                    return Ok(());
                }
            }
        }
        let _ = stdout.flush();
        drop(stdout);
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A flag set by SIGINT or SIGTERM (instead of the default of dying at once).
pub fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&flag))?;
    }
    Ok(flag)
}

/// `up --attach`: follow every log in the foreground until `stop` is set (Ctrl-C),
/// then bring the instance down.
pub fn attach(context: &Context, file: &InstanceFile, stop: &AtomicBool) -> Result<()> {
    output::note("attached; press Ctrl-C to stop the instance");
    follow(&chosen_logs(file, &[]), stop)?;
    let paths = file.paths();
    let _operation = FileLock::acquire(
        &context.ledger.operation_lock(&file.name)?,
        context.lock_timeout,
    )?;
    lifecycle::stop(&paths)?;
    let mut ledger = context.ledger.lock()?;
    if let Some(entry) = ledger.data.find_mut(&file.name) {
        entry.started_at = None;
        ledger.save()?;
    }
    output::note(&format!("stopped `{}`", file.name));
    Ok(())
}
