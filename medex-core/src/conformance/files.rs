//! The file store contract of [`crate::files`] as checks: every [`FileStore`] runs [`run`]
//! against itself on an empty store.

use crate::files::{FileStore, MAX_FILE_NAME};
use crate::store::StoreError;

/// Every rule of the file store contract, on an empty store; panics naming the broken rule.
pub async fn run(files: &dyn FileStore) {
    let name = "0190a0c4-7b6e-7c1f-8a3b-5d2e9f0a1b2c-00112233445566778899aabbccddeeff.png";
    assert_eq!(
        files.file(name).await.unwrap(),
        None,
        "no file before it is stored"
    );
    // Every byte value, and more than one page of them.
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    files.put_file(name, &bytes).await.expect("a new file");
    assert_eq!(
        files.file(name).await.unwrap().as_deref(),
        Some(&bytes[..]),
        "a file reads back byte for byte"
    );
    assert!(
        matches!(
            files.put_file(name, b"other").await,
            Err(StoreError::Conflict)
        ),
        "storing a name again must be a Conflict"
    );
    assert_eq!(
        files.file(name).await.unwrap().as_deref(),
        Some(&bytes[..]),
        "a refused second write leaves the first file as it was"
    );

    let empty = "empty.jpg";
    files.put_file(empty, b"").await.expect("an empty file");
    assert_eq!(files.file(empty).await.unwrap(), Some(Vec::new()));

    let longest = "a".repeat(MAX_FILE_NAME);
    files
        .put_file(&longest, b"long name")
        .await
        .expect("a name of the longest length");
    assert_eq!(
        files.file(&longest).await.unwrap().as_deref(),
        Some(&b"long name"[..])
    );
    assert_eq!(
        files.file("0190a0c4.png").await.unwrap(),
        None,
        "a prefix of a name is another name"
    );

    files.delete_file(name).await.expect("delete");
    assert_eq!(files.file(name).await.unwrap(), None, "deleted");
    files
        .delete_file(name)
        .await
        .expect("deleting a missing file is not an error");
    files
        .put_file(name, b"again")
        .await
        .expect("a deleted name can be stored again");
    assert_eq!(
        files.file(name).await.unwrap().as_deref(),
        Some(&b"again"[..])
    );

    for hostile in ["../escape.png", "/etc/passwd", "a/b.png", ".hidden"] {
        assert!(
            files.put_file(hostile, b"x").await.is_err(),
            "{hostile:?} is not a generated name and must be refused"
        );
    }
}
