//! `instance.json` lives in the work tree, where a clone, a commit or an edit can put
//! anything; what berth signals must not be decided by it. Each write of it is sealed:
//! a keyed BLAKE3 digest of what names processes (the instance, its root, its token,
//! the supervisor's and every service's PID with its start time), under a key that
//! lives only in `$BERTH_HOME/instance.key` (0600, made on first use). A file whose seal
//! does not match was not written by berth under this `BERTH_HOME`: its PIDs are
//! ignored.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::OnceLock;

const KEY_FILE: &str = "instance.key";

static KEY: OnceLock<Option<[u8; 32]>> = OnceLock::new();

/// Loads the key under `home`, making it if there is none yet. Called once per process,
/// before any state file is read or written; where the key cannot be had (a read-only
/// home), nothing is sealed and no recorded PID is trusted.
pub fn init(home: &Path) {
    KEY.get_or_init(|| load_or_create(home).ok());
}

fn load_or_create(home: &Path) -> std::io::Result<[u8; 32]> {
    let path = home.join(KEY_FILE);
    if let Some(key) = load(&path)? {
        return Ok(key);
    }
    super::create_private_dir(home).map_err(std::io::Error::other)?;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    // Written whole into an unnamed file, then linked into place: a racing berth either
    // links first or reads the complete key the other one linked, and a berth killed
    // meanwhile leaves nothing behind.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(home)?;
    file.write_all(&key)?;
    file.sync_all()?;
    let source = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(std::io::Error::other)?;
    let target =
        std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: both paths are valid NUL-terminated strings for the duration of the call.
    let linked = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            source.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if linked == 0 {
        return Ok(key);
    }
    let error = std::io::Error::last_os_error();
    if error.kind() == std::io::ErrorKind::AlreadyExists {
        return load(&path)?
            .ok_or_else(|| std::io::Error::other("instance.key vanished while being made"));
    }
    Err(error)
}

/// The key at `path`: a regular file of exactly 32 bytes, or `None` when there is none.
fn load(path: &Path) -> std::io::Result<Option<[u8; 32]>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    let mut file = match file {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut key = [0u8; 32];
    let mut rest = Vec::new();
    file.read_exact(&mut key)?;
    file.read_to_end(&mut rest)?;
    if !file.metadata()?.is_file() || !rest.is_empty() {
        return Err(std::io::Error::other(format!(
            "`{}` is not a 32-byte key",
            path.display()
        )));
    }
    Ok(Some(key))
}

/// The seal of `content`, when this process has the key.
pub fn seal(content: &[u8]) -> Option<String> {
    let key = KEY.get()?.as_ref()?;
    Some(blake3::keyed_hash(key, content).to_hex().to_string())
}

/// Whether `seal` is the seal of `content` under this process's key.
pub fn verify(content: &[u8], seal: Option<&str>) -> bool {
    let (Some(expected), Some(seal)) = (self::seal(content), seal) else {
        return false;
    };
    // Both are hex digests of the same length; blake3's Hash compares in constant time.
    match blake3::Hash::from_hex(seal) {
        Ok(given) => blake3::Hash::from_hex(&expected).is_ok_and(|expected| expected == given),
        Err(_) => false,
    }
}
