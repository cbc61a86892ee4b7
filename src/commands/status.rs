//! `berth status`: this instance's services, states, ports, PIDs and restarts.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::output::{self, StatusView};

pub fn run(context: &Context) -> Result<()> {
    let selected = context.select()?;
    let Some(file) = &selected.file else {
        return Err(Error::usage(
            format!("`{}` has never been started", selected.entry.name),
            Some("run `berth up`".to_string()),
        ));
    };
    output::emit(
        context.json,
        &StatusView::from_file(file),
        StatusView::render,
    )
}
