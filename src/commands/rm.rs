//! `berth rm [--yes] [--worktree [--force]] [--all]`: remove the instance (with its git
//! worktree, or every instance of the project), after asking on a terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::cleanup;
use crate::cli::RmArgs;
use crate::context::Context;
use crate::error::Result;
use crate::instance::{self, RemovedInstance};
use crate::output::Printer;

pub fn run(context: &Context, printer: &Printer, args: &RmArgs) -> Result<()> {
    let ask = !args.yes && std::io::stdin().is_terminal();
    if args.all {
        let confirm = |listed: &[(String, PathBuf)]| match ask {
            true => confirm_all(listed),
            false => Ok(true),
        };
        let removed = instance::rm::rm_all(context, &confirm, printer)?;
        if printer.json() {
            return Ok(printer.json_value(&removed)?);
        }
        for one in &removed {
            printer.result(&describe(one));
        }
        return Ok(());
    }
    let what = match args.worktree {
        true => ", and its git worktree",
        false => "",
    };
    let confirm = |name: &str, root: &Path| match ask {
        true => confirm(name, root, what),
        false => Ok(true),
    };
    if args.worktree {
        let removed = instance::worktree::rm_worktree(context, args.force, &confirm, printer)?;
        if printer.json() {
            return Ok(printer.json_value(&removed)?);
        }
        if let Some(instance) = &removed.instance {
            printer.result(&describe(instance));
        }
        let branch = removed
            .branch
            .map(|branch| format!("; branch `{branch}` kept"))
            .unwrap_or_default();
        printer.result(&format!(
            "removed worktree `{}`{branch}",
            removed.worktree.display()
        ));
        return Ok(());
    }
    let removed = instance::rm(context, &confirm, printer)?;
    match printer.json() {
        true => printer.json_value(&removed)?,
        false => printer.result(&describe(&removed)),
    }
    Ok(())
}

fn describe(removed: &RemovedInstance) -> String {
    let summary = cleanup::summary(&removed.removed);
    format!("removed `{}`: {summary}", removed.name)
}

fn confirm(name: &str, root: &Path, what: &str) -> Result<bool> {
    eprint!(
        "remove instance `{name}` of `{}`: its processes, containers, volumes, state and port leases{what}? [y/N] ",
        root.display()
    );
    answer()
}

fn confirm_all(listed: &[(String, PathBuf)]) -> Result<bool> {
    eprintln!(
        "remove these instances: their processes, containers, volumes, state and port leases?"
    );
    for (name, root) in listed {
        eprintln!("  {name}  {}", root.display());
    }
    eprint!("[y/N] ");
    answer()
}

fn answer() -> Result<bool> {
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
