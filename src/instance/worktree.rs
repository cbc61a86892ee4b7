//! `new` and `rm --worktree`: an instance together with the git worktree it runs in.
//! `new` makes the worktree beside the main one, brings over the ignored files the
//! project lists, runs its setup once and brings the instance up; `rm --worktree` removes
//! the instance, then the worktree, and never a worktree with uncommitted work unless
//! forced. The branch always stays.

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;

use super::rm::{Confirm, RemovedInstance, rm};
use super::{Progress, StatusView, UpOptions, db, up};
use crate::context::{Context, Selector};
use crate::error::{Error, Result};
use crate::identity::validate_name;
use crate::worktree::{self, Brought, Checkout};

/// What `new` is asked to do.
#[derive(Debug, Clone)]
pub struct NewOptions {
    /// The instance's name, and the new branch's unless `branch` is given.
    pub name: String,
    /// Check out this branch (an existing one, or a new one from `HEAD`).
    pub branch: Option<String>,
    /// Seed the instance: an instance or snapshot of the project, or a database dump.
    pub from: Option<String>,
    /// Bring the instance up (`--no-up` does not).
    pub up: bool,
    /// How long `up` waits for the services to be ready.
    pub timeout: Duration,
}

/// What `new` made.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Created {
    pub name: String,
    /// The new worktree's top directory.
    pub worktree: PathBuf,
    pub branch: String,
    /// Whether `new` created the branch (else it checked out an existing one).
    pub new_branch: bool,
    /// What came over from the main work tree.
    pub brought: Brought,
    /// The instance as `up` left it; `null` with `--no-up`.
    pub instance: Option<StatusView>,
    /// The database dump loaded into it (`--from FILE`).
    pub restored: Option<PathBuf>,
}

/// Where `--from` points: data `up` copies, or a dump loaded once the instance runs.
enum Seed {
    Data(String),
    Dump(PathBuf),
}

/// Creates the worktree `options.name` and its instance.
pub fn new(context: &Context, options: &NewOptions, progress: &dyn Progress) -> Result<Created> {
    let name = &options.name;
    validate_name(name).map_err(|message| {
        Error::usage(
            message,
            Some("names are lowercase slugs such as `feature-auth`".to_string()),
        )
    })?;
    let root = context.project_root()?;
    let (config, _) = crate::compose::load_project(&root)?;
    let main = crate::git::main_worktree(&root).ok_or_else(|| {
        Error::usage(
            format!("`{}` is not in a git work tree", root.display()),
            Some(
                "`berth new` makes git worktrees; run it in a clone (`git init` makes one)"
                    .to_string(),
            ),
        )
    })?;
    // berth.toml may live below the top of the work tree: the same place in the new one.
    let top = work_tree_top(&root)?;
    let inside = root
        .strip_prefix(&top)
        .unwrap_or(Path::new(""))
        .to_path_buf();
    let dir = worktree::directory(&config.worktree.dir, &main, name);
    if dir.symlink_metadata().is_ok() {
        return Err(Error::usage(
            format!("`{}` already exists", dir.display()),
            Some("choose another name, or set `[worktree] dir` in berth.toml".to_string()),
        ));
    }
    if let Some(entry) = context.ledger.read()?.find(name) {
        return Err(Error::usage(
            format!(
                "the instance name `{name}` belongs to `{}`",
                entry.root.display()
            ),
            Some("choose another name".to_string()),
        ));
    }
    let seed = options
        .from
        .as_deref()
        .map(|text| seed(context, &config, text))
        .transpose()?;
    let checkout = checkout(&main, name, options.branch.as_deref())?;

    worktree::add(&main, &dir, &checkout)?;
    let new_root = dir.join(&inside);
    let prepared = worktree::bring_over(
        &main.join(&inside),
        &new_root,
        &config.worktree.copy,
        &config.worktree.link,
    )
    .and_then(|brought| worktree::run_setup(&new_root, &config.worktree.setup).map(|()| brought));
    let brought = match prepared {
        Ok(brought) => brought,
        Err(error) => {
            undo(&main, &dir, &checkout, progress);
            return Err(error);
        }
    };
    for skipped in &brought.skipped {
        progress.note(&format!("[worktree]: skipped {skipped}"));
    }
    let mut created = Created {
        name: name.clone(),
        worktree: dir.clone(),
        branch: checkout.branch().to_string(),
        new_branch: matches!(checkout, Checkout::NewBranch(_)),
        brought,
        instance: None,
        restored: None,
    };
    let there = context.at(&new_root, Some(name), None)?;
    if !options.up {
        // The name is the worktree's from now on: a later `up` there starts `name`.
        if let Err(error) = up::reserve_only(&there, progress) {
            undo(&main, &dir, &checkout, progress);
            return Err(error);
        }
        return Ok(created);
    }
    let up_options = UpOptions {
        from: match &seed {
            Some(Seed::Data(text)) => Some(text.clone()),
            _ => None,
        },
        timeout: options.timeout,
        ..UpOptions::plain(Vec::new())
    };
    let kept = |error: Error| {
        progress.warning(&format!(
            "the worktree `{}` stays: fix what failed and run `berth up` there, or `berth rm --worktree` it",
            dir.display()
        ));
        error
    };
    created.instance = Some(up::up(&there, &up_options, progress).map_err(kept)?);
    if let Some(Seed::Dump(path)) = seed {
        db::restore(&there, None, &path, progress).map_err(kept)?;
        created.restored = Some(path);
    }
    Ok(created)
}

/// `--from`: a file is a database dump; anything else names an instance or snapshot,
/// which `up` checks before it reserves anything.
fn seed(context: &Context, config: &crate::config::Config, text: &str) -> Result<Seed> {
    // A file, or the name of a dump in the project's store (`berth db dumps`).
    let stored = (!text.contains('/')).then(|| db::dump_store(context, &config.project).join(text));
    let path = std::iter::once(context.cwd.join(text))
        .chain(stored)
        .find(|path| path.is_file());
    let Some(path) = path else {
        return Ok(Seed::Data(text.to_string()));
    };
    if config.databases.is_empty() {
        return Err(Error::usage(
            format!(
                "`{text}` is a file, and `{}` declares no database to load it into",
                config.path.display()
            ),
            Some(
                "add `database = \"postgres\"` to the service, or pass an instance or snapshot"
                    .to_string(),
            ),
        ));
    }
    Ok(Seed::Dump(std::fs::canonicalize(&path)?))
}

/// The branch to check out: `--branch` as it exists, or new; else a new branch `name`.
fn checkout(main: &Path, name: &str, branch: Option<&str>) -> Result<Checkout> {
    let wanted = branch.unwrap_or(name);
    if !worktree::valid_branch_name(main, wanted)? {
        return Err(Error::usage(
            format!("`{wanted}` is not a valid git branch name"),
            Some("pass another with --branch".to_string()),
        ));
    }
    let exists = worktree::branch_exists(main, wanted)?;
    match (branch, exists) {
        (Some(branch), true) => Ok(Checkout::Existing(branch.to_string())),
        (_, false) => Ok(Checkout::NewBranch(wanted.to_string())),
        (None, true) => Err(Error::usage(
            format!("a branch named `{name}` already exists"),
            Some(format!(
                "`berth new {name} --branch {name}` checks it out; or choose another name"
            )),
        )),
    }
}

/// Removes what a failed `new` made: the worktree and the branch it created.
fn undo(main: &Path, dir: &Path, checkout: &Checkout, progress: &dyn Progress) {
    let undone = worktree::remove(main, dir).and_then(|()| match checkout {
        Checkout::NewBranch(branch) => worktree::delete_branch(main, branch),
        Checkout::Existing(_) => Ok(()),
    });
    if let Err(error) = undone {
        progress.warning(&format!(
            "could not remove the worktree `{}` again: {error}",
            dir.display()
        ));
    }
}

/// The top of the git work tree holding `root`.
fn work_tree_top(root: &Path) -> Result<PathBuf> {
    root.ancestors()
        .find(|dir| dir.join(".git").exists())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            Error::usage(
                format!("`{}` is not in a git work tree", root.display()),
                None,
            )
        })
}

/// What `rm --worktree` removed.
#[derive(Debug, Serialize)]
pub struct RemovedWorktree {
    /// The instance, when the worktree had one.
    pub instance: Option<RemovedInstance>,
    pub worktree: PathBuf,
    /// The branch it was on; it stays.
    pub branch: Option<String>,
}

/// Removes the selected instance (if the worktree has one) and then its git worktree.
/// A worktree with uncommitted changes or untracked files is refused before anything is
/// removed, unless `force`.
pub fn rm_worktree(
    context: &Context,
    force: bool,
    confirm: Confirm,
    progress: &dyn Progress,
) -> Result<RemovedWorktree> {
    let selected = match super::select(context, progress) {
        Ok(selected) => Some(selected),
        Err(_)
            if context.selector == Selector::Only
                && context
                    .ledger
                    .read()?
                    .at_root(&context.project_root()?)
                    .next()
                    .is_none() =>
        {
            None
        }
        Err(error) => return Err(error),
    };
    let root = match &selected {
        Some(selected) => selected.entry.root.clone(),
        None => context.project_root()?,
    };
    let top = work_tree_top(&root)?;
    let main = crate::git::main_worktree(&root).filter(|_| crate::git::is_linked_worktree(&root));
    let Some(main) = main else {
        return Err(Error::usage(
            format!("`{}` is not a linked git worktree", top.display()),
            Some(
                "--worktree removes worktrees made by `berth new` or `git worktree add`, never the main one; `berth rm` removes the instance alone"
                    .to_string(),
            ),
        ));
    };
    if !force {
        let ours = brought_patterns(&root, &top);
        let dirty = worktree::dirty(&top, &ours)?;
        if !dirty.is_empty() {
            let shown: Vec<&str> = dirty.iter().take(10).map(String::as_str).collect();
            let more = dirty.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            return Err(Error::usage(
                format!(
                    "`{}` has uncommitted changes: {}{more}",
                    top.display(),
                    shown.join(", ")
                ),
                Some("commit or stash them, or pass --force to remove the worktree anyway (its branch stays)".to_string()),
            ));
        }
    }
    let branch = crate::git::head(&top).and_then(|head| head.branch);
    let instance = match selected {
        Some(_) => Some(rm(context, confirm, progress)?),
        None if !confirm(&top.file_name().unwrap_or_default().to_string_lossy(), &top)? => {
            return Err(Error::usage(
                format!("kept `{}`", top.display()),
                Some("pass --yes to remove without asking".to_string()),
            ));
        }
        None => None,
    };
    worktree::remove(&main, &top)?;
    Ok(RemovedWorktree {
        instance,
        worktree: top,
        branch,
    })
}

/// The `[worktree] copy` and `link` patterns, relative to the worktree's top: what berth
/// brought over is not the user's uncommitted work.
fn brought_patterns(root: &Path, top: &Path) -> Vec<String> {
    let Ok((config, _)) = crate::compose::load_project(root) else {
        return Vec::new();
    };
    let inside = root.strip_prefix(top).unwrap_or(Path::new(""));
    config
        .worktree
        .copy
        .iter()
        .chain(&config.worktree.link)
        .map(|pattern| inside.join(pattern).to_string_lossy().into_owned())
        .collect()
}
