//! `berth status`: this instance's services, states, ports, PIDs and restarts.

use crate::context::Context;
use crate::error::Result;
use crate::output::{self, StatusView};

pub fn run(context: &Context) -> Result<()> {
    let selected = context.select()?;
    let file = selected.started()?;
    output::emit(
        context.json,
        &StatusView::from_file(file),
        StatusView::render,
    )
}
