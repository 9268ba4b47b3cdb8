//! Use cases driven through `MedEx` with the test kit's in-memory world (manual clock, seeded
//! ids), one module per aggregate as the use cases are.

use std::sync::Arc;

use chrono::{Duration, FixedOffset};
use futures::executor::block_on;
use proptest::prelude::*;

use super::*;
use crate::auth::Argon2Hasher;
use crate::testkit::{Options, PASSWORD, World, new_order, start};

mod accounts;
mod admin;
mod custody;
mod delivery;
mod dispatch;
mod drivers;
mod integrations;
mod lifecycle_model;
mod orders;
mod tracking;
mod upkeep;

/// A new order of the first customer at pharmacy A, still pending.
async fn placed_order(w: &World) -> Order {
    w.medex
        .create_order(&w.customers[0], new_order(w.vendor_a_id))
        .await
        .unwrap()
}

fn conflict_code(result: Result<Order>) -> &'static str {
    match result {
        Err(e) => e.code(),
        Ok(o) => panic!("expected an error, got order in {}", o.status),
    }
}
