//! Env-file targets: the only files berth writes in the work tree outside `.berth/`, so
//! each must be one berth created, never an env file's source, the configuration, a
//! Compose file or any other file of the user's.

use std::path::{Path, PathBuf};

use super::Config;
use crate::beneath::{Beneath, BeneathError, FileId, Found};

/// The start of the first line of every env file berth writes. A file that does not start
/// with it is not berth's, whatever any record says.
pub const GENERATED_HEADER: &str = "# Written by berth";

const BYTE_ORDER_MARK: &str = "\u{feff}";

/// A file a target may never be, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    pub id: FileId,
    pub what: String,
}

/// Why a target cannot be written, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetProblem {
    pub message: String,
    pub hint: String,
}

/// The files of the project no target may be: every env file's source, berth.toml and
/// the Compose files.
pub fn protected_files(config: &Config) -> Vec<Protected> {
    let relative = |path: &Path| {
        path.strip_prefix(&config.root)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let mut files: Vec<(PathBuf, String)> = config
        .env_files
        .iter()
        .map(|file| {
            let what = format!("the source of an env file (`{}`)", relative(&file.source));
            (file.source.clone(), what)
        })
        .collect();
    files.push((config.path.clone(), "the configuration file".to_string()));
    for file in config
        .compose
        .iter()
        .flat_map(|compose| &compose.settings.files)
    {
        files.push((
            file.clone(),
            format!("a Compose file (`{}`)", relative(file)),
        ));
    }
    files
        .into_iter()
        .filter_map(|(path, what)| {
            Some(Protected {
                id: FileId::of(&path)?,
                what,
            })
        })
        .collect()
}

/// The canonical form of a target for records: the root joined with its components.
pub fn target_path(root: &Path, target: &Path) -> Option<PathBuf> {
    Beneath::new(root, target)
        .ok()
        .map(|beneath| beneath.path())
}

/// Whether berth may write `target` (absolute, or relative to `root`): a plain path inside
/// the root reached without a symlink, not a protected file, and either missing or a file
/// berth wrote. `recorded` holds the targets the ledger says berth wrote at this root;
/// `None` when not known (while loading, a file with berth's header passes until `up`
/// checks the record).
pub fn check_target(
    root: &Path,
    target: &Path,
    protected: &[Protected],
    recorded: Option<&[PathBuf]>,
) -> Result<(), TargetProblem> {
    let beneath = Beneath::new(root, target).map_err(|error| walk_problem(root, target, error))?;
    let path = beneath.path();
    let shown = path
        .strip_prefix(root)
        .unwrap_or(&path)
        .display()
        .to_string();
    let problem = |error| walk_problem(root, &path, error);
    let Found::File(id) = beneath.find().map_err(problem)? else {
        return Ok(());
    };
    if let Some(protected) = protected.iter().find(|protected| protected.id == id) {
        return Err(TargetProblem {
            message: format!("env file target `{shown}` is {}", protected.what),
            hint: "give `target` a path of its own, such as \".env.berth\": berth writes its copy there and never edits the source".to_string(),
        });
    }
    let written_by_berth = written_by_berth(&beneath).map_err(problem)?;
    match recorded {
        _ if !written_by_berth => Err(TargetProblem {
            message: format!("env file target `{shown}` already exists and berth did not write it"),
            hint: format!(
                "berth never overwrites a file of yours: move `{shown}` away, or give `target` a path that does not exist yet, such as \".env.berth\""
            ),
        }),
        Some(recorded) if !recorded.contains(&path) => Err(TargetProblem {
            message: format!(
                "env file target `{shown}` already exists, and this berth (its BERTH_HOME) has no record of writing it"
            ),
            hint: format!(
                "delete `{shown}` if it is a copy an earlier berth wrote, or give `target` another path"
            ),
        }),
        _ => Ok(()),
    }
}

/// Whether the file starts with berth's header line (after a byte order mark, which a
/// copy of a source that has one keeps); `false` when there is no file.
pub fn written_by_berth(beneath: &Beneath) -> Result<bool, BeneathError> {
    let head = beneath
        .read_head(BYTE_ORDER_MARK.len() + GENERATED_HEADER.len())?
        .unwrap_or_default();
    let head = head
        .strip_prefix(BYTE_ORDER_MARK.as_bytes())
        .unwrap_or(&head);
    Ok(head.starts_with(GENERATED_HEADER.as_bytes()))
}

fn walk_problem(root: &Path, target: &Path, error: BeneathError) -> TargetProblem {
    let shown = |path: &Path| {
        path.strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let target = shown(target);
    let (message, hint) = match &error {
        BeneathError::Outside { .. } => (
            format!("env file target `{target}` is not a file inside the project"),
            "give `target` a relative path inside the project, such as \".env.local\"",
        ),
        BeneathError::Symlink { path } if shown(path) == target => (
            format!(
                "env file target `{target}` is a symlink, and berth follows none in a path it writes"
            ),
            "remove the symlink, or give `target` another path",
        ),
        BeneathError::Symlink { path } => (
            format!(
                "env file target `{target}` is under the symlink `{}`, and berth follows none in a path it writes",
                shown(path)
            ),
            "give `target` a path without a symlink",
        ),
        BeneathError::NotADirectory { path } => (
            format!(
                "env file target `{target}`: `{}` is not a directory",
                shown(path)
            ),
            "give `target` a path where berth can create a file of its own",
        ),
        BeneathError::NotRegular { kind, .. } => (
            format!("env file target `{target}` is {kind}, not a regular file"),
            "give `target` a path where berth can create a file of its own",
        ),
        BeneathError::Io { error, .. } => (
            format!("env file target `{target}`: {error}"),
            "check the permissions of the project directory",
        ),
    };
    TargetProblem {
        message,
        hint: hint.to_string(),
    }
}
