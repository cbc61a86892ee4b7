//! `berth rm [--yes]`: remove the instance, after asking on a terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use crate::cleanup;
use crate::cli::RmArgs;
use crate::context::Context;
use crate::error::Result;
use crate::instance;
use crate::output::Printer;

pub fn run(context: &Context, printer: &Printer, args: &RmArgs) -> Result<()> {
    let ask = !args.yes && std::io::stdin().is_terminal();
    let confirm = |name: &str, root: &Path| if ask { confirm(name, root) } else { Ok(true) };
    let removed = instance::rm(context, &confirm, printer)?;
    if printer.json() {
        printer.json_value(&removed)?;
    } else {
        let summary = cleanup::summary(&removed.removed);
        printer.result(&format!("removed `{}`: {summary}", removed.name));
    }
    Ok(())
}

fn confirm(name: &str, root: &Path) -> Result<bool> {
    eprint!(
        "remove instance `{name}` of `{}`: its processes, containers, volumes, state and port leases? [y/N] ",
        root.display()
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
