//! The chain of custody: an order's signed history, checked, and the public keys that check it.

use super::*;
use crate::custody::{CustodyRecord, PublishedKey};

impl MedEx {
    /// An order's chain of custody with every hash re-derived and the signature checked, for the
    /// parties of the order. A record edited in the store, hashes recomputed or not, comes back
    /// with `verified: false`.
    pub async fn custody_record(&self, actor: &Actor, id: OrderId) -> Result<CustodyRecord> {
        let order = self.load_order(actor, id).await?;
        Ok(CustodyRecord::check(&order, &self.custody))
    }

    /// The public custody keys, current first: what anyone needs to check a record offline.
    pub fn custody_keys(&self) -> Vec<PublishedKey> {
        self.custody.published()
    }
}
