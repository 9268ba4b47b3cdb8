//! Uploaded files in a directory: core's [`FileStore`] on the file system, for one instance (or
//! several sharing a network file system). Each file is written whole under a temporary name,
//! made durable, then linked into place, so a crash leaves either the whole file or none, and a
//! name already taken is refused rather than written over.

use std::io::ErrorKind;
use std::path::PathBuf;

use async_trait::async_trait;
use medex_core::files::{FileStore, is_valid_file_name};
use medex_core::store::StoreError;
use tokio::io::AsyncWriteExt;

/// Files under one directory, created on the first upload.
#[derive(Debug, Clone)]
pub struct DirectoryFiles {
    dir: PathBuf,
}

impl DirectoryFiles {
    /// Files in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, name: &str) -> Result<PathBuf, StoreError> {
        // Names are generated, never a client's: anything else is refused before it is a path.
        if is_valid_file_name(name) {
            Ok(self.dir.join(name))
        } else {
            Err(StoreError::Unavailable(
                "refused a file name that is not a generated one".into(),
            ))
        }
    }
}

fn unavailable(e: std::io::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

#[async_trait]
impl FileStore for DirectoryFiles {
    async fn put_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(name)?;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(unavailable)?;
        let temporary = self
            .dir
            .join(format!(".{name}.{}.part", uuid::Uuid::new_v4().simple()));
        let written = async {
            let mut file = tokio::fs::File::create(&temporary).await?;
            file.write_all(bytes).await?;
            file.sync_all().await?;
            drop(file);
            // A hard link never replaces an existing file: a taken name fails here.
            tokio::fs::hard_link(&temporary, &path).await
        }
        .await;
        let _ = tokio::fs::remove_file(&temporary).await;
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(StoreError::Conflict),
            Err(e) => return Err(unavailable(e)),
        }
        // The new directory entry is durable too.
        if let Ok(dir) = tokio::fs::File::open(&self.dir).await {
            dir.sync_all().await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match tokio::fs::read(self.path(name)?).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete_file(&self, name: &str) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.path(name)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_keeps_the_file_store_contract() {
        let dir = tempfile::tempdir().unwrap();
        let files = DirectoryFiles::new(dir.path().join("uploads"));
        medex_core::conformance::files::run(&files).await;
        let left: Vec<_> = std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "temporary files left behind: {left:?}");
    }
}
