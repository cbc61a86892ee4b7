//! Reading files of the work tree (berth.toml, dotenv files, Compose files, git's files):
//! only regular files, of bounded size, opened so that a FIFO or a device can never hang
//! berth or make it read without end.
//!
//! A symlink to a regular file is read (a `.env` linked to a shared secrets file is
//! common and harmless to read); what it points at must still be a regular file.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The most berth reads of a configuration or dotenv file.
pub const MAX_TEXT_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read `{}`: {error}", path.display())]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("`{}` is {kind}, not a regular file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("`{}` is larger than {} MiB, more than berth reads of such a file", path.display(), limit / (1024 * 1024))]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("`{}` is not valid UTF-8 text (line {line}, column {column})", path.display())]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
    },
}

impl InputError {
    pub fn path(&self) -> &Path {
        match self {
            InputError::Open { path, .. }
            | InputError::NotRegular { path, .. }
            | InputError::TooLarge { path, .. }
            | InputError::NotUtf8 { path, .. } => path,
        }
    }

    pub fn hint(&self) -> Option<String> {
        Some(match self {
            InputError::Open { .. } => return None,
            InputError::NotRegular { path, .. } => format!(
                "replace `{}` with a regular file (berth reads no FIFOs, devices or directories there)",
                path.display()
            ),
            InputError::TooLarge { .. } => {
                "such a file is a few kilobytes; check that it is the file you meant".to_string()
            }
            InputError::NotUtf8 { .. } => "save the file as UTF-8".to_string(),
        })
    }
}

/// The bytes of the regular file at `path`, at most `limit` of them.
pub fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let open_error = |error| InputError::Open {
        path: path.to_path_buf(),
        error,
    };
    // O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer, so it
    // can be refused below. O_NOCTTY: a terminal device never becomes berth's.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    let mut file = match file {
        Ok(file) => file,
        Err(error) => {
            // A socket cannot be opened at all (ENXIO): name what it is instead.
            if let Ok(meta) = std::fs::metadata(path)
                && !meta.is_file()
            {
                return Err(not_regular(path, &meta.file_type()));
            }
            return Err(open_error(error));
        }
    };
    let meta = file.metadata().map_err(open_error)?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta.file_type()));
    }
    let too_large = || InputError::TooLarge {
        path: path.to_path_buf(),
        limit,
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    // The size can change after fstat (and files under /proc report 0): the read itself
    // is bounded too.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&mut file)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(open_error)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// The text of the regular file at `path`, at most `limit` bytes of UTF-8.
pub fn read_text(path: &Path, limit: u64) -> Result<String, InputError> {
    let bytes = read_bytes(path, limit)?;
    String::from_utf8(bytes).map_err(|error| {
        let (line, column) = position(error.as_bytes(), error.utf8_error().valid_up_to());
        InputError::NotUtf8 {
            path: path.to_path_buf(),
            line,
            column,
        }
    })
}

/// Like [`read_text`], but a missing file is `None`.
pub fn read_text_if_exists(path: &Path, limit: u64) -> Result<Option<String>, InputError> {
    match read_text(path, limit) {
        Ok(text) => Ok(Some(text)),
        Err(InputError::Open { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// The 1-based line and column (in characters) of byte `offset` of `bytes`, whose first
/// `offset` bytes are valid UTF-8.
pub fn position(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset];
    let line = before.iter().filter(|byte| **byte == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|byte| *byte == b'\n')
        .map_or(0, |index| index + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

fn not_regular(path: &Path, kind: &std::fs::FileType) -> InputError {
    let kind = if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "something else"
    };
    InputError::NotRegular {
        path: path.to_path_buf(),
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.env");
        std::fs::write(&file, "A=1\n").unwrap();
        assert_eq!(read_text(&file, 100).unwrap(), "A=1\n");
        assert!(matches!(
            read_text(&file, 2),
            Err(InputError::TooLarge { limit: 2, .. })
        ));

        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let error = read_text(&fifo, 100).unwrap_err();
        assert!(error.to_string().contains("is a FIFO"), "{error}");

        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let error = read_text(&zero, 100).unwrap_err();
        assert!(error.to_string().contains("character device"), "{error}");

        let error = read_text(dir.path(), 100).unwrap_err();
        assert!(error.to_string().contains("a directory"), "{error}");

        assert!(
            read_text_if_exists(&dir.path().join("none"), 100)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn invalid_utf8_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad");
        std::fs::write(&file, b"ok\n\xc3\xa9t\xff\n").unwrap();
        match read_text(&file, 100) {
            Err(InputError::NotUtf8 { line, column, .. }) => assert_eq!((line, column), (2, 3)),
            other => panic!("{other:?}"),
        }
    }
}
