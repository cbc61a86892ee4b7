//! Compose projects on the engine that are not berth's instance at this root: a name one
//! of them uses is taken, so that berth never adopts, stops or removes what someone else
//! runs with `docker compose -p NAME`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{ComposeError, LABEL_ROOT};
use crate::docker::Engine;

/// The label Compose (v1 and v2) puts on every object of a project.
const COMPOSE_PROJECT: &str = "com.docker.compose.project";

/// Names of the Compose projects that have containers, networks or volumes on the engine
/// not labelled as belonging to an instance at `root`.
pub fn foreign_projects(engine: &Engine, root: &Path) -> Result<BTreeSet<String>, ComposeError> {
    let root = root.display().to_string();
    let containers = engine.containers(&[], true)?;
    let networks = engine.networks(&[])?;
    let volumes = engine.volumes(&[])?;
    let labels = containers
        .iter()
        .map(|container| &container.labels)
        .chain(networks.iter().map(|network| &network.labels))
        .chain(volumes.iter().map(|volume| &volume.labels));
    Ok(labels
        .filter_map(|labels| foreign_project(labels, &root))
        .collect())
}

/// The object's project name, when it has one and is not this root's.
fn foreign_project(labels: &BTreeMap<String, String>, root: &str) -> Option<String> {
    let project = labels.get(COMPOSE_PROJECT)?;
    (labels.get(LABEL_ROOT).map(String::as_str) != Some(root)).then(|| project.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn a_project_is_foreign_unless_labelled_with_this_root() {
        let theirs = labels(&[(COMPOSE_PROJECT, "p2")]);
        assert_eq!(foreign_project(&theirs, "/w/p2"), Some("p2".to_string()));
        let ours = labels(&[(COMPOSE_PROJECT, "p2"), (LABEL_ROOT, "/w/p2")]);
        assert_eq!(foreign_project(&ours, "/w/p2"), None);
        let other_root = labels(&[(COMPOSE_PROJECT, "p2"), (LABEL_ROOT, "/x/p2")]);
        assert_eq!(
            foreign_project(&other_root, "/w/p2"),
            Some("p2".to_string())
        );
        assert_eq!(foreign_project(&labels(&[]), "/w/p2"), None);
    }
}
