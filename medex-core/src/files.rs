//! The file storage port: where uploaded proofs of delivery (photos, signatures) are kept, by the
//! names the server generates for them. A directory, a database or an object store can hold them;
//! [`MemoryFiles`] is the reference implementation, and the conformance kit
//! (`conformance::files`) checks any other against this contract.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::store::StoreError;

/// The longest name a file store must accept.
pub const MAX_FILE_NAME: usize = 128;

/// Whether `name` is one a file store must accept: 1 to [`MAX_FILE_NAME`] bytes of lowercase
/// ASCII letters, digits, `-` and `.`, not starting with `.`. Names come from the server, never
/// from clients; stores MUST refuse any other name (with [`StoreError::Unavailable`]) rather than
/// interpret it: no paths, no hidden files.
pub fn is_valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FILE_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Where uploaded files live.
///
/// Durability: when [`FileStore::put_file`] returns `Ok`, the file survives a crash.
#[async_trait]
pub trait FileStore: Send + Sync + 'static {
    /// Stores `bytes` under `name`, whole or not at all. A name already stored MUST be
    /// `Conflict`, leaving the stored file as it was: files are never written over.
    async fn put_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// The file's bytes, exactly as stored, or `None`.
    async fn file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes the file; deleting one that is not there is not an error.
    async fn delete_file(&self, name: &str) -> Result<(), StoreError>;
}

/// Files in a map: for tests and programs that keep nothing.
#[derive(Debug, Default)]
pub struct MemoryFiles {
    files: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryFiles {
    /// No files.
    pub fn new() -> Self {
        Self::default()
    }

    fn files(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn checked(name: &str) -> Result<&str, StoreError> {
    if is_valid_file_name(name) {
        Ok(name)
    } else {
        Err(StoreError::Unavailable(format!(
            "refused a file name that is not a generated one ({} bytes)",
            name.len()
        )))
    }
}

#[async_trait]
impl FileStore for MemoryFiles {
    async fn put_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let name = checked(name)?;
        let mut files = self.files();
        if files.contains_key(name) {
            return Err(StoreError::Conflict);
        }
        files.insert(name.to_owned(), bytes.to_vec());
        Ok(())
    }

    async fn file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.files().get(checked(name)?).cloned())
    }

    async fn delete_file(&self, name: &str) -> Result<(), StoreError> {
        self.files().remove(checked(name)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_files_keep_the_file_store_contract() {
        futures::executor::block_on(crate::conformance::files::run(&MemoryFiles::new()));
    }

    #[test]
    fn only_generated_looking_names_are_valid() {
        for good in ["a", "0192-abc.png", &"a".repeat(MAX_FILE_NAME)] {
            assert!(is_valid_file_name(good), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "../x",
            "a/b",
            "A.png",
            "a b",
            "a\0",
            &"a".repeat(MAX_FILE_NAME + 1),
        ] {
            assert!(!is_valid_file_name(bad), "{bad:?}");
        }
    }
}
