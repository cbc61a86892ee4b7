//! `berth db dump|restore|shell`: the database's own client tools against the instance.

use crate::cli::{DbArgs, DbCommand};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::instance::db::{self, DbReport};
use crate::output::{Printer, views};

pub fn run(context: &Context, printer: &Printer, args: &DbArgs) -> Result<()> {
    let service = args.service.as_deref();
    // A relative FILE is relative to `-C DIR`, as if berth had started there.
    let report = match &args.command {
        DbCommand::Dump { file: Some(path) } if path.as_os_str() == "-" => {
            return Error::exited(db::dump_to_stdout(context, service, printer)?);
        }
        DbCommand::Dump { file: None } => db::dump_to_store(context, service, printer)?,
        DbCommand::Dumps => {
            let dumps = db::dumps(context, printer)?;
            return Ok(printer.data(&dumps, |dumps| views::dumps(dumps))?);
        }
        DbCommand::Shell { args } => {
            let mut command = db::shell_command(context, service, printer)?;
            command.args(args);
            crate::external::die_with_berth(&mut command);
            let status = command
                .status()
                .map_err(|error| db::missing_tool("psql", error))?;
            return Error::exited(status);
        }
        DbCommand::Dump { file: Some(path) } => {
            db::dump(context, service, &context.cwd.join(path), printer)?
        }
        DbCommand::Restore { file: path } => {
            db::restore(context, service, &context.cwd.join(path), printer)?
        }
    };
    if printer.json() {
        return Ok(printer.json_value(&report)?);
    }
    printer.result(&describe(&report));
    Ok(())
}

fn describe(report: &DbReport) -> String {
    let (verb, preposition) = if report.action == "dump" {
        ("dumped", "to")
    } else {
        ("restored", "from")
    };
    format!(
        "{verb} the database of `{}` {preposition} `{}`",
        report.service,
        report.file.display()
    )
}
