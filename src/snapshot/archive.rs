//! An instance's data directory (or parts of it) packed into a tar file with modes,
//! owners, times and symlinks kept, and unpacked back over it.
//!
//! Sockets and FIFOs (a database's unix socket, say) are runtime objects, not data: they
//! are left out. Symlinks are stored as links, never followed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::SnapshotError;

type Result<T, E = SnapshotError> = std::result::Result<T, E>;

/// Packs `paths` (relative to `data`; `""` is the whole directory) into `out`. A path
/// that does not exist is skipped. Returns the number of entries written.
pub fn pack(data: &Path, paths: &[String], out: &Path) -> Result<usize> {
    let file = fs_err::File::create(out)?;
    let mut builder = tar::Builder::new(BufWriter::new(file.into_parts().0));
    builder.follow_symlinks(false);
    let mut count = 0;
    for path in paths {
        let start = if path.is_empty() {
            data.to_path_buf()
        } else {
            data.join(path)
        };
        if std::fs::symlink_metadata(&start).is_err() {
            continue;
        }
        count += add_tree(&mut builder, data, &start)?;
    }
    let mut writer = builder.into_inner().map_err(|error| io_error(out, error))?;
    writer.flush().map_err(|error| io_error(out, error))?;
    let file: File = writer
        .into_inner()
        .map_err(|error| io_error(out, error.into_error()))?;
    file.sync_all().map_err(|error| io_error(out, error))?;
    Ok(count)
}

/// Adds `path` and, for a directory, everything below it, named relative to `base`.
fn add_tree<W: Write>(builder: &mut tar::Builder<W>, base: &Path, path: &Path) -> Result<usize> {
    let meta = fs_err::symlink_metadata(path)?;
    let kind = meta.file_type();
    let relative = path.strip_prefix(base).unwrap_or(path);
    let mut count = 0;
    if !relative.as_os_str().is_empty() && (kind.is_dir() || kind.is_file() || kind.is_symlink()) {
        builder
            .append_path_with_name(path, relative)
            .map_err(|error| io_error(path, error))?;
        count += 1;
    }
    if kind.is_dir() {
        let mut children: Vec<_> = fs_err::read_dir(path)?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<std::io::Result<_>>()?;
        children.sort();
        for child in children {
            count += add_tree(builder, base, &child)?;
        }
    }
    Ok(count)
}

/// Replaces `paths` (relative to `data`; `""` is everything in it) with the content of
/// the tar file `archive`. The archive is unpacked beside `data` first, and each path is
/// swapped in by one atomic exchange (`renameat2(RENAME_EXCHANGE)`) only once the whole
/// archive is out: a damaged archive leaves the data as it was, and a crash leaves each
/// path either old or new, never missing.
pub fn unpack(archive: &Path, data: &Path, paths: &[String]) -> Result<()> {
    let parent = data.parent().unwrap_or(data);
    sweep_dead_staging(parent);
    let staging = parent.join(format!("{STAGING_PREFIX}{}", std::process::id()));
    remove_any(&staging)?;
    fs_err::create_dir_all(&staging)?;
    let file = fs_err::File::open(archive)?;
    let mut reader = tar::Archive::new(std::io::BufReader::new(file));
    reader.set_preserve_permissions(true);
    reader.set_preserve_ownerships(true);
    reader.set_preserve_mtime(true);
    reader.set_overwrite(true);
    // `unpack` refuses entries that would land outside the directory (`..`, absolute).
    if let Err(error) = reader.unpack(&staging) {
        let _ = remove_any(&staging);
        return Err(io_error(archive, error));
    }
    fs_err::create_dir_all(data)?;
    if paths.iter().any(String::is_empty) {
        exchange(&staging, data)?;
    } else {
        for path in paths {
            let (restored, target) = (staging.join(path), data.join(path));
            match (exists(&restored), exists(&target)) {
                (true, true) => exchange(&restored, &target)?,
                (true, false) => fs_err::rename(&restored, &target)?,
                // Not in the snapshot: it had nothing there.
                (false, true) => fs_err::rename(&target, &restored)?,
                (false, false) => {}
            }
        }
    }
    // The staging directory now holds what was replaced.
    remove_any(&staging)?;
    Ok(())
}

/// Where an archive is unpacked before it is swapped in: `data.restoring-<pid>`.
const STAGING_PREFIX: &str = "data.restoring-";

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Swaps two paths in one step. Where the filesystem cannot (EINVAL), two renames
/// through a temporary name.
fn exchange(a: &Path, b: &Path) -> Result<()> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    match renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => {
            let aside = a.with_extension("berth-swap");
            fs_err::rename(b, &aside)?;
            fs_err::rename(a, b)?;
            fs_err::rename(&aside, a)?;
            Ok(())
        }
        Err(errno) => Err(io_error(b, std::io::Error::from(errno))),
    }
}

/// Removes staging directories of restores whose process is gone.
fn sweep_dead_staging(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(STAGING_PREFIX)
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !crate::process::exists(pid) {
            let _ = remove_any(&entry.path());
        }
    }
}

/// Removes a file, link or directory tree (a symlink itself, never its target).
fn remove_any(path: &Path) -> Result<()> {
    match fs_err::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs_err::remove_dir_all(path)?,
        Ok(_) => fs_err::remove_file(path)?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

fn io_error(path: &Path, source: std::io::Error) -> SnapshotError {
    SnapshotError::Archive {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    #[test]
    fn round_trip_keeps_modes_links_and_drops_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs_err::create_dir_all(data.join("pg/base")).unwrap();
        std::fs::write(data.join("pg/base/1"), b"rows").unwrap();
        std::fs::set_permissions(data.join("pg"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(data.join("cache.txt"), b"cache").unwrap();
        symlink("pg/base/1", data.join("link")).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(data.join("pg/.s.PGSQL")).unwrap();
        let archive = dir.path().join("data.tar");
        let count = pack(&data, &[String::new()], &archive).unwrap();
        assert_eq!(count, 5, "pg, pg/base, pg/base/1, cache.txt, link");

        std::fs::write(data.join("pg/base/1"), b"changed").unwrap();
        std::fs::write(data.join("new-file"), b"after").unwrap();
        unpack(&archive, &data, &[String::new()]).unwrap();
        assert_eq!(std::fs::read(data.join("pg/base/1")).unwrap(), b"rows");
        assert!(
            !data.join("new-file").exists(),
            "files made after the save go"
        );
        assert!(!data.join("pg/.s.PGSQL").exists());
        assert_eq!(
            std::fs::metadata(data.join("pg")).unwrap().mode() & 0o777,
            0o700
        );
        assert_eq!(
            std::fs::read_link(data.join("link")).unwrap(),
            Path::new("pg/base/1")
        );
    }

    #[test]
    fn a_damaged_archive_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs_err::create_dir_all(data.join("pg")).unwrap();
        std::fs::write(data.join("pg/table"), vec![7u8; 100_000]).unwrap();
        let archive = dir.path().join("data.tar");
        pack(&data, &[String::new()], &archive).unwrap();
        let bytes = std::fs::read(&archive).unwrap();
        std::fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();
        std::fs::write(data.join("pg/table"), b"current").unwrap();
        assert!(unpack(&archive, &data, &[String::new()]).is_err());
        assert_eq!(std::fs::read(data.join("pg/table")).unwrap(), b"current");
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 2, "no staging directory left: {left:?}");
    }

    #[test]
    fn parts_replace_only_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs_err::create_dir_all(data.join("pg")).unwrap();
        fs_err::create_dir_all(data.join("uploads")).unwrap();
        std::fs::write(data.join("pg/table"), b"v1").unwrap();
        std::fs::write(data.join("uploads/a"), b"u1").unwrap();
        let archive = dir.path().join("pg.tar");
        pack(&data, &["pg".to_string()], &archive).unwrap();
        std::fs::write(data.join("pg/table"), b"v2").unwrap();
        std::fs::write(data.join("pg/extra"), b"x").unwrap();
        std::fs::write(data.join("uploads/a"), b"u2").unwrap();
        // A restore killed earlier left its staging directory: the next one removes it.
        let dead = dir.path().join("data.restoring-999999999");
        fs_err::create_dir_all(dead.join("pg")).unwrap();
        unpack(&archive, &data, &["pg".to_string()]).unwrap();
        assert!(!dead.exists());
        assert_eq!(std::fs::read(data.join("pg/table")).unwrap(), b"v1");
        assert!(!data.join("pg/extra").exists());
        assert_eq!(std::fs::read(data.join("uploads/a")).unwrap(), b"u2");
    }
}
