//! `berth new NAME`: a git worktree beside the main one, with its instance up.

use std::time::Duration;

use crate::cli::NewArgs;
use crate::context::Context;
use crate::error::Result;
use crate::instance::worktree::{self, Created, NewOptions};
use crate::output::{Printer, views};

pub fn run(context: &Context, printer: &Printer, args: &NewArgs) -> Result<()> {
    let options = NewOptions {
        name: args.name.clone(),
        branch: args.branch.clone(),
        from: args.from.clone(),
        up: !args.no_up,
        timeout: Duration::from_secs(args.timeout),
    };
    let created = worktree::new(context, &options, printer)?;
    if printer.json() {
        return Ok(printer.json_value(&created)?);
    }
    printer.result(&describe(&created));
    if let Some(instance) = &created.instance {
        printer.data(instance, views::status)?;
    }
    Ok(())
}

fn describe(created: &Created) -> String {
    let branch = match created.new_branch {
        true => format!("new branch `{}`", created.branch),
        false => format!("branch `{}`", created.branch),
    };
    let mut brought = Vec::new();
    if !created.brought.copied.is_empty() {
        brought.push(format!("copied {}", created.brought.copied.join(", ")));
    }
    if !created.brought.linked.is_empty() {
        brought.push(format!("linked {}", created.brought.linked.join(", ")));
    }
    if let Some(dump) = &created.restored {
        brought.push(format!("loaded `{}`", dump.display()));
    }
    let brought = match brought.is_empty() {
        true => String::new(),
        false => format!("; {}", brought.join("; ")),
    };
    format!(
        "created worktree `{}` on {branch}{brought}",
        created.worktree.display()
    )
}
