//! Chain of custody (DESIGN §10): failed attempts and returns with their effects on drivers,
//! handover codes, per-order requirements, proofs kept, and the signed record.

use super::*;
use crate::custody::CustodyRecord;
use crate::error::HandoverRefusal;
use crate::testkit::CUSTODY_SEED;

fn failed(reason: Option<&str>, note: Option<&str>) -> Transition {
    Transition {
        reason: reason.map(str::to_owned),
        note: note.map(str::to_owned),
        ..Transition::to(OrderStatus::Failed)
    }
}

fn delivered(code: Option<&str>) -> Transition {
    Transition {
        handover_code: code.map(str::to_owned),
        ..Transition::to(OrderStatus::Delivered)
    }
}

fn code_of(result: Result<Order>) -> String {
    match result {
        Err(e) => e.code().to_owned(),
        Ok(o) => format!("ok: {}", o.status),
    }
}

fn invalid_fields(result: Result<Order>) -> Vec<String> {
    match result {
        Err(Error::Invalid(fields)) => fields.into_iter().map(|f| f.field).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn a_failed_attempt_needs_a_known_reason_and_a_note_for_other() {
    block_on(async {
        let w = World::in_memory(21).await;
        let (driver, _) = w.drivers[0];
        let order = w.order_in(OrderStatus::OutForDelivery).await;
        let m = &w.medex;
        for (t, fields) in [
            (failed(None, None), vec!["reason"]),
            (failed(Some("  "), None), vec!["reason"]),
            (failed(Some("dog"), None), vec!["reason"]),
            (failed(Some("RECIPIENT_ABSENT"), None), vec!["reason"]),
            (failed(Some("other"), None), vec!["note"]),
            (failed(Some("other"), Some("   ")), vec!["note"]),
            (failed(Some("other"), Some(&"x".repeat(501))), vec!["note"]),
        ] {
            assert_eq!(
                invalid_fields(m.transition(&driver, order.id, t.clone()).await),
                fields,
                "{t:?}"
            );
        }
        assert_eq!(m.get_order(&w.admin, order.id).await.unwrap(), order);
        let done = m
            .transition(
                &driver,
                order.id,
                failed(Some("other"), Some("gate locked")),
            )
            .await
            .unwrap();
        assert_eq!(done.status, OrderStatus::Failed);
        assert_eq!(done.failure_reason, Some(FailureReason::Other));
        let entry = done.status_history.last().unwrap();
        assert_eq!(
            (entry.reason.as_deref(), entry.note.as_deref()),
            (Some("other"), Some("gate locked"))
        );
    });
}

#[test]
fn only_the_assigned_driver_fails_and_only_the_pharmacy_takes_the_parcel_back() {
    block_on(async {
        let w = World::in_memory(22).await;
        let m = &w.medex;
        let order = w.order_in(OrderStatus::OutForDelivery).await;
        let absent = || failed(Some("recipient_absent"), None);
        let (other_driver, _) = w.drivers[1];
        let (stranger, _) = w.drivers[2];
        assert_eq!(
            code_of(m.transition(&other_driver, order.id, absent()).await),
            "not_found"
        );
        assert_eq!(
            code_of(m.transition(&stranger, order.id, absent()).await),
            "not_found"
        );
        assert_eq!(
            code_of(m.transition(&w.vendor_a, order.id, absent()).await),
            "forbidden"
        );
        assert_eq!(
            code_of(m.transition(&w.customers[0], order.id, absent()).await),
            "forbidden"
        );
        let at_pickup = w.order_for(OrderStatus::PickedUp, 1).await;
        assert_eq!(
            code_of(m.transition(&other_driver, at_pickup.id, absent()).await),
            "invalid_transition"
        );
        let (driver, _) = w.drivers[0];
        m.transition(&driver, order.id, absent()).await.unwrap();
        for who in [driver, w.customers[0]] {
            assert_eq!(
                code_of(
                    m.change_status(&who, order.id, OrderStatus::Returned, None)
                        .await
                ),
                "forbidden"
            );
        }
        assert_eq!(
            code_of(
                m.change_status(&w.vendor_b, order.id, OrderStatus::Returned, None)
                    .await
            ),
            "not_found"
        );
        assert_eq!(
            code_of(m.cancel_order(&w.admin, order.id, None).await),
            "invalid_transition",
            "a parcel out with a driver is taken back before the order ends"
        );
    });
}

#[test]
fn a_return_frees_the_driver_without_pay_and_a_new_attempt_starts_over() {
    block_on(async {
        let w = World::in_memory(23).await;
        let m = &w.medex;
        let (driver, driver_id) = w.drivers[0];
        let order = w.order_in(OrderStatus::Failed).await;
        assert_eq!(
            m.get_driver(&w.admin, driver_id).await.unwrap().status,
            DriverStatus::Busy,
            "the driver still holds the parcel"
        );
        // The driver is still a party: it reads the order and may try again.
        let again = m
            .change_status(&driver, order.id, OrderStatus::OutForDelivery, None)
            .await
            .unwrap();
        assert_eq!(again.status, OrderStatus::OutForDelivery);
        m.transition(&driver, order.id, failed(Some("refused"), None))
            .await
            .unwrap();
        w.events();
        let returned = m
            .change_status(&w.vendor_a, order.id, OrderStatus::Returned, None)
            .await
            .unwrap();
        assert_eq!(
            returned.driver_id,
            Some(driver_id),
            "who carried it is kept"
        );
        let freed = m.get_driver(&w.admin, driver_id).await.unwrap();
        assert_eq!(
            (freed.status, freed.active_order_id, freed.total_deliveries),
            (DriverStatus::Available, None, 0)
        );
        assert_eq!(freed.total_earnings, Money::ZERO);
        let events = w.events();
        assert!(matches!(
            &events[0],
            Event::OrderStatusChanged { order, previous: OrderStatus::Failed }
                if order.status == OrderStatus::Returned
        ));
        assert!(matches!(
            events[1],
            Event::DriverStatusChanged {
                status: DriverStatus::Available,
                ..
            }
        ));
        assert_eq!(
            code_of(
                m.change_status(&driver, order.id, OrderStatus::OutForDelivery, None)
                    .await
            ),
            "forbidden",
            "the driver is no party to a parcel it handed back"
        );

        let second = m
            .change_status(&w.vendor_a, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        assert_eq!(second.status, OrderStatus::Accepted);
        assert_eq!((second.attempt, second.driver_id), (2, None));
        assert_eq!(second.picked_up_at, None);
        assert_eq!(second.failure_reason, Some(FailureReason::Refused));
        let delivered = w.move_to(order.id, OrderStatus::Delivered, 1).await;
        let (_, second_driver) = w.drivers[1];
        assert_eq!(delivered.driver_id, Some(second_driver));
        assert_eq!(delivered.attempt, 2);
        let statuses: Vec<_> = delivered.status_history.iter().map(|c| c.status).collect();
        use OrderStatus::*;
        assert_eq!(
            statuses,
            [
                Pending,
                Accepted,
                DriverAssigned,
                PickedUp,
                OutForDelivery,
                Failed,
                OutForDelivery,
                Failed,
                Returned,
                Accepted,
                DriverAssigned,
                PickedUp,
                OutForDelivery,
                Delivered
            ]
        );
        let first = m.get_driver(&w.admin, driver_id).await.unwrap();
        let second = m.get_driver(&w.admin, second_driver).await.unwrap();
        assert_eq!((first.total_deliveries, second.total_deliveries), (0, 1));
        assert_eq!(second.total_earnings, delivered.delivery_fee);
    });
}

#[test]
fn a_returned_order_may_be_cancelled_by_the_pharmacy() {
    block_on(async {
        let w = World::in_memory(24).await;
        let m = &w.medex;
        let order = w.order_in(OrderStatus::Returned).await;
        assert_eq!(
            code_of(m.cancel_order(&w.customers[0], order.id, None).await),
            "invalid_transition"
        );
        let cancelled = m
            .cancel_order(&w.vendor_a, order.id, Some("customer moved away".into()))
            .await
            .unwrap();
        assert_eq!(cancelled.status, OrderStatus::Cancelled);
        assert_eq!(
            cancelled.cancel_reason.as_deref(),
            Some("customer moved away")
        );
    });
}

#[test]
fn requirements_start_from_the_pharmacy_and_can_only_be_raised() {
    block_on(async {
        let w = World::in_memory(25).await;
        let m = &w.medex;
        let place = |requirements| {
            let new = NewOrder {
                requirements,
                ..new_order(w.vendor_a_id)
            };
            m.create_order(&w.customers[0], new)
        };
        let plain = place(Requirements::default()).await.unwrap();
        assert!(!plain.require_proof_photo && !plain.require_signature);
        assert!(!plain.require_handover_code);
        let raised = place(Requirements {
            handover_code: true,
            signature: true,
            ..Requirements::default()
        })
        .await
        .unwrap();
        assert!(raised.require_handover_code && raised.require_signature);
        assert!(!raised.require_proof_photo);
        m.update_vendor(
            &w.vendor_a,
            w.vendor_a_id,
            VendorPatch {
                require_handover_code: Some(true),
                require_proof_photo: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let kept = place(Requirements::default()).await.unwrap();
        assert!(kept.require_handover_code && kept.require_proof_photo);
        // Orders placed before keep what they were placed with.
        assert_eq!(m.get_order(&w.admin, plain.id).await.unwrap(), plain);
        // Every order has a code, six digits, whether it needs it or not.
        for order in [&plain, &raised, &kept] {
            let code = order.handover_code.as_ref().unwrap().as_str();
            assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
        }
        assert!(!format!("{plain:?}").contains(plain.handover_code.as_ref().unwrap().as_str()));
    });
}

/// An order of customer 0 out for delivery with driver 0, that needs the handover code.
async fn guarded(w: &World) -> Order {
    let new = NewOrder {
        requirements: Requirements {
            handover_code: true,
            ..Requirements::default()
        },
        ..new_order(w.vendor_a_id)
    };
    let order = w.medex.create_order(&w.customers[0], new).await.unwrap();
    w.move_to(order.id, OrderStatus::OutForDelivery, 0).await
}

fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

#[test]
fn the_handover_code_is_checked_counted_and_locks_after_five_wrong() {
    block_on(async {
        let w = World::in_memory(26).await;
        let m = &w.medex;
        let (driver, driver_id) = w.drivers[0];
        let order = guarded(&w).await;
        let code = order.handover_code.clone().unwrap();
        let bad = wrong(code.as_str());
        assert_eq!(
            code_of(m.transition(&driver, order.id, delivered(None)).await),
            "handover_code_required"
        );
        for malformed in ["12345", "1234567", "12a456", "", " 12 34 "] {
            assert_eq!(
                invalid_fields(
                    m.transition(&driver, order.id, delivered(Some(malformed)))
                        .await
                ),
                ["handover_code"],
                "{malformed:?}"
            );
        }
        assert_eq!(
            m.get_order(&w.admin, order.id)
                .await
                .unwrap()
                .handover_failures,
            0,
            "no guess was made"
        );
        for tries_left in (0..5).rev() {
            let result = m.transition(&driver, order.id, delivered(Some(&bad))).await;
            assert!(
                matches!(
                    result,
                    Err(Error::Handover(HandoverRefusal::Invalid { remaining })) if remaining == tries_left
                ),
                "{result:?}"
            );
        }
        let locked = m.get_order(&w.admin, order.id).await.unwrap();
        assert_eq!(locked.handover_failures, 5);
        assert_eq!(locked.status, OrderStatus::OutForDelivery);
        assert_eq!(
            code_of(
                m.transition(&driver, order.id, delivered(Some(code.as_str())))
                    .await
            ),
            "handover_locked",
            "not even the right code delivers now"
        );
        assert_eq!(
            code_of(
                m.transition(&driver, order.id, failed(Some("recipient_absent"), None))
                    .await
            ),
            "handover_locked"
        );
        assert_eq!(
            m.get_order(&w.admin, order.id).await.unwrap(),
            locked,
            "refusals while locked change nothing"
        );
        let driver_record = m.get_driver(&w.admin, driver_id).await.unwrap();
        assert_eq!(driver_record.total_deliveries, 0);
        m.transition(
            &driver,
            order.id,
            failed(Some("handover_code_failed"), None),
        )
        .await
        .unwrap();
        m.change_status(&w.vendor_a, order.id, OrderStatus::Returned, None)
            .await
            .unwrap();
        // The pharmacy has the parcel back and sends it out again: a new attempt, new tries.
        m.change_status(&w.vendor_a, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        let again = w.move_to(order.id, OrderStatus::OutForDelivery, 0).await;
        assert_eq!((again.attempt, again.handover_failures), (2, 0));
        let done = m
            .transition(&driver, order.id, delivered(Some(code.as_str())))
            .await
            .unwrap();
        assert_eq!(done.status, OrderStatus::Delivered);
        let driver_record = m.get_driver(&w.admin, driver_id).await.unwrap();
        assert_eq!(driver_record.total_deliveries, 1);
    });
}

#[test]
fn an_order_that_needs_no_code_ignores_one() {
    block_on(async {
        let w = World::in_memory(27).await;
        let (driver, _) = w.drivers[0];
        let order = w.order_in(OrderStatus::OutForDelivery).await;
        let done = w
            .medex
            .transition(&driver, order.id, delivered(Some("000000")))
            .await
            .unwrap();
        assert_eq!(done.status, OrderStatus::Delivered);
    });
}

#[test]
fn proofs_are_kept_with_their_digests_and_bound_at_delivery() {
    block_on(async {
        let w = World::in_memory(28).await;
        let m = &w.medex;
        let (driver, driver_id) = w.drivers[0];
        let order = w.order_in(OrderStatus::OutForDelivery).await;
        let files: [(ProofKind, &str, &[u8]); 3] = [
            (ProofKind::Photo, "/api/uploads/a.jpg", b"first photo"),
            (ProofKind::Signature, "/api/uploads/b.png", b"signature"),
            (ProofKind::Photo, "/api/uploads/c.jpg", b"second photo"),
        ];
        for (kind, url, bytes) in files {
            w.clock().advance(Duration::seconds(5));
            m.attach_proof(&driver, order.id, kind, url.into(), Sha256::digest(bytes))
                .await
                .unwrap();
        }
        let with_proofs = m.get_order(&w.admin, order.id).await.unwrap();
        let kept: Vec<_> = with_proofs
            .proofs
            .iter()
            .map(|p| (p.kind, p.url.as_str(), p.sha256))
            .collect();
        assert_eq!(
            kept,
            files.map(|(kind, url, bytes)| (kind, url, Sha256::digest(bytes)))
        );
        assert!(
            with_proofs
                .proofs
                .windows(2)
                .all(|p| p[0].uploaded_at < p[1].uploaded_at)
        );
        assert_eq!(
            with_proofs.proof_photo_url.as_deref(),
            Some("/api/uploads/c.jpg"),
            "the latest photo"
        );
        assert_eq!(
            with_proofs.signature_url.as_deref(),
            Some("/api/uploads/b.png")
        );
        // The driver's position goes into the entries it makes.
        w.clock().advance(Duration::seconds(5));
        m.record_location(
            &driver,
            driver_id,
            FixInput {
                latitude: 52.521,
                longitude: 13.4105,
                accuracy: Some(5.0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let done = m
            .change_status(&driver, order.id, OrderStatus::Delivered, None)
            .await
            .unwrap();
        let entry = done.status_history.last().unwrap();
        assert_eq!(
            entry.proof_sha256,
            files.map(|(_, _, bytes)| Sha256::digest(bytes))
        );
        let location = entry.location.as_ref().expect("the driver's position");
        assert_eq!(
            (location.latitude.as_str(), location.longitude.as_str()),
            ("52.521000", "13.410500")
        );
        let accepted = &done.status_history[1];
        assert_eq!(accepted.actor_role, Role::Vendor);
        assert!(accepted.location.is_none() && accepted.proof_sha256.is_empty());
        for (i, entry) in done.status_history.iter().enumerate() {
            if !matches!(entry.status, OrderStatus::Delivered) {
                assert!(entry.proof_sha256.is_empty(), "entry {i}");
            }
        }
        assert_eq!(
            code_of(
                m.attach_proof(
                    &driver,
                    order.id,
                    ProofKind::Photo,
                    "/api/uploads/d.jpg".into(),
                    Sha256::digest(b"late"),
                )
                .await
            ),
            "not_found",
            "after delivery the driver is no party to it"
        );
    });
}

#[test]
fn an_order_keeps_a_bounded_number_of_proofs() {
    block_on(async {
        let w = World::in_memory(29).await;
        let (driver, _) = w.drivers[0];
        let order = w.order_in(OrderStatus::PickedUp).await;
        for n in 0..crate::service::delivery::MAX_PROOFS {
            w.medex
                .attach_proof(
                    &driver,
                    order.id,
                    ProofKind::Photo,
                    format!("/api/uploads/{n}.jpg"),
                    Sha256::digest(&n.to_le_bytes()),
                )
                .await
                .unwrap();
        }
        let more = w
            .medex
            .attach_proof(
                &driver,
                order.id,
                ProofKind::Signature,
                "/api/uploads/more.png".into(),
                Sha256::digest(b"more"),
            )
            .await;
        assert_eq!(code_of(more), "too_many_proofs");
    });
}

#[test]
fn every_move_extends_a_signed_chain_that_the_parties_may_read() {
    block_on(async {
        let w = World::in_memory(30).await;
        let m = &w.medex;
        let order = w.order_in(OrderStatus::Returned).await;
        for who in [w.admin, w.customers[0], w.vendor_a, w.drivers[0].0] {
            let record = m.custody_record(&who, order.id).await.unwrap();
            assert!(record.verified, "{who:?}");
            assert_eq!(record.entries, order.status_history);
        }
        for who in [w.customers[1], w.vendor_b, w.drivers[1].0, w.drivers[2].0] {
            assert_eq!(
                m.custody_record(&who, order.id).await.unwrap_err().code(),
                "not_found"
            );
        }
        let keys = m.custody_keys();
        assert_eq!(keys.len(), 1);
        let ours = CustodyKeys::from_seed(CUSTODY_SEED);
        assert_eq!(keys[0].public_key, ours.public_key());
        assert_eq!(
            order.custody_seal.as_ref().map(|s| s.key_id.as_str()),
            Some(ours.current_key_id())
        );

        // An edit in the store, even with the hashes recomputed, is found out.
        let mut tampered = order.clone();
        tampered.status_history[5].reason = Some("recipient_refused".into());
        let mut relinked = Vec::new();
        for entry in tampered.status_history.clone() {
            let entry = crate::custody::link(tampered.id, &relinked, entry);
            relinked.push(entry);
        }
        tampered.status_history = relinked;
        tampered.version += 1;
        m.store()
            .commit(vec![Write::Order(tampered.clone())])
            .await
            .unwrap();
        let record = m.custody_record(&w.admin, order.id).await.unwrap();
        assert!(!record.verified);
        assert_eq!(record.entries, tampered.status_history);
        assert!(CustodyRecord::check(&order, &ours).verified);
    });
}

#[test]
fn the_daily_report_counts_failed_attempts_and_returns_per_driver() {
    block_on(async {
        let w = World::in_memory(31).await;
        let m = &w.medex;
        let (driver, driver_id) = w.drivers[0];
        let order = w.order_in(OrderStatus::Failed).await;
        m.change_status(&driver, order.id, OrderStatus::OutForDelivery, None)
            .await
            .unwrap();
        m.transition(&driver, order.id, failed(Some("damaged"), None))
            .await
            .unwrap();
        m.change_status(&w.vendor_a, order.id, OrderStatus::Returned, None)
            .await
            .unwrap();
        w.order_for(OrderStatus::Failed, 1).await;
        let utc = FixedOffset::east_opt(0).unwrap();
        let report = m
            .vendor_daily_report(&w.vendor_a, w.vendor_a_id, start().date_naive(), utc)
            .await
            .unwrap();
        assert_eq!((report.failed_attempts, report.returns), (3, 1));
        let figures = |id| {
            report
                .drivers
                .iter()
                .find(|d| d.driver_id == id)
                .map(|d| (d.failed_attempts, d.returns, d.deliveries))
        };
        assert_eq!(figures(driver_id), Some((2, 1, 0)));
        assert_eq!(figures(w.drivers[1].1), Some((1, 0, 0)));
        let csv = reports::vendor_daily_csv(&report);
        assert!(csv.contains(r#""failed_attempts","returns""#), "{csv}");
        let stats = m
            .driver_statistics(
                &w.vendor_a,
                w.vendor_a_id,
                start().date_naive(),
                start().date_naive(),
                utc,
            )
            .await
            .unwrap();
        let stat = |id| {
            stats
                .iter()
                .find(|d| d.driver_id == id)
                .map(|d| (d.failed_attempts, d.returns))
        };
        assert_eq!(
            (stat(driver_id), stat(w.drivers[1].1), stats.len()),
            (Some((2, 1)), Some((1, 0)), 2)
        );
    });
}
