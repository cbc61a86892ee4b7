//! Keeping berth's files out of git: entries in the repository's `info/exclude`.

use std::path::{Path, PathBuf};

/// The `info/exclude` file of the git work tree holding `root`, if any. For a linked
/// worktree (`.git` is a file), the exclude file of the common directory is used, since
/// git reads that one for every worktree.
pub fn exclude_file(root: &Path) -> Option<PathBuf> {
    let dot_git = root
        .ancestors()
        .map(|dir| dir.join(".git"))
        .find(|path| path.exists())?;
    let git_dir = if dot_git.is_dir() {
        dot_git
    } else {
        let text = std::fs::read_to_string(&dot_git).ok()?;
        let target = PathBuf::from(text.strip_prefix("gitdir:")?.trim());
        let target = if target.is_absolute() {
            target
        } else {
            dot_git.parent()?.join(target)
        };
        match std::fs::read_to_string(target.join("commondir")) {
            Ok(common) => target.join(common.trim()),
            Err(_) => target,
        }
    };
    Some(git_dir.join("info").join("exclude"))
}

/// Adds `pattern` to the exclude file of `root`'s repository unless already there.
/// Outside a git work tree it does nothing.
pub fn exclude(root: &Path, pattern: &str) -> std::io::Result<()> {
    let Some(path) = exclude_file(root) else {
        return Ok(());
    };
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error),
    };
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
    text.push_str(pattern);
    text.push('\n');
    crate::state::write_atomic(&path, text.as_bytes()).map_err(std::io::Error::other)
}

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
        assert_eq!(text, "# mine\n*.swp\n.berth/\n");
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
        assert_eq!(
            exclude_file(&tree).unwrap(),
            worktree_git.join("../..").join("info/exclude")
        );
        assert!(exclude_file(Path::new("/")).is_none() || Path::new("/.git").exists());
    }
}
