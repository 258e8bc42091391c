//! Files sealflow keeps on disk are private to the user it runs as: the data directory is
//! created 0700 and the SQLite database 0600 (SQLite gives its `-wal` and `-shm` files the
//! database file's mode), whatever the umask. Run records, webhook tokens and sealed secrets
//! live there; under the default umask they were readable by every local user.
//!
//! Files and directories that already exist are not changed (they are the operator's), but a
//! mode that lets others in is logged as a warning naming it.

use std::io;
use std::path::Path;

/// Permission bits that let users other than the owner in.
const NOT_OWNER: u32 = 0o077;

/// Creates `dir` (and missing parents) as 0700, or warns if it exists and others may enter it.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.exists() {
        warn_if_shared(dir);
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Prepares the database file of a `sqlite:` URL: its directory private, and the file created
/// empty with mode 0600 before SQLite opens it (an empty file is an empty database), so the
/// journal files SQLite derives from it are 0600 too.
pub fn prepare_sqlite_file(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            warn_if_shared(path);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The permission bits of `path` (0 where the platform has none).
pub fn mode_of(path: &Path) -> io::Result<u32> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(meta.permissions().mode() & 0o777)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Ok(0)
    }
}

fn warn_if_shared(path: &Path) {
    if let Ok(mode) = mode_of(path) {
        if mode & NOT_OWNER != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = %format!("{mode:04o}"),
                "other users may read this sealflow file or directory; chmod it to 0700 (directory) or 0600 (file)"
            );
        }
    }
}
