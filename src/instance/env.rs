//! `env`: the instance's variables, or a process service's environment.

use std::collections::BTreeMap;

use super::{Progress, select};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::state::InstanceFile;

/// The instance's variables, or with `service` what that process service runs with.
pub fn env(
    context: &Context,
    service: Option<&str>,
    progress: &dyn Progress,
) -> Result<BTreeMap<String, String>> {
    let selected = select(context, progress)?;
    match service {
        None => Ok(selected.started()?.env.clone()),
        Some(service) => {
            let file = selected.started_with(&[service.to_string()])?;
            service_environment(file, service)
        }
    }
}

/// What berth gives a process service on top of what it inherits, and the `PATH` it
/// inherits: the same as [`super::exec`] runs commands with.
pub fn service_environment(file: &InstanceFile, service: &str) -> Result<BTreeMap<String, String>> {
    let Some(spec) = file.services[service].process() else {
        return Err(Error::usage(
            format!("`{service}` is a compose service; its environment is its container's"),
            Some(format!("`berth exec {service} -- env` prints it")),
        ));
    };
    let mut variables: BTreeMap<String, String> = BTreeMap::new();
    if let Some(path) = &file.path {
        variables.insert("PATH".to_string(), path.clone());
    }
    variables.extend(
        spec.env
            .iter()
            .map(|(key, value)| (key.clone(), value.clone())),
    );
    Ok(variables)
}
