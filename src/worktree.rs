//! Git worktrees for `berth new` and `rm --worktree`: made, inspected and removed by git
//! itself, and the ignored files a new worktree needs brought over from the main work
//! tree (copied, or symlinked when they are heavy and shared).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::external::{Call, CallKind, ExternalError, Finished};

/// Which branch a new worktree checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkout {
    /// A new branch of that name, from `HEAD` of the main work tree.
    NewBranch(String),
    /// A branch that already exists.
    Existing(String),
}

impl Checkout {
    pub fn branch(&self) -> &str {
        match self {
            Checkout::NewBranch(branch) | Checkout::Existing(branch) => branch,
        }
    }
}

/// Runs `git -C dir ARGS…` to its exit, output captured.
fn git(dir: &Path, args: &[&str]) -> Result<Finished> {
    let mut command = Command::new("git");
    command.arg("-C").arg(dir).args(args);
    let display = format!("git {}", args.join(" "));
    Call::new(command, display, CallKind::Git)
        .run()
        .map_err(external)
}

/// Runs git and fails with what it printed when it exits non-zero.
fn git_checked(dir: &Path, args: &[&str]) -> Result<Finished> {
    let finished = git(dir, args)?;
    if !finished.status.success() {
        return Err(Error::failed(
            format!(
                "`git {}` failed in `{}`: {}",
                args.join(" "),
                dir.display(),
                String::from_utf8_lossy(&finished.stderr).trim()
            ),
            None,
        ));
    }
    Ok(finished)
}

fn external(error: ExternalError) -> Error {
    let hint = error.hint();
    Error::failed(error.to_string(), hint)
}

/// Whether the repository of `main` has a local branch `name`.
pub fn branch_exists(main: &Path, name: &str) -> Result<bool> {
    let reference = format!("refs/heads/{name}");
    let finished = git(main, &["rev-parse", "--verify", "--quiet", &reference])?;
    Ok(finished.status.success())
}

/// Whether `name` is a branch name git accepts.
pub fn valid_branch_name(main: &Path, name: &str) -> Result<bool> {
    let finished = git(main, &["check-ref-format", "--branch", name])?;
    Ok(finished.status.success())
}

/// `git worktree add`: `dir` checked out on `checkout`.
pub fn add(main: &Path, dir: &Path, checkout: &Checkout) -> Result<()> {
    let dir = dir.to_string_lossy();
    match checkout {
        Checkout::NewBranch(branch) => {
            git_checked(main, &["worktree", "add", "-b", branch, &dir, "HEAD"])?
        }
        Checkout::Existing(branch) => git_checked(main, &["worktree", "add", &dir, branch])?,
    };
    Ok(())
}

/// `git worktree remove --force` of `dir`: the caller decided it may go (see [`dirty`]).
pub fn remove(main: &Path, dir: &Path) -> Result<()> {
    git_checked(
        main,
        &["worktree", "remove", "--force", &dir.to_string_lossy()],
    )?;
    Ok(())
}

/// Deletes the branch a failed `berth new` created (it has no commits of its own).
pub fn delete_branch(main: &Path, branch: &str) -> Result<()> {
    git_checked(main, &["branch", "-D", branch])?;
    Ok(())
}

/// The paths `git status` reports in the worktree at `dir` (changed, staged and
/// untracked), leaving out what `ours` matches (the links and copies berth made).
pub fn dirty(dir: &Path, ours: &[String]) -> Result<Vec<String>> {
    let finished = git_checked(dir, &["status", "--porcelain", "--untracked-files=all"])?;
    let patterns: Vec<glob::Pattern> = ours
        .iter()
        .filter_map(|pattern| glob::Pattern::new(pattern).ok())
        .collect();
    let is_ours = |path: &str| {
        let path = path.trim_matches('"');
        patterns.iter().any(|pattern| {
            Path::new(path)
                .ancestors()
                .any(|part| pattern.matches_path(part))
        })
    };
    // Each line is `XY path` (`XY old -> new` for a rename).
    Ok(String::from_utf8_lossy(&finished.stdout)
        .lines()
        .filter_map(|line| line.get(3..))
        .filter(|path| !is_ours(path))
        .map(str::to_string)
        .collect())
}

/// What [`bring_over`] did, path by path (relative to the work tree).
#[derive(Debug, Default, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Brought {
    pub copied: Vec<String>,
    pub linked: Vec<String>,
    /// Entries that matched nothing in the main work tree, or were already in the new
    /// one (tracked files are never replaced), or are neither file, directory nor link.
    pub skipped: Vec<String>,
}

/// Copies the `copy` entries and symlinks the `link` entries (paths or globs relative
/// to `from`, the main work tree's project directory) into `to`, the new worktree's.
/// Nothing that exists in `to` is replaced.
pub fn bring_over(from: &Path, to: &Path, copy: &[String], link: &[String]) -> Result<Brought> {
    let mut brought = Brought::default();
    for (patterns, linking) in [(copy, false), (link, true)] {
        for pattern in patterns {
            let matches = matches(from, pattern)?;
            if matches.is_empty() {
                brought.skipped.push(format!("{pattern} (no match)"));
            }
            for relative in matches {
                let source = from.join(&relative);
                let target = to.join(&relative);
                let shown = relative.display().to_string();
                if target.symlink_metadata().is_ok() {
                    brought.skipped.push(format!("{shown} (already there)"));
                    continue;
                }
                if let Some(parent) = target.parent() {
                    fs_err::create_dir_all(parent)?;
                }
                if linking {
                    fs_err::os::unix::fs::symlink(&source, &target)?;
                    brought.linked.push(shown);
                } else if copy_tree(&source, &target)? {
                    brought.copied.push(shown);
                } else {
                    brought
                        .skipped
                        .push(format!("{shown} (not a file or directory)"));
                }
            }
        }
    }
    Ok(brought)
}

/// The paths under `base` that `pattern` names, relative to `base`, sorted.
fn matches(base: &Path, pattern: &str) -> Result<Vec<PathBuf>> {
    let full = format!(
        "{}/{pattern}",
        glob::Pattern::escape(&base.to_string_lossy())
    );
    let paths = glob::glob_with(
        &full,
        glob::MatchOptions {
            // `*` never brings `.git` or `.berth` along: hidden files are named.
            require_literal_leading_dot: true,
            ..glob::MatchOptions::new()
        },
    )
    .map_err(|error| {
        Error::usage(
            format!("`[worktree]` pattern `{pattern}`: {error}"),
            Some("use a path or a glob such as `config/*.key`".to_string()),
        )
    })?;
    let mut found: Vec<PathBuf> = paths
        .filter_map(std::result::Result::ok)
        .filter_map(|path| path.strip_prefix(base).ok().map(Path::to_path_buf))
        .filter(|relative| {
            let top = relative.components().next();
            !relative.as_os_str().is_empty()
                && !top.is_some_and(|top| top.as_os_str() == ".git" || top.as_os_str() == ".berth")
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Copies a regular file, a symlink (as a symlink) or a directory tree; anything else
/// (a FIFO, a socket, a device) is left out, never opened. Returns whether it copied.
fn copy_tree(source: &Path, target: &Path) -> Result<bool> {
    let meta = fs_err::symlink_metadata(source)?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        fs_err::os::unix::fs::symlink(fs_err::read_link(source)?, target)?;
    } else if kind.is_file() {
        fs_err::copy(source, target)?;
    } else if kind.is_dir() {
        fs_err::create_dir(target)?;
        fs_err::set_permissions(target, meta.permissions())?;
        for entry in fs_err::read_dir(source)? {
            let entry = entry?;
            copy_tree(&entry.path(), &target.join(entry.file_name()))?;
        }
    } else {
        return Ok(false);
    }
    Ok(true)
}

/// Runs the `[worktree] setup` commands in `dir` with `sh -c`, one after the other, their
/// output on berth's stderr (stdout stays for data); the first that fails stops them.
pub fn run_setup(dir: &Path, commands: &[String]) -> Result<()> {
    for script in commands {
        let mut command = Command::new("sh");
        command.arg("-c").arg(script).current_dir(dir);
        let display = format!("sh -c {script:?}");
        let finished = Call::new(command, display, CallKind::Setup)
            .stdout(std::io::stderr())
            .stderr(std::io::stderr())
            .run()
            .map_err(external)?;
        if !finished.status.success() {
            return Err(Error::failed(
                format!(
                    "the setup command `{script}` failed in `{}` ({})",
                    dir.display(),
                    finished.status
                ),
                Some("its output is above; fix `[worktree] setup` in berth.toml".to_string()),
            ));
        }
    }
    Ok(())
}

/// `[worktree] dir` for the worktree `name` of the main work tree `main`: the template
/// filled in, relative to `main` unless absolute.
pub fn directory(template: &str, main: &Path, name: &str) -> PathBuf {
    let parent = main.parent().unwrap_or(main);
    let main_dir = main
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = template
        .replace("{main_parent}", &parent.to_string_lossy())
        .replace("{main_dir}", &main_dir)
        .replace("{name}", name);
    main.join(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_directory_is_beside_the_main_work_tree() {
        let main = Path::new("/home/ana/src/shop");
        assert_eq!(
            directory(crate::config::DEFAULT_WORKTREE_DIR, main, "auth"),
            Path::new("/home/ana/src/shop-auth")
        );
        assert_eq!(
            directory("../trees/{name}", main, "auth"),
            Path::new("/home/ana/src/shop/../trees/auth")
        );
    }

    #[test]
    fn bring_over_copies_links_and_never_replaces_or_opens_a_fifo() {
        let base = std::env::temp_dir().join(format!("berth-bring-{}", std::process::id()));
        let (from, to) = (base.join("main"), base.join("new"));
        std::fs::create_dir_all(from.join("config")).unwrap();
        std::fs::create_dir_all(from.join("node_modules/x")).unwrap();
        std::fs::create_dir_all(&to).unwrap();
        std::fs::write(from.join(".env"), "A=1\n").unwrap();
        std::fs::write(from.join("config/master.key"), "k").unwrap();
        std::fs::write(from.join("config/other.key"), "o").unwrap();
        std::fs::write(from.join("tracked"), "main's").unwrap();
        std::fs::write(to.join("tracked"), "the worktree's").unwrap();
        nix::unistd::mkfifo(&from.join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let copy = [".env", "config/*.key", "tracked", "pipe", "missing"].map(String::from);
        let brought = bring_over(&from, &to, &copy, &["node_modules".to_string()]).unwrap();
        assert_eq!(
            brought.copied,
            [".env", "config/master.key", "config/other.key"]
        );
        assert_eq!(brought.linked, ["node_modules"]);
        assert_eq!(brought.skipped.len(), 3, "{:?}", brought.skipped);
        assert_eq!(std::fs::read_to_string(to.join(".env")).unwrap(), "A=1\n");
        assert_eq!(
            std::fs::read_to_string(to.join("tracked")).unwrap(),
            "the worktree's"
        );
        assert_eq!(
            std::fs::read_link(to.join("node_modules")).unwrap(),
            from.join("node_modules")
        );
        assert!(to.join("pipe").symlink_metadata().is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
