//! Integrations: the outbox rows an order's life writes, and idempotency keys over time.

use super::*;
use crate::integrations::{DeliveryState, WebhookEvent};

fn endpoint(events: &[&str]) -> NewWebhook {
    NewWebhook {
        url: "https://shop.example.com/medex".into(),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
    }
}

/// An endpoint of pharmacy A's deliveries, in the order they are sent.
async fn log(w: &World, id: WebhookId) -> Vec<crate::integrations::Delivery> {
    let mut log = w
        .medex
        .webhook_deliveries(&w.admin, w.vendor_a_id, id, Page::first(50))
        .await
        .unwrap();
    log.sort_by_key(|d| (d.order.version, d.sequence));
    log
}

#[test]
fn an_orders_life_writes_one_delivery_per_event_and_endpoint_in_order() {
    block_on(async {
        let w = World::in_memory(41).await;
        let m = &w.medex;
        let all = m
            .create_webhook(&w.vendor_a, w.vendor_a_id, endpoint(&["*"]))
            .await
            .unwrap();
        let delivered_only = m
            .create_webhook(&w.vendor_a, w.vendor_a_id, endpoint(&["order.delivered"]))
            .await
            .unwrap();
        // Another pharmacy's endpoint hears nothing of pharmacy A's orders.
        let elsewhere = m
            .create_webhook(&w.vendor_b, w.vendor_b_id, endpoint(&["*"]))
            .await
            .unwrap();
        let order = w.order_in(OrderStatus::Delivered).await;
        let events: Vec<WebhookEvent> = log(&w, all.id).await.iter().map(|d| d.event).collect();
        use WebhookEvent::*;
        assert_eq!(
            events,
            [
                OrderCreated,
                StatusChanged,
                StatusChanged,
                DriverAssigned,
                StatusChanged,
                StatusChanged,
                StatusChanged,
                Delivered,
            ],
            "created, accepted, assigned, picked up, out for delivery, delivered"
        );
        let only = log(&w, delivered_only.id).await;
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].event, Delivered);
        assert_eq!(only[0].order.status, OrderStatus::Delivered);
        assert_eq!(only[0].order_id, order.id);
        assert!(only.iter().all(|d| d.state == DeliveryState::Pending));
        assert!(
            m.webhook_deliveries(&w.vendor_b, w.vendor_b_id, elsewhere.id, Page::first(5))
                .await
                .unwrap()
                .is_empty()
        );
        // Other pharmacies and customers cannot read the log.
        assert_eq!(
            m.webhook_deliveries(&w.vendor_b, w.vendor_a_id, all.id, Page::first(5))
                .await
                .unwrap_err()
                .code(),
            "not_found"
        );
        assert_eq!(
            m.webhook_deliveries(&w.customers[0], w.vendor_a_id, all.id, Page::first(5))
                .await
                .unwrap_err()
                .code(),
            "forbidden"
        );
    });
}

#[test]
fn a_failed_order_commit_writes_no_delivery() {
    block_on(async {
        let store = Arc::new(crate::testkit::FlakyStore::default());
        let w = World::with(Options {
            store: Some(store.clone()),
            ..Options::default()
        })
        .await;
        let m = &w.medex;
        let hook = m
            .create_webhook(&w.vendor_a, w.vendor_a_id, endpoint(&["*"]))
            .await
            .unwrap();
        let order = w.order_in(OrderStatus::Pending).await;
        store.set_losing_races(true);
        let lost = m
            .transition(&w.vendor_a, order.id, Transition::to(OrderStatus::Accepted))
            .await;
        assert!(lost.is_err());
        store.set_losing_races(false);
        let log = m
            .webhook_deliveries(&w.vendor_a, w.vendor_a_id, hook.id, Page::first(10))
            .await
            .unwrap();
        assert_eq!(
            log.iter().map(|d| d.event).collect::<Vec<_>>(),
            [WebhookEvent::OrderCreated],
            "the lost change left no delivery behind"
        );
    });
}

#[test]
fn an_idempotency_key_is_forgotten_after_a_day_and_taken_over_after_its_hold() {
    block_on(async {
        let w = World::in_memory(42).await;
        let m = &w.medex;
        let me = &w.customers[0];
        let Idempotent::Run(held) = m.begin_idempotent(me, "k", "fp").await.unwrap() else {
            panic!("the first request runs");
        };
        // While it runs, the same key is in use.
        assert_eq!(
            m.begin_idempotent(me, "k", "fp").await.unwrap_err().code(),
            "idempotency_key_in_use"
        );
        // A request that died with its instance is taken over once its hold has passed.
        w.clock().advance(Duration::seconds(61));
        let Idempotent::Run(again) = m.begin_idempotent(me, "k", "fp").await.unwrap() else {
            panic!("the hold ran out");
        };
        assert_eq!(again.created_at, held.created_at);
        m.finish_idempotent(again, 201, "application/json", "{}")
            .await
            .unwrap();
        assert!(matches!(
            m.begin_idempotent(me, "k", "fp").await.unwrap(),
            Idempotent::Replay { status: 201, .. }
        ));
        assert_eq!(
            m.begin_idempotent(me, "k", "other")
                .await
                .unwrap_err()
                .code(),
            "idempotency_key_reused"
        );
        // A day later the key is new again, and the sweep removes what expired.
        w.clock().advance(Duration::hours(24));
        assert!(matches!(
            m.begin_idempotent(me, "k", "other").await.unwrap(),
            Idempotent::Run(_)
        ));
        w.clock().advance(Duration::hours(25));
        let swept = m
            .sweep("me", Duration::days(30), Duration::hours(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(swept.idempotency_keys, 1);
    });
}
