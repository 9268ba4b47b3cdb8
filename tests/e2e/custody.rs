//! The chain of custody as a third party checks it: records verified from their JSON and the
//! published keys alone (the test's own implementation, and the README's Python when Python
//! with `cryptography` is at hand); records edited in storage found out, hashes recomputed or
//! not; a rotated key keeps old records verifiable.

use medex_core::store::Write;
use serde_json::{Value, json};

use crate::support::*;

/// An order of the customer at out_for_delivery with the first driver, who reported a position.
async fn order_on_its_way(w: &World) -> String {
    let (order, _) = w.order_in("out_for_delivery", &w.driver).await;
    w.server
        .post(
            &format!("/api/drivers/{}/location", w.driver.id),
            Some(&w.driver.who.token),
            json!({"latitude": 52.5271, "longitude": 13.4044, "accuracy": 6.0}),
        )
        .await
        .expect(200);
    order
}

async fn record(w: &World, order: &str) -> Value {
    let r = w
        .server
        .get(&format!("/api/orders/{order}/custody"), &w.customer.token)
        .await;
    r.expect(200);
    r.json
}

/// Writes `order` straight into the server's store, as someone with write access to it could.
async fn overwrite(s: &TestServer, order: &medex_core::model::Order) {
    s.medex()
        .store()
        .commit(vec![Write::Order(order.clone())])
        .await
        .unwrap();
}

async fn keys(s: &TestServer) -> Value {
    let r = s.public("/api/custody/keys").await;
    r.expect(200);
    r.json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_edited_in_storage_fails_the_check_even_with_hashes_recomputed() {
    let w = World::new().await;
    let s = &w.server;
    let order = order_on_its_way(&w).await;
    s.patch(
        &format!("/api/orders/{order}"),
        &w.driver.who.token,
        json!({"status": "failed", "reason": "recipient_absent"}),
    )
    .await
    .expect(200);
    let honest = record(&w, &order).await;
    let published = keys(s).await;
    assert_eq!(honest["verified"], true, "{honest}");
    verify_custody(&honest, &published).expect("the honest record verifies");
    python_check(&honest, &published, true).await;

    // Someone with write access to the store rewrites the failure as the customer's refusal.
    let stored = s.stored_order(&order).await;
    let mut edited = stored.clone();
    let failed = edited.status_history.len() - 1;
    edited.status_history[failed].reason = Some("refused".into());
    edited.version += 1;
    overwrite(s, &edited).await;
    let caught = record(&w, &order).await;
    assert_eq!(caught["verified"], false);
    assert_eq!(caught["entries"][failed]["reason"], "refused");
    assert!(verify_custody(&caught, &published).is_err());
    python_check(&caught, &published, false).await;

    // … and, knowing the scheme, recomputes every hash: the signature over the head betrays it.
    let mut relinked = Vec::new();
    for entry in edited.status_history.clone() {
        let entry = medex_core::custody::link(edited.id, &relinked, entry);
        relinked.push(entry);
    }
    edited.status_history = relinked;
    edited.version += 1;
    overwrite(s, &edited).await;
    let caught = record(&w, &order).await;
    assert_eq!(caught["verified"], false);
    let error = verify_custody(&caught, &published).expect_err("the edit is found out");
    assert!(error.contains("signature"), "{error}");
    python_check(&caught, &published, false).await;

    // Garbage in storage is no reason for a 5xx: the record reads, and does not verify.
    let mut garbled = edited.clone();
    garbled.status_history[0].hash = "not a hash".into();
    if let Some(seal) = garbled.custody_seal.as_mut() {
        seal.signature = "%%%".into();
    }
    garbled.version += 1;
    overwrite(s, &garbled).await;
    assert_eq!(record(&w, &order).await["verified"], false);

    // Strangers learn nothing of the record.
    for who in [
        &w.other_customer,
        &w.other_vendor.owner,
        &w.other_driver.who,
    ] {
        let r = s
            .get(&format!("/api/orders/{order}/custody"), &who.token)
            .await;
        r.expect(404);
        r.assert_error_format("custody by a stranger");
    }
    let r = s
        .get("/api/orders/not-an-id/custody", &w.customer.token)
        .await;
    r.expect(422);
    let r = s.public(&format!("/api/orders/{order}/custody")).await;
    r.expect(401);
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_stays_listed_and_old_records_still_verify() {
    let mut w = World::new().await;
    let order = order_on_its_way(&w).await;
    let before = record(&w, &order).await;
    let first_keys = keys(&w.server).await;
    assert_eq!(first_keys.as_array().map(Vec::len), Some(1));
    let first_key = before["key_id"].as_str().unwrap().to_owned();
    assert_eq!(first_keys[0]["key_id"], first_key.as_str());
    if w.server.uses_postgres() {
        // Instances on PostgreSQL share a configured key (no key file): the operator rotates by
        // setting a new MEDEX_CUSTODY_KEY and listing the old public key as a former one.
        let old_public = first_keys[0]["public_key"].as_str().unwrap().to_owned();
        let new_seed = "BwwRFhsgJSovNDk+Q0hNUldcYWZrcHV6f4SJjpOYnaI=";
        w.server
            .restart(&[
                ("MEDEX_CUSTODY_KEY", new_seed),
                ("MEDEX_CUSTODY_FORMER_KEYS", &old_public),
            ])
            .await;
        let rotated_keys = keys(&w.server).await;
        assert_eq!(rotated_keys.as_array().map(Vec::len), Some(2));
        let old = record(&w, &order).await;
        assert_eq!(
            old["verified"], true,
            "signed by the former key, still listed"
        );
        verify_custody(&old, &rotated_keys).unwrap();
        w.server.stop().await;
        return;
    }
    let file = w.server.dir.path().join(medex::server::CUSTODY_KEYS_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "only the server's account reads the key"
        );
    }

    w.server.restart(&[]).await;
    assert_eq!(keys(&w.server).await, first_keys, "a restart keeps the key");
    // The operator rotates (`server --rotate-custody-key`); the new key signs after a restart.
    let rotation = medex::server::rotate_custody_key(w.server.dir.path()).expect("the key rotates");
    assert_eq!(keys(&w.server).await, first_keys, "until the restart");
    w.server.restart(&[]).await;
    assert_eq!(rotation.former_key_id, first_key);
    let rotated_keys = keys(&w.server).await;
    let ids: Vec<&str> = rotated_keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [rotation.key_id.as_str(), first_key.as_str()]);
    let old = record(&w, &order).await;
    assert_eq!(
        old["verified"], true,
        "signed by the former key, still listed"
    );
    assert_eq!(old["key_id"], first_key.as_str());
    verify_custody(&old, &rotated_keys).unwrap();

    // New entries are signed with the new key.
    w.set_status(&order, &w.driver.who.token, "delivered")
        .await
        .expect(200);
    let after = record(&w, &order).await;
    assert_eq!(after["verified"], true);
    assert_eq!(after["key_id"], rotation.key_id.as_str());
    verify_custody(&after, &rotated_keys).unwrap();
    assert!(
        verify_custody(&after, &first_keys).is_err(),
        "the old list does not know the new key"
    );

    // Setting MEDEX_CUSTODY_KEY later keeps the data directory's keys as former ones.
    let configured = "BwwRFhsgJSovNDk+Q0hNUldcYWZrcHV6f4SJjpOYnaI=";
    w.server.restart(&[("MEDEX_CUSTODY_KEY", configured)]).await;
    let configured_keys = keys(&w.server).await;
    assert_eq!(configured_keys.as_array().map(Vec::len), Some(3));
    assert_eq!(record(&w, &order).await["verified"], true);
    w.server.stop().await;
}

/// Runs the README's Python verifier on `record`, if Python with `cryptography` is installed:
/// it must print `verified` and succeed exactly when `valid`.
async fn python_check(record: &Value, keys: &Value, valid: bool) {
    let readme = include_str!("../../README.md");
    let script = readme
        .split("```python\n")
        .find(|block| block.starts_with("# verify_custody.py"))
        .and_then(|block| block.split("```").next())
        .expect("the README shows the Python verifier");
    // Short child processes: blocking a worker for them is fine in a test.
    let probe = std::process::Command::new("python3")
        .args(["-c", "import cryptography"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        println!("python3 with cryptography not found: the README's verifier is not run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (script_path, record_path, keys_path) = (
        dir.path().join("verify_custody.py"),
        dir.path().join("record.json"),
        dir.path().join("keys.json"),
    );
    std::fs::write(&script_path, script).unwrap();
    std::fs::write(&record_path, record.to_string()).unwrap();
    std::fs::write(&keys_path, keys.to_string()).unwrap();
    let out = std::process::Command::new("python3")
        .arg(&script_path)
        .arg(&record_path)
        .arg(&keys_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        (out.status.success(), stdout.trim() == "verified"),
        (valid, valid),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
