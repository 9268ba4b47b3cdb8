//! The kit's model test on sled: `Reopen` closes the store and opens its directory again.

use std::path::PathBuf;
use std::sync::Arc;

use medex_core::conformance::model::{self, Reopen};
use medex_core::store::Store;
use medex_store_sled::SledStore;
use proptest::prelude::*;

struct Directory(PathBuf);

#[async_trait::async_trait]
impl Reopen for Directory {
    async fn open(&mut self) -> Arc<dyn Store> {
        Arc::new(SledStore::open(&self.0).unwrap())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sled_store_answers_like_the_reference_store(ops in model::ops()) {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(model::check(Directory(dir.path().to_path_buf()), ops));
    }
}
