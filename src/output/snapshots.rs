//! How snapshots read for people: sizes, contents, the list.

use super::Table;
use crate::instance::snapshot::Restored;
use crate::snapshot::{DataItem, Manifest};

/// A one-line summary of what a snapshot holds.
pub fn contents(manifest: &Manifest) -> String {
    let mut parts: Vec<String> = manifest.data.iter().map(DataItem::describe).collect();
    if !manifest.volumes.is_empty() {
        let keys: Vec<&str> = manifest
            .volumes
            .iter()
            .map(|item| item.key.as_str())
            .collect();
        let noun = if keys.len() == 1 { "volume" } else { "volumes" };
        parts.push(format!("{noun} {}", keys.join(", ")));
    }
    if parts.is_empty() {
        "nothing".to_string()
    } else {
        parts.join("; ")
    }
}

/// `1.5 MiB`, `812 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `snapshot save`'s line.
pub fn saved(manifest: &Manifest) -> String {
    format!(
        "saved snapshot `{}` of `{}`: {}, {}\n",
        manifest.name,
        manifest.instance,
        contents(manifest),
        human_bytes(manifest.bytes)
    )
}

/// `snapshot restore`'s line.
pub fn restored(report: &Restored) -> String {
    format!(
        "restored snapshot `{}` into `{}`: {}\n",
        report.snapshot,
        report.instance,
        report.restored.join(", ")
    )
}

/// `snapshot ls`'s table.
pub fn list(project: &str, snapshots: &[Manifest]) -> String {
    if snapshots.is_empty() {
        return format!("no snapshots of `{project}`\n");
    }
    let mut table = Table::new(vec!["NAME", "FROM", "SIZE", "CREATED", "CONTENTS"]);
    for manifest in snapshots {
        table.row(vec![
            manifest.name.clone(),
            manifest.instance.clone(),
            human_bytes(manifest.bytes),
            manifest.created_at.clone(),
            contents(manifest),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(812), "812 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
