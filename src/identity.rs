//! Instance names and indexes: pure functions of the root path and the indexes in use.

use std::collections::HashSet;
use std::path::Path;

use sha2::{Digest, Sha256};

pub const MAX_NAME_LEN: usize = 63;

/// Turns any text into a slug of `[a-z0-9-]`: lowercase, other characters become `-`,
/// runs collapse, no `-` at either end, at most 63 characters.
pub fn sanitize(text: &str) -> String {
    let mut slug = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let mut slug = slug.trim_end_matches('-').to_string();
    slug.truncate(MAX_NAME_LEN);
    slug.trim_end_matches('-').to_string()
}

/// Checks a name given by the user; it is never silently changed.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "instance name `{name}` must be 1 to {MAX_NAME_LEN} characters"
        ));
    }
    if sanitize(name) != name {
        return Err(format!(
            "instance name `{name}` may hold only lowercase letters, digits and `-`, and may not start or end with `-`"
        ));
    }
    Ok(())
}

/// The names tried, in order, for a new instance at `root`: the directory's name, then
/// `{parent}-{directory}`, then that with a 6-hex suffix of the SHA-256 of the root.
pub fn default_name_candidates(root: &Path) -> Vec<String> {
    let directory = root
        .file_name()
        .map(|name| sanitize(&name.to_string_lossy()))
        .unwrap_or_default();
    let directory = if directory.is_empty() {
        "instance".to_string()
    } else {
        directory
    };
    let parent = root
        .parent()
        .and_then(Path::file_name)
        .map(|name| sanitize(&name.to_string_lossy()))
        .unwrap_or_default();
    let with_parent = if parent.is_empty() {
        directory.clone()
    } else {
        sanitize(&format!("{parent}-{directory}"))
    };
    let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
    let suffix: String = digest
        .iter()
        .take(3)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let mut base = with_parent.clone();
    base.truncate(MAX_NAME_LEN - 7);
    let hashed = format!("{}-{suffix}", base.trim_end_matches('-'));
    let mut candidates = vec![directory, with_parent, hashed];
    candidates.dedup();
    candidates
}

/// The lowest index not `in_use` (the ledger says which indexes a project's instances
/// hold: [`crate::ledger::LedgerData::indexes_in_use`]).
pub fn lowest_free_index(in_use: impl IntoIterator<Item = u32>) -> u32 {
    let in_use: HashSet<u32> = in_use.into_iter().collect();
    (0..).find(|index| !in_use.contains(index)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_makes_slugs() {
        for (input, expected) in [
            ("Shop", "shop"),
            ("my shop_2", "my-shop-2"),
            ("--a..b--", "a-b"),
            ("été", "t"),
            ("日本", ""),
            (&"x".repeat(80), &"x".repeat(63)),
        ] {
            assert_eq!(sanitize(input), expected, "{input}");
        }
    }

    #[test]
    fn validate_rejects_what_sanitize_would_change() {
        assert!(validate_name("agent-1").is_ok());
        for bad in [
            "",
            "Agent",
            "a b",
            "-a",
            "a-",
            "a/b",
            "..",
            "ü",
            &"a".repeat(64),
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn candidates_go_directory_then_parent_then_hash() {
        let candidates = default_name_candidates(Path::new("/work/agents/Feature Auth"));
        assert_eq!(candidates[0], "feature-auth");
        assert_eq!(candidates[1], "agents-feature-auth");
        assert!(candidates[2].starts_with("agents-feature-auth-") && candidates[2].len() == 26);
        let other = default_name_candidates(Path::new("/elsewhere/agents/Feature Auth"));
        assert_ne!(candidates[2], other[2]);
        assert!(candidates.iter().all(|name| validate_name(name).is_ok()));
    }

    #[test]
    fn the_lowest_index_not_in_use_is_free() {
        for (in_use, expected) in [
            (&[][..], 0),
            (&[0, 1, 2][..], 3),
            (&[1, 2][..], 0),
            (&[0, 2, 2, 5][..], 1),
        ] {
            assert_eq!(
                lowest_free_index(in_use.iter().copied()),
                expected,
                "{in_use:?}"
            );
        }
    }
}
