//! Files on disk are private to the server's user whatever the umask: the data directory 0700,
//! the database and its WAL/SHM files and the generated master key 0600; a master key file that
//! other users may read is refused, naming its mode.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn under_a_permissive_umask_the_data_dir_database_files_and_key_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("nested").join("data");
    let server = ServerProcess::start_with_umask("022", &data, &[]).expect("server starts");
    // While the server runs, SQLite keeps its -wal and -shm files beside the database.
    for (name, want) in [
        ("", 0o700),
        ("sealflow.db", 0o600),
        ("sealflow.db-wal", 0o600),
        ("sealflow.db-shm", 0o600),
        ("master.key", 0o600),
    ] {
        let path = if name.is_empty() {
            data.clone()
        } else {
            data.join(name)
        };
        assert_eq!(mode(&path), want, "{} is {:04o}", path.display(), mode(&path));
    }
    assert_eq!(
        mode(&tmp.path().join("nested")),
        0o700,
        "created parents are private too"
    );
    server.stop();
}

#[test]
fn a_master_key_file_other_users_can_read_is_refused_naming_its_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let key_file = tmp.path().join("key.b64");
    std::fs::write(&key_file, new_master_key()).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let key_path = key_file.to_str().unwrap();
    let err = match ServerProcess::start(
        &tmp.path().join("data"),
        &[("SEALFLOW_MASTER_KEY_FILE", key_path)],
    ) {
        Ok(_) => panic!("a world-readable key file was accepted"),
        Err(log) => log,
    };
    assert!(err.contains("0644") && err.contains("chmod 600"), "{err}");

    // Group-readable (handing the key to a service account's group) starts, with a warning.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let server = ServerProcess::start(
        &tmp.path().join("data"),
        &[("SEALFLOW_MASTER_KEY_FILE", key_path)],
    )
    .expect("a 0640 key file is accepted");
    let log = server.stop();
    assert!(log.contains("accessible to its group"), "{log}");
}
