//! `berth doctor`: what berth needs, checked; exit 1 when a check failed.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::instance;
use crate::output::{Printer, Table};

pub fn run(context: &Context, printer: &Printer) -> Result<()> {
    let checks = instance::doctor(context)?;
    printer.data(&checks, |checks| {
        let mut table = Table::new(vec!["CHECK", "STATUS", "DETAIL"]);
        for check in checks {
            table.row(vec![
                check.check.clone(),
                check.status.to_string(),
                check.detail.clone(),
            ]);
        }
        table.render()
    })?;
    let failed = checks.iter().filter(|check| check.status == "fail").count();
    if failed > 0 {
        return Err(Error::failed(
            format!("{failed} check(s) failed"),
            Some("the DETAIL column says what is wrong".to_string()),
        ));
    }
    Ok(())
}
