//! A database directory whose engine file holds garbage is refused with an error, not a panic
//! or a crash, and classified as corruption.

use anode_store::Table;
use anode_store_lmdb::{LmdbOptions, LmdbStore};

#[test]
fn garbage_in_the_engine_file_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    std::fs::write(dir.path().join("data.mdb"), garbage).expect("write garbage");
    let result = LmdbStore::open(dir.path(), &[Table::new("t")], LmdbOptions::default());
    let err = result.map(|_| ()).expect_err("garbage is not a database");
    assert!(matches!(err, anode_store::Error::Backend { .. }), "{err}");
    // Corruption, which the server reports as such, not as a failing disk to retry on.
    assert_eq!(err.kind(), anode_store::ErrorKind::Corrupt, "{err}");
}
