//! Secrets at rest: a repository password sealed with crypto.rs and stored
//! through the store cannot be found in the SQLite files, and opens again
//! only with the right key and the owning row's id.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use restic_manager::crypto::{self, SecretKey};
use restic_manager::store::{self, hosts, models, repositories};

/// The password is not greppable in the database file or its WAL, and it
/// round-trips through the store with the key file created on first use.
#[test]
fn sealed_repository_password_is_not_in_the_database_file() {
    let (dir, pool) = crate::common::db::sqlite_pool();
    let key = SecretKey::load_or_create(&dir.path().join("secret.key")).unwrap();
    let password = "correct-horse-battery-staple-4711";
    let credential = "s3-secret-access-key-0815";
    let mut conn = pool.get().unwrap();
    let now = store::now_ms();
    let host = hosts::insert(
        &mut conn,
        &models::NewHost::new(store::new_id(), "web-01", "0".repeat(64), now),
    )
    .unwrap();
    let repo_id = store::new_id();
    let form = models::RepositoryUpsert {
        id: repo_id.clone(),
        url: "s3:https://s3.example/bucket".into(),
        username: Some(Some("AKIAEXAMPLE".into())),
        password_sealed: Some(Some(
            crypto::seal_str(&key, password, repo_id.as_bytes()).unwrap(),
        )),
        credential_sealed: Some(Some(
            crypto::seal_str(&key, credential, repo_id.as_bytes()).unwrap(),
        )),
        hook_shell: None,
    };
    repositories::upsert_for_host(&mut conn, &host.id, &form, now)
        .unwrap()
        .unwrap();
    drop(conn);
    drop(pool); // closes the connections: the WAL is checkpointed into the file

    let mut found_files = 0;
    for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.contains(".db") {
            continue;
        }
        // r2d2 closes the dropped pool's connections on its own threads:
        // the last close removes the WAL and shared-memory files, maybe
        // between the listing and this read (once: "No such file").
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("read {name}: {e}"),
        };
        found_files += 1;
        for secret in [password, credential] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} found in {name}"
            );
        }
    }
    assert!(found_files >= 1, "no database file in {:?}", dir.path());

    // It opens again with the same key file and the row id, and only so.
    let db_path = dir.path().join("data").join("restic-manager.db");
    let pool = store::connect(&db_path.to_string_lossy(), 1).unwrap();
    let mut conn = pool.get().unwrap();
    let repo = repositories::get_for_host(&mut conn, &host.id)
        .unwrap()
        .unwrap();
    let key = SecretKey::load(&dir.path().join("secret.key")).unwrap();
    let sealed = repo.password_sealed.unwrap();
    assert_eq!(
        crypto::open_string(&key, &sealed, repo_id.as_bytes()).unwrap(),
        password
    );
    assert!(crypto::open_string(&key, &sealed, b"another-row").is_err());
    let other_key = SecretKey::from_bytes([7; 32]);
    assert!(crypto::open_string(&other_key, &sealed, repo_id.as_bytes()).is_err());
}
