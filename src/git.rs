//! What berth needs of git, read from the repository's files (no `git` process): keeping
//! berth's files out of it (`info/exclude`), and the branch and commit a root is on.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The git directories of the work tree holding `root`: its own (where `HEAD` is) and the
/// common one (refs, `info/exclude`); the same directory unless it is a linked worktree.
fn git_dirs(root: &Path) -> Option<(PathBuf, PathBuf)> {
    let dot_git = root
        .ancestors()
        .map(|dir| dir.join(".git"))
        .find(|path| path.exists())?;
    if dot_git.is_dir() {
        return Some((dot_git.clone(), dot_git));
    }
    let text = read(&dot_git)?;
    let target = PathBuf::from(text.strip_prefix("gitdir:")?.trim());
    let target = if target.is_absolute() {
        target
    } else {
        dot_git.parent()?.join(target)
    };
    // Canonical, so that every worktree of a repository names one common directory
    // (`commondir` says `../..`).
    let common = match read(&target.join("commondir")) {
        Some(common) => {
            let common = target.join(common.trim());
            std::fs::canonicalize(&common).unwrap_or(common)
        }
        None => target.clone(),
    };
    Some((target, common))
}

/// The `info/exclude` file of the git work tree holding `root`, if any. For a linked
/// worktree (`.git` is a file), the exclude file of the common directory is used, since
/// git reads that one for every worktree.
pub fn exclude_file(root: &Path) -> Option<PathBuf> {
    let (_, common) = git_dirs(root)?;
    Some(common.join("info").join("exclude"))
}

/// Whether `root` is inside a linked worktree (made by `git worktree add`), not the main
/// work tree or outside git.
pub fn is_linked_worktree(root: &Path) -> bool {
    git_dirs(root).is_some_and(|(own, common)| own != common)
}

/// The main work tree of the repository holding `root`: the directory above its common
/// git directory. `None` outside git and for a bare repository.
pub fn main_worktree(root: &Path) -> Option<PathBuf> {
    let (_, common) = git_dirs(root)?;
    let common = std::fs::canonicalize(common).ok()?;
    if common.file_name()? != ".git" {
        return None;
    }
    common.parent().map(Path::to_path_buf)
}

/// For a directory inside a linked worktree, the same directory in the repository's main
/// work tree, when that one exists; `None` in the main work tree itself, outside git, or
/// in a bare repository's worktrees. Linked worktrees come and go with their branches;
/// the main checkout stays.
pub fn main_worktree_twin(root: &Path) -> Option<PathBuf> {
    let top = root.ancestors().find(|dir| dir.join(".git").exists())?;
    let (own, common) = git_dirs(root)?;
    if own == common {
        return None;
    }
    let common = std::fs::canonicalize(common).ok()?;
    if common.file_name()? != ".git" {
        return None;
    }
    let twin = common.parent()?.join(root.strip_prefix(top).ok()?);
    twin.is_dir().then(|| std::fs::canonicalize(&twin).ok())?
}

/// The `info/exclude` pattern naming `path` alone: anchored at the work tree's top.
pub fn exclude_pattern(path: &Path) -> Option<String> {
    let top = path
        .ancestors()
        .skip(1)
        .find(|dir| dir.join(".git").exists())?;
    let relative = path.strip_prefix(top).ok()?;
    Some(format!("/{}", relative.display()))
}

/// The branch (none when detached) and commit a work tree is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GitHead {
    pub branch: Option<String>,
    pub commit: Option<String>,
}

impl GitHead {
    /// `main@1a2b3c4`, `1a2b3c4` when detached.
    pub fn short(&self) -> String {
        let commit: String = self
            .commit
            .as_deref()
            .unwrap_or("?")
            .chars()
            .take(7)
            .collect();
        match &self.branch {
            Some(branch) => format!("{branch}@{commit}"),
            None => commit,
        }
    }
}

/// Where the work tree holding `root` is now, if it is one.
pub fn head(root: &Path) -> Option<GitHead> {
    let (own, common) = git_dirs(root)?;
    let text = read(&own.join("HEAD"))?;
    let text = text.trim();
    let Some(reference) = text.strip_prefix("ref:").map(str::trim) else {
        return Some(GitHead {
            branch: None,
            commit: Some(text.to_string()),
        });
    };
    let commit = read(&common.join(reference))
        .or_else(|| read(&own.join(reference)))
        .map(|sha| sha.trim().to_string())
        .or_else(|| {
            let packed = read(&common.join("packed-refs"))?;
            packed.lines().find_map(|line| {
                let (sha, name) = line.split_once(' ')?;
                (name == reference).then(|| sha.to_string())
            })
        });
    Some(GitHead {
        branch: Some(
            reference
                .strip_prefix("refs/heads/")
                .unwrap_or(reference)
                .to_string(),
        ),
        commit,
    })
}

/// The comment berth writes above each pattern it adds, so that it removes only its own.
const EXCLUDE_MARK: &str = "# added by berth";

/// Adds `pattern` to the exclude file of `root`'s repository unless already there.
/// Outside a git work tree it does nothing.
pub fn exclude(root: &Path, pattern: &str) -> std::io::Result<()> {
    let Some(path) = exclude_file(root) else {
        return Ok(());
    };
    let existing = crate::input::read_text_if_exists(&path, crate::input::MAX_TEXT_BYTES)
        .map_err(std::io::Error::other)?
        .unwrap_or_default();
    if existing.lines().any(|line| line.trim() == pattern) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)?;
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(EXCLUDE_MARK);
    text.push('\n');
    text.push_str(pattern);
    text.push('\n');
    crate::durable::write_atomic(&path, text.as_bytes()).map_err(std::io::Error::other)
}

/// Removes `pattern` from the exclude file of `root`'s repository where berth added it
/// (a line a person wrote stays). Outside a git work tree it does nothing.
pub fn unexclude(root: &Path, pattern: &str) -> std::io::Result<()> {
    let Some(path) = exclude_file(root) else {
        return Ok(());
    };
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    let lines: Vec<&str> = existing.lines().collect();
    let mut kept: Vec<&str> = Vec::with_capacity(lines.len());
    let mut index = 0;
    while index < lines.len() {
        if lines[index] == EXCLUDE_MARK
            && lines
                .get(index + 1)
                .is_some_and(|line| line.trim() == pattern)
        {
            index += 2;
            continue;
        }
        kept.push(lines[index]);
        index += 1;
    }
    if kept.len() == lines.len() {
        return Ok(());
    }
    let mut text = kept.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    crate::durable::write_atomic(&path, text.as_bytes()).map_err(std::io::Error::other)
}

/// A file of git's, read as berth reads any file of the work tree (regular, bounded).
fn read(path: &Path) -> Option<String> {
    crate::input::read_text(path, GIT_FILE_LIMIT).ok()
}

/// Large enough for the `packed-refs` of a big repository.
const GIT_FILE_LIMIT: u64 = 64 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_pattern_once_and_keeps_existing_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git/info")).unwrap();
        std::fs::write(dir.path().join(".git/info/exclude"), "# mine\n*.swp").unwrap();
        let project = dir.path().join("app");
        std::fs::create_dir(&project).unwrap();
        exclude(&project, ".berth/").unwrap();
        exclude(&project, ".berth/").unwrap();
        let text = std::fs::read_to_string(dir.path().join(".git/info/exclude")).unwrap();
        assert_eq!(text, "# mine\n*.swp\n# added by berth\n.berth/\n");
        // Removing takes only berth's own line, never one a person wrote.
        unexclude(&project, ".berth/").unwrap();
        unexclude(&project, "*.swp").unwrap();
        let text = std::fs::read_to_string(dir.path().join(".git/info/exclude")).unwrap();
        assert_eq!(text, "# mine\n*.swp\n");
    }

    #[test]
    fn linked_worktrees_use_the_common_exclude_file() {
        let dir = tempfile::tempdir().unwrap();
        let common = dir.path().join("main/.git");
        let worktree_git = common.join("worktrees/feature");
        std::fs::create_dir_all(&worktree_git).unwrap();
        std::fs::write(worktree_git.join("commondir"), "../..\n").unwrap();
        let tree = dir.path().join("feature");
        std::fs::create_dir(&tree).unwrap();
        std::fs::write(
            tree.join(".git"),
            format!("gitdir: {}\n", worktree_git.display()),
        )
        .unwrap();
        // One path for every worktree of the repository, so that `rm` of one knows
        // whether another still needs the lines berth added.
        let main_exclude = exclude_file(&dir.path().join("main")).unwrap();
        assert_eq!(main_exclude, common.join("info/exclude"));
        assert_eq!(
            exclude_file(&tree).unwrap(),
            common.canonicalize().unwrap().join("info/exclude")
        );
        assert!(exclude_file(Path::new("/")).is_none() || Path::new("/.git").exists());
    }

    fn git(dir: &Path, args: &[&str]) -> String {
        let output = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    #[test]
    fn reads_branch_and_commit_like_git_does() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main");
        std::fs::create_dir(&main).unwrap();
        git(&main, &["init", "-q", "-b", "trunk"]);
        git(&main, &["commit", "-q", "--allow-empty", "-m", "one"]);
        let first = git(&main, &["rev-parse", "HEAD"]);
        assert_eq!(
            head(&main),
            Some(GitHead {
                branch: Some("trunk".into()),
                commit: Some(first.clone())
            })
        );
        let feature = dir.path().join("feature");
        git(
            &main,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                "feat",
                feature.to_str().unwrap(),
            ],
        );
        assert_eq!(
            main_worktree_twin(&feature),
            Some(main.canonicalize().unwrap())
        );
        std::fs::create_dir_all(feature.join("app")).unwrap();
        assert_eq!(
            main_worktree_twin(&feature.join("app")),
            None,
            "no such directory in main"
        );
        std::fs::create_dir_all(main.join("app")).unwrap();
        assert_eq!(
            main_worktree_twin(&feature.join("app")),
            Some(main.join("app").canonicalize().unwrap())
        );
        assert_eq!(
            main_worktree_twin(&main),
            None,
            "already the main work tree"
        );
        git(&feature, &["commit", "-q", "--allow-empty", "-m", "two"]);
        let second = git(&feature, &["rev-parse", "HEAD"]);
        let in_worktree = head(&feature.join(".")).unwrap();
        assert_eq!(in_worktree.branch.as_deref(), Some("feat"));
        assert_eq!(in_worktree.commit.as_deref(), Some(second.as_str()));
        // Packed refs, then a detached HEAD.
        git(&main, &["pack-refs", "--all"]);
        assert_eq!(head(&main).unwrap().commit.as_deref(), Some(first.as_str()));
        git(&main, &["checkout", "-q", "--detach"]);
        assert_eq!(
            head(&main),
            Some(GitHead {
                branch: None,
                commit: Some(first)
            })
        );
        assert_eq!(head(&main).unwrap().short().len(), 7);
    }
}
