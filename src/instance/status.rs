//! `status`: the instance's services, states, ports, PIDs or containers, restarts;
//! compose services checked live with one engine query.

use super::select;
use super::{Progress, StatusView};
use crate::compose::{ComposeError, LABEL_INSTANCE, LABEL_ROOT};
use crate::context::Context;
use crate::docker::Engine;
use crate::error::Result;

/// The selected instance as it is now.
pub fn status(context: &Context, progress: &dyn Progress) -> Result<StatusView> {
    let selected = select(context, progress)?;
    let file = selected.started()?;
    let mut view = StatusView::from_file(file)
        .with_router(crate::router::state::address(context.ledger.dir()));
    if file.compose.is_some() {
        let engine = Engine::from_env().map_err(ComposeError::from)?;
        let root = file.root.display().to_string();
        let containers = engine
            .containers(&[(LABEL_INSTANCE, &file.name), (LABEL_ROOT, &root)], true)
            .map_err(ComposeError::from)?;
        view = view.with_containers(&containers);
    }
    Ok(view)
}
