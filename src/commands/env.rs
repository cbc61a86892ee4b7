//! `berth env`: the instance's variables as dotenv, shell (safe to eval) or JSON.

use crate::cli::{EnvArgs, EnvFormat};
use crate::context::Context;
use crate::error::Result;
use crate::instance;
use crate::output::{Printer, env};

pub fn run(context: &Context, printer: &Printer, args: &EnvArgs) -> Result<()> {
    let variables = instance::env(context, args.service.as_deref(), printer)?;
    let format = if printer.json() {
        EnvFormat::Json
    } else {
        args.format
    };
    match format {
        EnvFormat::Json => printer.json_value(&variables)?,
        EnvFormat::Dotenv => printer.text(&env::dotenv(&variables))?,
        EnvFormat::Shell => printer.text(&env::shell(&variables))?,
    }
    Ok(())
}
