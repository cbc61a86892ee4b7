//! The hosts file block: glibc resolves `*.localhost` only through `/etc/hosts`, so
//! `berth router hosts --write` keeps a marked block of the routed names there, and
//! `--remove` takes it out again. Everything outside the block is left byte for byte.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::RouterError;

/// The hosts file berth edits unless `BERTH_HOSTS_FILE` names another.
pub const DEFAULT_HOSTS_FILE: &str = "/etc/hosts";

/// The largest hosts file berth reads.
const HOSTS_LIMIT: u64 = 4 * 1024 * 1024;

fn begin_marker(home: &Path) -> String {
    format!("# BEGIN berth router (BERTH_HOME={})", home.display())
}

fn end_marker(home: &Path) -> String {
    format!("# END berth router (BERTH_HOME={})", home.display())
}

/// One line per routed name and address family.
pub fn lines(hosts: &[String]) -> Vec<String> {
    let mut lines = Vec::with_capacity(hosts.len() * 2);
    for host in hosts {
        lines.push(format!("127.0.0.1\t{host}"));
        lines.push(format!("::1\t{host}"));
    }
    lines
}

/// `content` with the block of `home` set to `lines` (taken out when `None`); a file
/// without a block gets it at its end. `None` when the block has no end marker.
pub fn apply(content: &str, home: &Path, lines: Option<&[String]>) -> Option<String> {
    let begin = begin_marker(home);
    let end = end_marker(home);
    let mut out = String::with_capacity(content.len());
    let mut rest = content;
    let mut placed = false;
    while !rest.is_empty() {
        let (line, next) = match rest.find('\n') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, ""),
        };
        if line == begin {
            let close = next.lines().position(|line| line == end)?;
            let after: usize = next
                .split_inclusive('\n')
                .take(close + 1)
                .map(str::len)
                .sum();
            if !placed {
                push_block(&mut out, &begin, &end, lines);
                placed = true;
            }
            rest = &next[after..];
            continue;
        }
        out.push_str(line);
        if rest.len() > line.len() {
            out.push('\n');
        }
        rest = next;
    }
    if !placed {
        if !out.is_empty() && !out.ends_with('\n') && lines.is_some() {
            out.push('\n');
        }
        push_block(&mut out, &begin, &end, lines);
    }
    Some(out)
}

fn push_block(out: &mut String, begin: &str, end: &str, lines: Option<&[String]>) {
    let Some(lines) = lines else {
        return;
    };
    out.push_str(begin);
    out.push_str("\n# Managed by `berth router hosts --write`; `berth router hosts --remove` takes it out.\n");
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(end);
    out.push('\n');
}

/// The hosts file to edit: `BERTH_HOSTS_FILE`, else `/etc/hosts`.
pub fn hosts_file() -> PathBuf {
    std::env::var_os(crate::env_vars::BERTH_HOSTS_FILE)
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_HOSTS_FILE))
}

/// Sets the block of `home` in the hosts file at `path` to `lines` (`None` removes it).
/// True when the file changed. The new file replaces the old in one rename, with the old
/// one's mode; where the file cannot be replaced (a container's bind-mounted
/// `/etc/hosts`), it is rewritten in place.
pub fn sync(path: &Path, home: &Path, lines: Option<&[String]>) -> Result<bool, RouterError> {
    let content = crate::input::read_text(path, HOSTS_LIMIT)?;
    let updated = apply(&content, home, lines).ok_or_else(|| RouterError::HostsBlock {
        path: path.to_path_buf(),
    })?;
    if updated == content {
        return Ok(false);
    }
    let error = |source| RouterError::HostsFile {
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(error)?.permissions().mode() & 0o7777;
    let temporary = path.with_file_name(format!(
        ".{}.berth-{}",
        path.file_name()
            .map_or_else(|| "hosts".into(), |name| name.to_string_lossy()),
        std::process::id()
    ));
    let replaced = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temporary)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(updated.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if let Err(rename_error) = replaced {
        let _ = std::fs::remove_file(&temporary);
        let in_place = matches!(
            rename_error.raw_os_error(),
            Some(libc::EBUSY | libc::EXDEV | libc::EPERM | libc::EACCES)
        );
        if !in_place {
            return Err(error(rename_error));
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(error)?;
        file.write_all(updated.as_bytes()).map_err(error)?;
        file.sync_all().map_err(error)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &str = "/home/dev/.local/state/berth";

    fn names(hosts: &[&str]) -> Vec<String> {
        lines(
            &hosts
                .iter()
                .map(|host| host.to_string())
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn a_block_is_added_at_the_end_and_everything_else_kept() {
        let content = "127.0.0.1\tlocalhost\n# a comment\n::1 localhost";
        let out = apply(content, Path::new(HOME), Some(&names(&["a.localhost"]))).unwrap();
        assert!(
            out.starts_with(
                "127.0.0.1\tlocalhost\n# a comment\n::1 localhost\n# BEGIN berth router"
            ),
            "{out}"
        );
        assert!(
            out.contains("127.0.0.1\ta.localhost\n::1\ta.localhost\n# END berth router"),
            "{out}"
        );
    }

    #[test]
    fn the_block_is_replaced_in_place_and_removed_without_a_trace() {
        let original = "127.0.0.1 localhost\n";
        let with_a = apply(original, Path::new(HOME), Some(&names(&["a.localhost"]))).unwrap();
        let edited = format!("{with_a}10.0.0.1 printer\n");
        let with_b = apply(&edited, Path::new(HOME), Some(&names(&["b.localhost"]))).unwrap();
        assert!(
            !with_b.contains("a.localhost") && with_b.contains("b.localhost"),
            "{with_b}"
        );
        assert!(
            with_b.ends_with(
                "# END berth router (BERTH_HOME=/home/dev/.local/state/berth)\n10.0.0.1 printer\n"
            ),
            "{with_b}"
        );
        let removed = apply(&with_b, Path::new(HOME), None).unwrap();
        assert_eq!(removed, "127.0.0.1 localhost\n10.0.0.1 printer\n");
        assert_eq!(apply(original, Path::new(HOME), None).unwrap(), original);
    }

    #[test]
    fn another_home_s_block_is_left_alone() {
        let other = apply("", Path::new("/other"), Some(&names(&["x.localhost"]))).unwrap();
        let both = apply(&other, Path::new(HOME), Some(&names(&["a.localhost"]))).unwrap();
        let mine_removed = apply(&both, Path::new(HOME), None).unwrap();
        assert_eq!(mine_removed, other);
    }

    #[test]
    fn a_block_without_its_end_is_refused() {
        let broken = format!("{}\n127.0.0.1 a.localhost\n", begin_marker(Path::new(HOME)));
        assert_eq!(apply(&broken, Path::new(HOME), None), None);
    }
}
