//! Reserving an instance's name and index in the ledger: two racing `up`s never take
//! the same name or index, and never a name a foreign Compose project uses.

use std::collections::BTreeSet;
use std::path::Path;

use super::Progress;
use crate::config::Config;
use crate::context::{Context, Selector};
use crate::error::{Error, Result};
use crate::identity::{default_name_candidates, lowest_free_index};
use crate::ledger::{LedgerData, LedgerEntry};
use crate::model::Identity;

/// Finds or records the instance's name and index under the ledger lock, so two racing
/// `up`s never take the same name or index.
pub(super) fn reserve_identity(
    context: &Context,
    config: &Config,
    foreign: &BTreeSet<String>,
    progress: &dyn Progress,
) -> Result<Identity> {
    let mut ledger = context.ledger.lock()?;
    let data = ledger.data();
    let here: Vec<&LedgerEntry> = data.at_root(&config.root).collect();
    let existing = match &context.selector {
        Selector::Name(name) => match data.find(name) {
            Some(entry) if entry.root == config.root => Some(entry.clone()),
            Some(entry) => {
                return Err(Error::usage(
                    format!(
                        "the instance name `{name}` belongs to `{}`",
                        entry.root.display()
                    ),
                    Some("choose another --name".to_string()),
                ));
            }
            None => None,
        },
        Selector::Index(index) => {
            if let Some(entry) = data
                .instances
                .iter()
                .find(|entry| entry.project == config.project && entry.index == *index)
            {
                if entry.root != config.root {
                    return Err(Error::usage(
                        format!(
                            "index {index} of project `{}` is held by `{}` at `{}`",
                            config.project,
                            entry.name,
                            entry.root.display()
                        ),
                        Some(
                            "pick another --instance, or omit it to get the lowest free index"
                                .to_string(),
                        ),
                    ));
                }
                Some(entry.clone())
            } else {
                None
            }
        }
        Selector::Only => match here.as_slice() {
            [] => None,
            [entry] => Some((*entry).clone()),
            several => {
                let names: Vec<&str> = several.iter().map(|entry| entry.name.as_str()).collect();
                return Err(Error::usage(
                    format!(
                        "`{}` has several instances: {}",
                        config.root.display(),
                        names.join(", ")
                    ),
                    Some("pick one with --name NAME or --instance N".to_string()),
                ));
            }
        },
    };
    if let Some(entry) = existing {
        if foreign.contains(&entry.name) {
            return Err(Error::usage(
                format!(
                    "a Compose project named `{}` that berth did not start now exists on the Docker engine",
                    entry.name
                ),
                Some(format!(
                    "berth never touches it: stop it (`docker compose -p {} down`), or `berth rm` this instance and `berth up` again to get another name",
                    entry.name
                )),
            ));
        }
        return Ok(Identity {
            name: entry.name,
            index: entry.index,
        });
    }
    let index = match context.selector {
        Selector::Index(index) => index,
        _ => lowest_free_index(data.indexes_in_use(&config.project)),
    };
    let name = match &context.selector {
        Selector::Name(name) if foreign.contains(name) => {
            return Err(Error::usage(
                format!(
                    "a Compose project named `{name}` already exists on the Docker engine and is not this instance's"
                ),
                Some(
                    "choose another --name; berth never takes over a project it did not create"
                        .to_string(),
                ),
            ));
        }
        Selector::Name(name) => name.clone(),
        _ => {
            let name = new_name(data, &config.root, !here.is_empty(), index, foreign);
            let first = default_name_candidates(&config.root);
            if let Some(taken) = first.first().filter(|first| foreign.contains(*first)) {
                progress.note(&format!(
                    "a Compose project named `{taken}` that is not berth's exists on the engine; this instance is `{name}`"
                ));
            }
            name
        }
    };
    ledger.upsert(LedgerEntry {
        name: name.clone(),
        project: config.project.clone(),
        root: config.root.clone(),
        index,
        port_offset: 0,
        leases: Vec::new(),
        created_at: super::up::now(),
        started_at: None,
        git: None,
        shared: false,
        users: Vec::new(),
        env_files: Vec::new(),
    });
    ledger.save()?;
    Ok(Identity { name, index })
}

fn new_name(
    data: &LedgerData,
    root: &Path,
    root_has_instances: bool,
    index: u32,
    foreign: &BTreeSet<String>,
) -> String {
    let mut candidates = default_name_candidates(root);
    if root_has_instances {
        // A second instance of the same root (`--instance N`): suffix the index.
        candidates = candidates
            .into_iter()
            .map(|name| format!("{name}-{index}"))
            .collect();
    }
    let free = |name: &String| data.find(name).is_none() && !foreign.contains(name);
    candidates
        .iter()
        .find(|name| free(name))
        .cloned()
        .unwrap_or_else(|| {
            // Every candidate is taken (only possible with hand-made names): count upwards.
            let base = candidates
                .last()
                .cloned()
                .unwrap_or_else(|| "instance".to_string());
            (2..)
                .map(|number| format!("{base}-{number}"))
                .find(|name| free(name))
                .unwrap_or(base)
        })
}
