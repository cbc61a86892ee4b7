//! Files inside the project root, reached one component at a time from the root's
//! directory with `O_NOFOLLOW`, so that no symlink, wherever it is planted, can send a
//! write or a delete outside the root. For the files berth creates in the work tree.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{Mode, SFlag, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    #[error("`{}` is not a file inside the project root `{}`", path.display(), root.display())]
    Outside { path: PathBuf, root: PathBuf },
    #[error("`{}` is a symlink, and berth follows no symlink in a path it writes", path.display())]
    Symlink { path: PathBuf },
    #[error("`{}` is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("`{}` is {kind}, not a regular file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("cannot use `{}`: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// A file's identity (device and inode), to tell whether two paths name one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub device: u64,
    pub inode: u64,
}

impl FileId {
    /// The identity of the file `path` names, following symlinks (for files berth only
    /// compares against, such as berth.toml).
    pub fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(FileId {
            device: meta.dev(),
            inode: meta.ino(),
        })
    }
}

/// What stands at a path now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing, or a directory on the way does not exist yet.
    Missing,
    /// A regular file (never a symlink to one).
    File(FileId),
}

/// A file strictly inside a root, as the components walked from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beneath {
    root: PathBuf,
    directories: Vec<OsString>,
    name: OsString,
}

impl Beneath {
    /// `path` (absolute, or relative to `root`) as a walk from `root`: it must name a file
    /// strictly inside it, with no `.` or `..` component.
    pub fn new(root: &Path, path: &Path) -> Result<Self, BeneathError> {
        let outside = || BeneathError::Outside {
            path: path.to_path_buf(),
            root: root.to_path_buf(),
        };
        let relative = if path.is_absolute() {
            path.strip_prefix(root).map_err(|_| outside())?
        } else {
            path
        };
        // `Path::components` drops interior `.` and trailing `/`; a trailing slash means
        // a directory, which a file target is not.
        if relative.as_os_str().as_bytes().ends_with(b"/") {
            return Err(outside());
        }
        let mut parts = Vec::new();
        for component in relative.components() {
            match component {
                Component::Normal(part) => parts.push(part.to_os_string()),
                _ => return Err(outside()),
            }
        }
        let name = parts.pop().ok_or_else(outside)?;
        Ok(Beneath {
            root: root.to_path_buf(),
            directories: parts,
            name,
        })
    }

    /// The full path, for messages.
    pub fn path(&self) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(&self.directories);
        path.push(&self.name);
        path
    }

    /// What stands there now: nothing, or a regular file. A symlink or anything else
    /// there, or on the way, is an error.
    pub fn find(&self) -> Result<Found, BeneathError> {
        let Some(directory) = self.open_directory(false)? else {
            return Ok(Found::Missing);
        };
        self.stat_name(&directory)
    }

    /// The first `limit` bytes of the file, or `None` when there is none.
    pub fn read_head(&self, limit: usize) -> Result<Option<Vec<u8>>, BeneathError> {
        let Some(directory) = self.open_directory(false)? else {
            return Ok(None);
        };
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match openat(&directory, self.name.as_os_str(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(_) => {
                // Say what stands there (a symlink, a FIFO, …) rather than the errno.
                self.stat_name(&directory)?;
                return Err(self.io(std::io::Error::other("cannot open it")));
            }
        };
        let mut file = std::fs::File::from(fd);
        let meta = file.metadata().map_err(|error| self.io(error))?;
        if !meta.is_file() {
            return Err(BeneathError::NotRegular {
                path: self.path(),
                kind: "not a regular file",
            });
        }
        let mut head = Vec::new();
        (&mut file)
            .take(limit as u64)
            .read_to_end(&mut head)
            .map_err(|error| self.io(error))?;
        Ok(Some(head))
    }

    /// Writes the file (mode 0600) so that readers see the old or the new content, never
    /// a mix: a temp file beside it, fsync, rename over it, fsync of the directory.
    /// Missing directories on the way are created.
    pub fn write(&self, bytes: &[u8]) -> Result<(), BeneathError> {
        let Some(directory) = self.open_directory(true)? else {
            return Err(self.io(std::io::Error::from(std::io::ErrorKind::NotFound)));
        };
        let mut temp = OsString::from(".");
        temp.push(&self.name);
        temp.push(format!(".{}.tmp", std::process::id()));
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_TRUNC
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC;
        let mode = Mode::from_bits_truncate(0o600);
        let fd = openat(&directory, temp.as_os_str(), flags, mode)
            .map_err(|error| self.io(error.into()))?;
        let mut file = std::fs::File::from(fd);
        let result = (|| -> std::io::Result<()> {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            file.write_all(bytes)?;
            file.sync_all()?;
            // rename() replaces whatever stands at the name, a symlink included, and
            // never writes through it.
            renameat(
                &directory,
                temp.as_os_str(),
                &directory,
                self.name.as_os_str(),
            )?;
            nix::unistd::fsync(&directory)?;
            Ok(())
        })();
        if let Err(error) = result {
            let _ = unlinkat(&directory, temp.as_os_str(), UnlinkatFlags::NoRemoveDir);
            return Err(self.io(error));
        }
        Ok(())
    }

    /// Deletes the file; `false` when there was none.
    pub fn remove(&self) -> Result<bool, BeneathError> {
        let Some(directory) = self.open_directory(false)? else {
            return Ok(false);
        };
        if self.stat_name(&directory)? == Found::Missing {
            return Ok(false);
        }
        match unlinkat(
            &directory,
            self.name.as_os_str(),
            UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(error) => Err(self.io(error.into())),
        }
    }

    /// Opens the directory holding the file, walking from the root without following a
    /// symlink; `None` when one on the way is missing (and not `create`d).
    fn open_directory(&self, create: bool) -> Result<Option<OwnedFd>, BeneathError> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        // The root is canonical (found by `canonicalize`), so opening it follows nothing.
        let mut directory =
            nix::fcntl::open(&self.root, flags, Mode::empty()).map_err(|error| {
                BeneathError::Io {
                    path: self.root.clone(),
                    error: error.into(),
                }
            })?;
        let mut walked = self.root.clone();
        for part in &self.directories {
            walked.push(part);
            let open = |directory: &OwnedFd| {
                openat(
                    directory,
                    part.as_os_str(),
                    flags | OFlag::O_NOFOLLOW,
                    Mode::empty(),
                )
            };
            let next = match open(&directory) {
                Err(Errno::ENOENT) if create => {
                    match mkdirat(
                        &directory,
                        part.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => open(&directory),
                        Err(error) => Err(error),
                    }
                }
                other => other,
            };
            directory = match next {
                Ok(next) => next,
                Err(Errno::ENOENT) => return Ok(None),
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    let symlink =
                        fstatat(&directory, part.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                            .is_ok_and(|stat| kind(stat.st_mode) == SFlag::S_IFLNK);
                    return Err(if symlink {
                        BeneathError::Symlink { path: walked }
                    } else {
                        BeneathError::NotADirectory { path: walked }
                    });
                }
                Err(error) => {
                    return Err(BeneathError::Io {
                        path: walked,
                        error: error.into(),
                    });
                }
            };
        }
        Ok(Some(directory))
    }

    fn stat_name(&self, directory: &OwnedFd) -> Result<Found, BeneathError> {
        let stat = match fstatat(
            directory,
            self.name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(stat) => stat,
            Err(Errno::ENOENT) => return Ok(Found::Missing),
            Err(error) => return Err(self.io(error.into())),
        };
        match kind(stat.st_mode) {
            SFlag::S_IFREG => Ok(Found::File(FileId {
                device: stat.st_dev,
                inode: stat.st_ino,
            })),
            SFlag::S_IFLNK => Err(BeneathError::Symlink { path: self.path() }),
            other => Err(BeneathError::NotRegular {
                path: self.path(),
                kind: describe(other),
            }),
        }
    }

    fn io(&self, error: std::io::Error) -> BeneathError {
        BeneathError::Io {
            path: self.path(),
            error,
        }
    }
}

fn kind(mode: libc::mode_t) -> SFlag {
    SFlag::from_bits_truncate(mode & libc::S_IFMT)
}

fn describe(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFSOCK => "a socket",
        _ => "something else",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_inside_the_root_are_accepted() {
        let root = Path::new("/project");
        for good in ["a", "dir/a", "/project/dir/a", "a..b", ".env"] {
            assert!(Beneath::new(root, Path::new(good)).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../a",
            "a/../b",
            "/elsewhere/a",
            "/project",
            "dir/",
        ] {
            assert!(Beneath::new(root, Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn writes_and_removes_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();

        let nested = Beneath::new(&root, Path::new("a/b/file")).unwrap();
        assert_eq!(nested.find().unwrap(), Found::Missing);
        nested.write(b"one").unwrap();
        assert!(matches!(nested.find().unwrap(), Found::File(_)));
        assert_eq!(nested.read_head(2).unwrap().unwrap(), b"on");
        assert!(nested.remove().unwrap());
        assert!(!nested.remove().unwrap());

        std::os::unix::fs::symlink(&outside, root.join("linked")).unwrap();
        let through = Beneath::new(&root, Path::new("linked/file")).unwrap();
        for error in [
            through.write(b"x").unwrap_err(),
            through.find().unwrap_err(),
        ] {
            assert!(matches!(error, BeneathError::Symlink { .. }), "{error}");
        }
        assert!(!outside.join("file").exists());

        std::fs::write(outside.join("victim"), "keep").unwrap();
        std::os::unix::fs::symlink(outside.join("victim"), root.join("link")).unwrap();
        let link = Beneath::new(&root, Path::new("link")).unwrap();
        assert!(matches!(link.find(), Err(BeneathError::Symlink { .. })));
        assert!(link.remove().is_err());
        assert!(link.read_head(10).is_err());
        assert_eq!(
            std::fs::read_to_string(outside.join("victim")).unwrap(),
            "keep"
        );

        std::fs::write(root.join("plain"), "x").unwrap();
        let under_file = Beneath::new(&root, Path::new("plain/file")).unwrap();
        assert!(matches!(
            under_file.write(b"x"),
            Err(BeneathError::NotADirectory { .. })
        ));
    }
}
