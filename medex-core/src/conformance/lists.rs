//! Lists page by id (newest first) whichever index or query plan serves them, checked against
//! the reference store.

use chrono::Duration;

use super::fixtures::t0;
use super::numbered::{driver_id, order, user, vendor};
use crate::memory::MemoryStore;
use crate::model::{Order, OrderStatus};
use crate::store::{OrderQuery, Page, Store, Write};

/// Pages through `query` with pages of `limit`, collecting ids.
async fn all_pages(store: &dyn Store, query: &OrderQuery, limit: usize) -> Vec<Order> {
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.orders(query, Page { limit, after }).await.unwrap();
        let done = page.len() < limit;
        after = page.last().map(|o| o.id);
        seen.extend(page);
        if done {
            return seen;
        }
    }
}

/// Forty orders whose creation times run in another order than their ids, then every kind of
/// order query paged by 1, 3 and 50: `store` (empty at the start) must give what the reference
/// gives.
pub async fn order_pages_match_the_reference(store: &dyn Store) {
    let model = MemoryStore::new();
    let customers = [user(1, "a@example.com"), user(2, "b@example.com")];
    let vendors = [vendor(1, customers[0].id), vendor(2, customers[0].id)];
    let mut writes = vec![
        Write::User(customers[0].clone()),
        Write::User(customers[1].clone()),
        Write::Vendor(vendors[0].clone()),
        Write::Vendor(vendors[1].clone()),
    ];
    // Ids are scrambled, so creation times run in another order than ids.
    for n in 0..40u64 {
        let mut o = order(
            n,
            vendors[(n % 2) as usize].id,
            customers[(n % 3 % 2) as usize].id,
        );
        o.created_at = t0() + Duration::minutes((n * 7 % 40) as i64);
        o.driver_id = (n % 4 != 0).then(|| driver_id(n % 3));
        o.status = OrderStatus::ALL[(n % 8) as usize];
        writes.push(Write::Order(o));
    }
    model.commit(writes.clone()).await.unwrap();
    store.commit(writes).await.unwrap();

    let at = |minutes: i64| Some(t0() + Duration::minutes(minutes));
    let queries = [
        OrderQuery::default(),
        OrderQuery {
            vendor_id: Some(vendors[0].id),
            ..Default::default()
        },
        OrderQuery {
            vendor_id: Some(vendors[1].id),
            created_from: at(5),
            created_before: at(30),
            ..Default::default()
        },
        OrderQuery {
            vendor_id: Some(vendors[0].id),
            created_from: at(10),
            ..Default::default()
        },
        OrderQuery {
            vendor_id: Some(vendors[0].id),
            created_before: at(20),
            status: Some(OrderStatus::Pending),
            ..Default::default()
        },
        OrderQuery {
            vendor_id: Some(vendors[0].id),
            created_from: at(30),
            created_before: at(10),
            ..Default::default()
        },
        OrderQuery {
            user_id: Some(customers[1].id),
            ..Default::default()
        },
        OrderQuery {
            driver_id: Some(driver_id(1)),
            vendor_id: Some(vendors[1].id),
            ..Default::default()
        },
        OrderQuery {
            created_from: at(12),
            created_before: at(13),
            ..Default::default()
        },
    ];
    for query in &queries {
        for limit in [1, 3, 50] {
            let expected = all_pages(&model, query, limit).await;
            assert_eq!(
                all_pages(store, query, limit).await,
                expected,
                "{query:?} by {limit}"
            );
        }
    }
    let vendor_range = &queries[2];
    assert!(
        all_pages(&model, vendor_range, 50).await.len() > 5,
        "the range test has something to order"
    );
}
