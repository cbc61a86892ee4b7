//! A cache of what the Compose tool's `config` printed, keyed by everything that output
//! depends on, so an unchanged project is not resolved again (Compose v1 takes ~0.6 s).
//!
//! The key covers: the tool (its executable's path, size and mtime), the project name,
//! root and profiles; the content of every Compose file and of every file they reference
//! (`env_file`, `extends.file`, `include`), recursively, and of `.env` in the root; and
//! the value of every environment variable the files name (`$NAME`, `${NAME…}`), plus
//! every `COMPOSE_*` and `DOCKER_*` variable. A reference berth cannot follow (a path
//! that itself uses a variable, a file that does not parse) disables the cache for that
//! run, so a stale result is never used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ComposeTool;
use crate::input::{InputError, MAX_TEXT_BYTES};

const CACHE_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    key: String,
    output: String,
}

/// Where the cache of the project at `root` lives.
pub fn path(root: &Path) -> PathBuf {
    root.join(".berth").join("compose-config.json")
}

/// Whether `<root>/.berth` is a directory berth may use (absent, or not a symlink).
fn usable(root: &Path) -> bool {
    std::fs::symlink_metadata(root.join(".berth")).map_or(true, |meta| meta.is_dir())
}

/// The cached `config` output for `key`, if any.
pub fn read(root: &Path, key: &str) -> Option<String> {
    if !usable(root) {
        return None;
    }
    let text = crate::input::read_text(&path(root), super::resolve::MAX_OUTPUT_BYTES).ok()?;
    let file: CacheFile = serde_json::from_str(&text).ok()?;
    (file.version == CACHE_VERSION && file.key == key).then_some(file.output)
}

/// Stores `output` for `key`; a failure only costs the next run a resolution.
pub fn write(root: &Path, key: &str, output: &str) {
    use std::os::unix::fs::DirBuilderExt;
    let dir = root.join(".berth");
    if !usable(root)
        || std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .is_err()
        || crate::git::exclude(root, ".berth/").is_err()
    {
        return;
    }
    let file = CacheFile {
        version: CACHE_VERSION,
        key: key.to_string(),
        output: output.to_string(),
    };
    let _ = crate::state::write_json_atomic(&path(root), &file);
}

/// The cache key, or `None` when the inputs cannot all be known. A file the Compose
/// tool would read that is not a regular file of bounded size (a FIFO `.env` would hang
/// it) is an error.
pub fn key(
    tool: &ComposeTool,
    project: &str,
    root: &Path,
    files: &[PathBuf],
    profiles: &[String],
) -> Result<Option<String>, InputError> {
    let mut hasher = Sha256::new();
    let mut add = |label: &str, value: &[u8]| {
        hasher.update(label.as_bytes());
        hasher.update((value.len() as u64).to_le_bytes());
        hasher.update(value);
    };
    for word in &tool.program {
        add("tool", word.as_bytes());
    }
    for executable in tool.executables() {
        let Some((meta, mtime)) = std::fs::metadata(&executable)
            .ok()
            .and_then(|meta| Some((meta.clone(), meta.modified().ok()?)))
        else {
            return Ok(None);
        };
        add(
            "exe",
            format!("{} {} {mtime:?}", executable.display(), meta.len()).as_bytes(),
        );
    }
    add("project", project.as_bytes());
    add("root", root.as_os_str().as_encoded_bytes());
    for profile in profiles {
        add("profile", profile.as_bytes());
    }
    let mut pending: Vec<PathBuf> = files.to_vec();
    pending.push(root.join(".env"));
    let mut seen: BTreeMap<PathBuf, ()> = BTreeMap::new();
    let mut names: Vec<String> = Vec::new();
    let Ok(variable) = Regex::new(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)") else {
        return Ok(None);
    };
    while let Some(file) = pending.pop() {
        if seen.insert(file.clone(), ()).is_some() {
            continue;
        }
        add("file", file.as_os_str().as_encoded_bytes());
        let text = match crate::input::read_bytes(&file, MAX_TEXT_BYTES) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(InputError::Open { .. }) => {
                add("missing", b"");
                continue;
            }
            Err(error) => return Err(error),
        };
        add("content", text.as_bytes());
        names.extend(variable.captures_iter(&text).map(|c| c[1].to_string()));
        if file.file_name().is_some_and(|name| name == ".env") {
            continue;
        }
        let is_compose = files.contains(&file) || is_yaml(&file);
        if is_compose {
            let dir = file.parent().unwrap_or(root);
            let Some(references) = references(&text) else {
                return Ok(None);
            };
            for reference in references {
                pending.push(dir.join(reference));
            }
        }
    }
    names.sort();
    names.dedup();
    let mut environment: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| {
            name.starts_with("COMPOSE_") || name.starts_with("DOCKER_") || names.contains(name)
        })
        .collect();
    environment.sort();
    for name in &names {
        if !environment.iter().any(|(set, _)| set == name) {
            add("unset", name.as_bytes());
        }
    }
    for (name, value) in environment {
        add("env", format!("{name}={value}").as_bytes());
    }
    Ok(Some(
        hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect(),
    ))
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext == "yml" || ext == "yaml")
}

/// Files a Compose file reads besides itself; `None` when one cannot be followed.
fn references(text: &str) -> Option<Vec<String>> {
    let document: Value = serde_saphyr::from_str(text).ok()?;
    let mut paths: Vec<&Value> = Vec::new();
    if let Some(include) = document.get("include").and_then(Value::as_array) {
        for item in include {
            match item {
                Value::Object(map) => paths.extend(map.get("path").into_iter().flat_map(list)),
                other => paths.push(other),
            }
            if let Some(env) = item.get("env_file") {
                paths.extend(list(env));
            }
        }
    }
    for service in document
        .get("services")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|services| services.values())
    {
        if let Some(env_file) = service.get("env_file") {
            for entry in list(env_file) {
                paths.push(entry.get("path").unwrap_or(entry));
            }
        }
        if let Some(file) = service
            .get("extends")
            .and_then(|extends| extends.get("file"))
        {
            paths.push(file);
        }
    }
    paths
        .into_iter()
        .map(|path| match path {
            Value::String(path) if !path.contains('$') => Some(path.clone()),
            _ => None,
        })
        .collect()
}

/// A value that may be one item or a list of them.
fn list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(dir: &Path) -> Option<String> {
        let tool = ComposeTool {
            program: vec!["sh".into()],
        };
        key(&tool, "p", dir, &[dir.join("compose.yml")], &[]).unwrap()
    }

    #[test]
    fn the_key_follows_every_input() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("compose.yml"),
            "services:\n  web:\n    image: x:${BERTH_CACHE_TEST_TAG:-1}\n    env_file: web.env\n    extends:\n      file: base.yml\n      service: base\n",
        )
        .unwrap();
        std::fs::write(root.join("web.env"), "A=1\n").unwrap();
        std::fs::write(root.join("base.yml"), "services:\n  base:\n    image: y\n").unwrap();
        let first = key_of(root).unwrap();
        assert_eq!(key_of(root).unwrap(), first, "same inputs, same key");

        let changes: [(&str, &str); 3] = [
            ("web.env", "A=2\n"),
            ("base.yml", "services:\n  base:\n    image: z\n"),
            (".env", "X=1\n"),
        ];
        let mut previous = first.clone();
        for (file, text) in changes {
            std::fs::write(root.join(file), text).unwrap();
            let next = key_of(root).unwrap();
            assert_ne!(next, previous, "{file} changes the key");
            previous = next;
        }
        // SAFETY: this test is the only one touching this variable.
        unsafe { std::env::set_var("BERTH_CACHE_TEST_TAG", "2") };
        assert_ne!(
            key_of(root).unwrap(),
            previous,
            "a named variable changes the key"
        );
        unsafe { std::env::remove_var("BERTH_CACHE_TEST_TAG") };

        std::fs::write(
            root.join("compose.yml"),
            "services:\n  web:\n    image: x\n    env_file: ${ENV_FILE}\n",
        )
        .unwrap();
        assert_eq!(
            key_of(root),
            None,
            "a path made of a variable cannot be cached"
        );
    }
}
