//! What integrations rely on: API keys found by their hash and unique by it, webhook deliveries
//! written in the same commit as the order change (the outbox) and leaving the queue in the commit
//! that finishes them, and remembered idempotency keys that a second insert cannot take. Part of
//! [`super::run`].

use chrono::Duration;

use super::fixtures::t0;
use super::{id, order, user, vendor};
use crate::integrations::{
    ApiKey, Delivery, DeliveryState, IdempotencyRecord, IdempotencyState, Webhook, WebhookEvent,
    idempotency_id,
};
use crate::model::{ApiKeyId, DeliveryId, OrderStatus, Role, WebhookId};
use crate::store::{Page, Store, StoreError, UniqueKey, Write};

/// Every check of this module, on a store without integration records.
pub(super) async fn run(store: &dyn Store) {
    api_keys_are_found_by_hash_and_unique_by_it(store).await;
    deliveries_commit_with_the_order_change(store).await;
    an_idempotency_key_is_reserved_once(store).await;
}

fn api_key(
    n: u64,
    vendor: crate::model::VendorId,
    user: crate::model::UserId,
    hash: &str,
) -> ApiKey {
    ApiKey {
        id: ApiKeyId::from_uuid(id(n)),
        vendor_id: vendor,
        user_id: user,
        name: format!("key {n}"),
        prefix: "mdx_abcdefgh".into(),
        hash: hash.into(),
        created_at: t0(),
        last_used_at: None,
        revoked_at: None,
        version: 1,
    }
}

async fn api_keys_are_found_by_hash_and_unique_by_it(store: &dyn Store) {
    let owner = user(9001, "keys@example.com", Role::Vendor);
    let v = vendor(9002, owner.id);
    let other = vendor(9003, owner.id);
    store
        .commit(vec![
            Write::User(owner.clone()),
            Write::Vendor(v.clone()),
            Write::Vendor(other.clone()),
        ])
        .await
        .unwrap();
    let first = api_key(9010, v.id, owner.id, &"a".repeat(64));
    let second = api_key(9011, v.id, owner.id, &"b".repeat(64));
    let elsewhere = api_key(9012, other.id, owner.id, &"c".repeat(64));
    store
        .commit(vec![
            Write::ApiKey(first.clone()),
            Write::ApiKey(second.clone()),
            Write::ApiKey(elsewhere.clone()),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.api_key_by_hash(&"b".repeat(64)).await.unwrap(),
        Some(second.clone()),
        "a key is found by its hash"
    );
    assert_eq!(store.api_key_by_hash(&"d".repeat(64)).await.unwrap(), None);
    assert_eq!(store.api_key(first.id).await.unwrap(), Some(first.clone()));
    let listed = store.api_keys(v.id, Page::first(10)).await.unwrap();
    assert_eq!(
        listed.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![second.id, first.id],
        "a pharmacy's keys, newest first, no one else's"
    );
    let after = store
        .api_keys(
            v.id,
            Page {
                limit: 10,
                after: Some(second.id),
            },
        )
        .await
        .unwrap();
    assert_eq!(after.len(), 1, "pages continue after the cursor");
    let clash = api_key(9013, v.id, owner.id, &"a".repeat(64));
    assert!(
        matches!(
            store.commit(vec![Write::ApiKey(clash.clone())]).await,
            Err(StoreError::Duplicate(UniqueKey::ApiKeyHash))
        ),
        "two keys cannot share a hash"
    );
    assert_eq!(store.api_key(clash.id).await.unwrap(), None);
    let revoked = ApiKey {
        revoked_at: Some(t0()),
        version: 2,
        ..first.clone()
    };
    store
        .commit(vec![Write::ApiKey(revoked.clone())])
        .await
        .unwrap();
    assert!(
        matches!(
            store.commit(vec![Write::ApiKey(revoked.clone())]).await,
            Err(StoreError::Conflict)
        ),
        "versions guard keys as any record"
    );
    assert_eq!(
        store.api_key_by_hash(&"a".repeat(64)).await.unwrap(),
        Some(revoked)
    );
}

fn delivery(n: u64, webhook: &Webhook, order: &crate::model::Order, sequence: u32) -> Delivery {
    Delivery {
        id: DeliveryId::from_uuid(id(n)),
        event_id: id(n + 500),
        event: WebhookEvent::StatusChanged,
        webhook_id: webhook.id,
        vendor_id: webhook.vendor_id,
        order_id: order.id,
        order: order.clone(),
        sequence,
        created_at: t0(),
        state: DeliveryState::Pending,
        attempts: 0,
        next_attempt_at: t0(),
        leased_until: None,
        log: Vec::new(),
        version: 1,
    }
}

async fn deliveries_commit_with_the_order_change(store: &dyn Store) {
    let owner = user(9101, "hooks@example.com", Role::Vendor);
    let customer = user(9102, "hooks-customer@example.com", Role::User);
    let v = vendor(9103, owner.id);
    let hook = Webhook {
        id: WebhookId::from_uuid(id(9104)),
        vendor_id: v.id,
        url: "https://shop.example.com/hook".into(),
        events: vec![],
        all: true,
        secret: "whsec_test".into(),
        created_at: t0(),
        secret_rotated_at: None,
        deleted_at: None,
        version: 1,
    };
    let o = order(9105, v.id, customer.id, t0());
    store
        .commit(vec![
            Write::User(owner),
            Write::User(customer),
            Write::Vendor(v.clone()),
            Write::Webhook(hook.clone()),
            Write::Order(o.clone()),
        ])
        .await
        .unwrap();
    assert_eq!(store.webhook(hook.id).await.unwrap(), Some(hook.clone()));
    assert_eq!(
        store.webhooks(v.id, Page::first(5)).await.unwrap(),
        vec![hook.clone()]
    );
    let accepted = crate::model::Order {
        status: OrderStatus::Accepted,
        version: 2,
        ..o.clone()
    };
    // A stale order write takes its deliveries down with it.
    let lost = delivery(9110, &hook, &accepted, 0);
    let stale = crate::model::Order {
        version: 5,
        ..accepted.clone()
    };
    assert!(matches!(
        store
            .commit(vec![Write::Order(stale), Write::Delivery(lost.clone())])
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.delivery(lost.id).await.unwrap(),
        None,
        "a delivery is written only with its order change"
    );
    let first = delivery(9111, &hook, &accepted, 0);
    let second = delivery(9112, &hook, &accepted, 1);
    store
        .commit(vec![
            Write::Order(accepted.clone()),
            Write::Delivery(first.clone()),
            Write::Delivery(second.clone()),
        ])
        .await
        .unwrap();
    assert_eq!(
        store
            .pending_deliveries(10)
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect::<Vec<_>>(),
        vec![first.id, second.id],
        "the queue is oldest first"
    );
    let leased = Delivery {
        leased_until: Some(t0() + Duration::seconds(30)),
        version: 2,
        ..first.clone()
    };
    store
        .commit(vec![Write::Delivery(leased.clone())])
        .await
        .unwrap();
    assert!(
        matches!(
            store.commit(vec![Write::Delivery(leased.clone())]).await,
            Err(StoreError::Conflict)
        ),
        "of two instances claiming one delivery, one wins"
    );
    let done = Delivery {
        state: DeliveryState::Delivered,
        leased_until: None,
        attempts: 1,
        version: 3,
        ..leased
    };
    store
        .commit(vec![Write::Delivery(done.clone())])
        .await
        .unwrap();
    assert_eq!(
        store
            .pending_deliveries(10)
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect::<Vec<_>>(),
        vec![second.id],
        "a finished delivery leaves the queue"
    );
    assert_eq!(store.pending_deliveries(0).await.unwrap(), vec![]);
    assert_eq!(
        store
            .deliveries(hook.id, Page::first(10))
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect::<Vec<_>>(),
        vec![second.id, first.id],
        "an endpoint's log is newest first"
    );
    assert_eq!(store.delivery(first.id).await.unwrap(), Some(done));
    let finished = Delivery {
        state: DeliveryState::Failed,
        version: 2,
        ..second
    };
    store.commit(vec![Write::Delivery(finished)]).await.unwrap();
    assert_eq!(store.pending_deliveries(10).await.unwrap(), vec![]);
}

async fn an_idempotency_key_is_reserved_once(store: &dyn Store) {
    let owner = user(9201, "idem@example.com", Role::User);
    let held = IdempotencyRecord {
        id: idempotency_id(owner.id, "key-1"),
        user_id: owner.id,
        fingerprint: "f".repeat(64),
        state: IdempotencyState::Held {
            until: t0() + Duration::seconds(60),
        },
        created_at: t0(),
        expires_at: t0() + Duration::hours(24),
        version: 1,
    };
    assert_eq!(store.idempotency(held.id).await.unwrap(), None);
    store
        .commit(vec![Write::Idempotency(held.clone())])
        .await
        .unwrap();
    assert!(
        matches!(
            store.commit(vec![Write::Idempotency(held.clone())]).await,
            Err(StoreError::Conflict)
        ),
        "a key is reserved by one request"
    );
    let answered = IdempotencyRecord {
        state: IdempotencyState::Answered {
            status: 201,
            content_type: "application/json".into(),
            body: "{\"id\":\"x\",\"text\":\"ü\\u0000\"}".into(),
        },
        version: 2,
        ..held.clone()
    };
    store
        .commit(vec![Write::Idempotency(answered.clone())])
        .await
        .unwrap();
    assert_eq!(store.idempotency(held.id).await.unwrap(), Some(answered));
    let young = IdempotencyRecord {
        id: idempotency_id(owner.id, "key-2"),
        expires_at: t0() + Duration::hours(48),
        ..held.clone()
    };
    store
        .commit(vec![Write::Idempotency(young.clone())])
        .await
        .unwrap();
    assert_eq!(
        store
            .prune_idempotency(t0() + Duration::hours(24))
            .await
            .unwrap(),
        0,
        "a key expiring exactly at the bound stays"
    );
    assert_eq!(
        store
            .prune_idempotency(t0() + Duration::hours(25))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.idempotency(held.id).await.unwrap(), None);
    assert_eq!(store.idempotency(young.id).await.unwrap(), Some(young));
}
