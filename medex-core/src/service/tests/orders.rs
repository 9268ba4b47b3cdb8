//! Orders: pricing, validation and scoped lists.

use super::*;

#[test]
fn order_is_priced_and_numbered_by_the_server() {
    block_on(async {
        let w = World::in_memory(1).await;
        let order = placed_order(&w).await;
        assert!(order.order_number.starts_with("ORD-") && order.order_number.len() == 12);
        assert_eq!(order.tracking_token.len(), 22);
        let km = order.estimated_distance_km.unwrap();
        assert!((km - 2.6).abs() < 0.2, "{km}");
        assert_eq!(order.delivery_fee, SystemConfig::default().tariff.fee(km));
        assert_eq!(order.status_history.len(), 1);
        assert_eq!(order.pickup_address, "1 Main St");
        assert!(matches!(w.events().as_slice(), [Event::OrderCreated(o)] if o.id == order.id));
    });
}

#[test]
fn invalid_orders_name_every_bad_field() {
    block_on(async {
        let w = World::in_memory(2).await;
        let mut bad = new_order(w.vendor_a_id);
        bad.delivery_latitude = 91.0;
        bad.customer_name = " ".into();
        bad.items = vec![NewItem {
            name: "x".into(),
            quantity: -1,
            notes: None,
        }];
        let Err(Error::Invalid(errors)) = w.medex.create_order(&w.customers[0], bad).await else {
            panic!()
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["delivery_latitude", "customer_name", "items[0].quantity"]
        );
        assert!(matches!(
            w.medex
                .create_order(&w.vendor_a, new_order(w.vendor_a_id))
                .await,
            Err(Error::Forbidden)
        ));
    });
}

#[test]
fn lists_are_scoped_to_the_actor() {
    block_on(async {
        let w = World::in_memory(9).await;
        let mine = placed_order(&w).await;
        w.medex
            .create_order(&w.customers[1], new_order(w.vendor_a_id))
            .await
            .unwrap();
        let page = Page::first(50);
        let own = w
            .medex
            .list_orders(&w.customers[0], OrderQuery::default(), page)
            .await
            .unwrap();
        assert_eq!(own.iter().map(|o| o.id).collect::<Vec<_>>(), vec![mine.id]);
        assert_eq!(
            w.medex
                .list_orders(&w.vendor_a, OrderQuery::default(), page)
                .await
                .unwrap()
                .len(),
            2
        );
        assert!(
            w.medex
                .list_orders(&w.vendor_b, OrderQuery::default(), page)
                .await
                .unwrap()
                .is_empty()
        );
        let spy = OrderQuery {
            vendor_id: Some(w.vendor_a_id),
            ..Default::default()
        };
        assert!(
            w.medex
                .list_orders(&w.vendor_b, spy, page)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            w.medex
                .list_orders(&w.admin, OrderQuery::default(), page)
                .await
                .unwrap()
                .len(),
            2
        );
        let fleet = w
            .medex
            .list_drivers(&w.vendor_a, DriverQuery::default(), Page::first(50))
            .await
            .unwrap();
        assert_eq!(fleet.len(), 2);
        assert!(matches!(
            w.medex
                .list_drivers(&w.customers[0], DriverQuery::default(), Page::first(50))
                .await,
            Err(Error::Forbidden)
        ));
    });
}
