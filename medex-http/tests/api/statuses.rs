//! The document tells the whole truth about statuses: every operation lists the statuses its
//! inputs imply, each error status with the error body, and every status the server answers —
//! provoked on purpose, or met by each role with a plausible request, with storage up, down or
//! losing races to write —
//! is one the operation lists. Links name operations and parameters that exist.

use serde_json::{Value, json};

use crate::access::concrete;
use crate::helpers::*;
use crate::webhooks::{SECRET, sign};

fn document() -> Value {
    serde_json::to_value(medex_http::openapi()).unwrap()
}

/// Every operation: (method, path, operation object).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((method.clone(), path.clone(), op.clone()));
        }
    }
    ops
}

fn takes(op: &Value, location: &str) -> bool {
    op["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == location))
}

/// The statuses an operation must list because of what it takes (the rule of `openapi.rs`,
/// restated from the document's side).
fn implied(op: &Value) -> Vec<&'static str> {
    let mut statuses = Vec::new();
    if takes(op, "path") || takes(op, "query") {
        statuses.push("422");
    }
    if let Some(content) = op["requestBody"]["content"].as_object() {
        statuses.extend(["400", "413", "422"]);
        if content.len() == 1 {
            statuses.push("415");
        }
    }
    if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
        statuses.extend(["401", "503"]);
    }
    statuses
}

#[test]
fn every_operation_lists_what_its_inputs_imply_with_the_error_body() {
    let doc = document();
    let ops = operations(&doc);
    assert_eq!(ops.len(), 54, "operations: {}", ops.len());
    for (method, path, op) in &ops {
        let responses = op["responses"].as_object().unwrap();
        for status in implied(op) {
            assert!(
                responses.contains_key(status),
                "{method} {path} does not list {status}"
            );
        }
        for (status, response) in responses {
            if !status.starts_with('4') && !status.starts_with('5') {
                continue;
            }
            let schema = &response["content"]["application/json"]["schema"]["$ref"];
            // Health answers its own body when the storage fails: that is its point.
            let expected = if path == "/api/health" {
                "#/components/schemas/HealthView"
            } else {
                "#/components/schemas/ErrorBody"
            };
            assert_eq!(schema, expected, "{method} {path} {status}");
            assert!(
                !response["description"].as_str().unwrap().is_empty(),
                "{method} {path} {status}"
            );
        }
    }
}

#[test]
fn links_lead_to_operations_and_parameters_that_exist() {
    let doc = document();
    let ops = operations(&doc);
    let by_id = |id: &str| {
        ops.iter()
            .find(|(_, _, op)| op["operationId"] == id)
            .unwrap_or_else(|| panic!("no operation {id}"))
    };
    let mut links = 0;
    for (method, path, op) in &ops {
        for (status, response) in op["responses"].as_object().unwrap() {
            let Some(found) = response["links"].as_object() else {
                continue;
            };
            let body = &response["content"]["application/json"]["schema"]["$ref"];
            let component = body.as_str().unwrap().rsplit('/').next().unwrap();
            let schema = &doc["components"]["schemas"][component];
            for (name, link) in found {
                let (_, _, target) = by_id(link["operationId"].as_str().unwrap());
                for (parameter, expression) in link["parameters"].as_object().unwrap() {
                    assert!(
                        target["parameters"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|p| p["name"] == parameter.as_str()),
                        "{method} {path} {status} → {name}: no parameter {parameter}"
                    );
                    // `$response.body#/user/id` names a property path of the answer's schema.
                    let pointer = expression.as_str().unwrap();
                    let pointer = pointer.strip_prefix("$response.body#/").unwrap();
                    let mut at = schema.clone();
                    for key in pointer.split('/') {
                        at = at["properties"][key].clone();
                        if let Some(reference) = at["$ref"].as_str() {
                            let name = reference.rsplit('/').next().unwrap();
                            at = doc["components"]["schemas"][name].clone();
                        }
                        assert!(
                            !at.is_null(),
                            "{method} {path}: {pointer} is not in {component}"
                        );
                    }
                    links += 1;
                }
            }
        }
    }
    assert!(links >= 25, "{links} links");
}

/// The statuses the document lists for an operation.
fn listed(op: &Value) -> Vec<u16> {
    op["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(|s| s.parse().unwrap())
        .collect()
}

/// A request: content type and body.
type Body = (Option<&'static str>, Vec<u8>);

fn json_body(value: Value) -> Body {
    (Some("application/json"), value.to_string().into_bytes())
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

/// A plausible request for each operation that takes a body: what a client following the
/// document would send. `n` makes e-mail addresses unique.
fn plausible(w: &World, op: &Value, order: &str, n: usize, refresh: &str) -> Option<Body> {
    let email = format!("new{n}@example.test");
    let body = match op["operationId"].as_str().unwrap() {
        "register" => json!({"email": email, "password": PASSWORD, "full_name": "New"}),
        "login" => json!({"email": w.customer.email, "password": PASSWORD}),
        "refresh" | "logout" => json!({"refresh_token": refresh}),
        "change_password" => json!({"current_password": PASSWORD, "new_password": PASSWORD}),
        "create_order" => w.order_body(),
        "patch_order" => json!({"status": "accepted"}),
        "assign_driver" => json!({"driver_id": w.driver.id}),
        "respond_to_assignment" => json!({"action": "accept"}),
        "register_driver" => json!({"email": email, "password": PASSWORD, "full_name": "New",
            "vehicle_type": "car"}),
        "patch_driver" => json!({"phone": "+49 30 9876"}),
        "set_driver_status" => json!({"status": "available"}),
        "record_location" => json!({"latitude": 52.52, "longitude": 13.4}),
        "register_vendor" => json!({"email": email, "password": PASSWORD,
            "business_name": "New", "address": "2 Main St", "latitude": 52.5, "longitude": 13.4}),
        "patch_vendor" => json!({"phone": "+49 30 5555"}),
        "export_csv" => json!({}),
        "patch_user" => json!({"is_active": true}),
        "patch_config" => json!({"road_factor": 1.3}),
        "upload_proof" | "upload_signature" => {
            let (content_type, body) = multipart(&[
                ("order_id", None, None, order.as_bytes()),
                ("file", Some("proof.png"), Some("image/png"), PNG),
            ]);
            let content_type: &'static str = content_type.leak();
            return Some((Some(content_type), body));
        }
        "woocommerce_order_created" => {
            return Some((
                Some("application/x-www-form-urlencoded"),
                b"webhook_id=7".to_vec(),
            ));
        }
        _ => return None,
    };
    Some(json_body(body))
}

fn url(w: &World, path: &str, op: &Value, order: &str, token: &str) -> String {
    let url = concrete(path, w, order, token);
    if op["operationId"] == "woocommerce_order_created" {
        format!("{url}?vendor_id={}", w.vendor.id)
    } else {
        url
    }
}

#[tokio::test]
async fn every_role_meets_only_listed_statuses_with_storage_up_or_down() {
    let w = World::new().await;
    let order = w.order().await;
    let tracking = w.stored_order(&order).await.tracking_token;
    let doc = document();
    let identities = [
        None,
        Some(w.customer.token.as_str()),
        Some(w.other_customer.token.as_str()),
        Some(w.vendor.owner.token.as_str()),
        Some(w.other_vendor.owner.token.as_str()),
        Some(w.driver.who.token.as_str()),
        Some(w.admin.token.as_str()),
    ];
    let mut n = 0;
    let mut seen = std::collections::BTreeSet::new();
    // Storage up, down, and losing every race to write (another request wrote first).
    for (down, losing) in [(false, false), (true, false), (false, true)] {
        w.app.store.set_down(down);
        w.app.store.set_losing_races(losing);
        for (method, path, op) in operations(&doc) {
            // Operations that end sessions (or use a refresh token up) get a session of their
            // own, so that the identities' tokens keep working for the rest of the walk.
            let ends_sessions = matches!(
                op["operationId"].as_str(),
                Some("refresh" | "logout" | "logout_all" | "change_password")
            );
            for token in identities {
                n += 1;
                let own = if ends_sessions {
                    let session = w.app.login(&w.customer.email, PASSWORD).await;
                    (session.status.as_u16() == 200).then(|| {
                        (
                            session.json["access_token"].as_str().unwrap().to_owned(),
                            session.json["refresh_token"].as_str().unwrap().to_owned(),
                        )
                    })
                } else {
                    None
                };
                let refresh = own
                    .as_ref()
                    .map_or("not-a-refresh-token", |(_, r)| r.as_str());
                let token = match (&own, token) {
                    (Some((access, _)), Some(_)) => Some(access.as_str()),
                    _ => token,
                };
                let url = url(&w, &path, &op, &order, &tracking);
                let (content_type, body) =
                    plausible(&w, &op, &order, n, refresh).unwrap_or_default();
                let r = w
                    .app
                    .raw(&method.to_uppercase(), &url, token, content_type, body)
                    .await;
                let status = r.status.as_u16();
                assert!(
                    listed(&op).contains(&status),
                    "{method} {path} answered {status}, which it does not list \
                     (storage down: {down}, losing races: {losing}, token: {}): {}",
                    token.is_some(),
                    r.text
                );
                if status >= 400 && path != "/api/health" {
                    r.assert_error_format();
                }
                seen.insert(status);
            }
        }
    }
    w.app.store.set_down(false);
    w.app.store.set_losing_races(false);
    // The walk met the whole range, not only one kind of answer.
    for status in [200, 201, 204, 401, 403, 404, 409, 422, 503] {
        assert!(seen.contains(&status), "never met {status}: {seen:?}");
    }
}

/// Requests that provoke each status the inputs imply, and the status they must get.
fn provocations(op: &Value) -> Vec<(&'static str, Body, String, u16)> {
    let mut cases = Vec::new();
    let query = op["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["in"] == "query"))
        .map(|p| p["name"].as_str().unwrap().to_owned());
    if let Some(name) = query {
        // Wrong for every parameter: of no type's shape, and given twice.
        let bad = format!("{name}=%C3%28-not-valid&{name}=again");
        cases.push(("a bad query value", (None, Vec::new()), bad, 422));
    }
    let Some(content) = op["requestBody"]["content"].as_object() else {
        return cases;
    };
    let oversized = vec![b'x'; 6 * 1024 * 1024];
    if content.contains_key("multipart/form-data") {
        let (empty_type, empty) = multipart(&[("other", None, None, b"x")]);
        let broken = "multipart/form-data; boundary=B";
        let empty_type: &'static str = empty_type.leak();
        cases.extend([
            (
                "a broken form",
                (Some(broken), b"--B\r\nnot a part".to_vec()),
                String::new(),
                400,
            ),
            ("no fields", (Some(empty_type), empty), String::new(), 422),
            ("too large", (Some(broken), oversized), String::new(), 413),
            (
                "JSON",
                (Some("application/json"), b"{}".to_vec()),
                String::new(),
                415,
            ),
        ]);
    } else {
        cases.extend([
            (
                "malformed",
                (Some("application/json"), b"{\"a\": ".to_vec()),
                String::new(),
                400,
            ),
            ("an array", json_body(json!([1])), String::new(), 422),
            (
                "too large",
                (Some("application/json"), oversized),
                String::new(),
                413,
            ),
        ]);
        if content.len() == 1 {
            cases.push((
                "text",
                (Some("text/plain"), b"{}".to_vec()),
                String::new(),
                415,
            ));
        }
    }
    cases
}

#[tokio::test]
async fn the_statuses_inputs_imply_are_answered() {
    let w = World::new().await;
    w.with_secret().await;
    let order = w.order().await;
    let doc = document();
    let mut provoked = 0;
    for (method, path, op) in operations(&doc) {
        let method = method.to_uppercase();
        let token = Some(w.admin.token.as_str());
        let listed = listed(&op);
        let mut check = |what: &str, r: &Reply, expected: u16| {
            assert_eq!(
                r.status.as_u16(),
                expected,
                "{what}: {method} {path}: {}",
                r.text
            );
            assert!(
                listed.contains(&expected),
                "{method} {path} does not list {expected}"
            );
            r.assert_error_format();
            provoked += 1;
        };
        let good = url(&w, &path, &op, &order, "no-such-token");
        // A path value that does not parse: not a UUID, or not UTF-8 once decoded.
        if takes(&op, "path") {
            let bad = path
                .replace("{id}", "not-a-uuid")
                .replace("{token}", "%FF")
                .replace("{name}", "%FF");
            let r = w.app.raw(&method, &bad, token, None, Vec::new()).await;
            check("a bad path value", &r, 422);
        }
        for (what, (content_type, body), query, expected) in provocations(&op) {
            let url = match (query.is_empty(), good.contains('?')) {
                (true, _) => good.clone(),
                (false, true) => format!("{good}&{query}"),
                (false, false) => format!("{good}?{query}"),
            };
            let r = if path == "/api/webhooks/wc/order-created" && expected != 413 {
                // The webhook reads its body only once the signature matches.
                let signature = sign(SECRET, &body);
                w.deliver_to(&url, content_type, &body, &signature).await
            } else {
                w.app.raw(&method, &url, token, content_type, body).await
            };
            check(what, &r, expected);
        }
        if implied(&op).contains(&"401") {
            let r = w.app.raw(&method, &good, None, None, Vec::new()).await;
            check("no token", &r, 401);
            w.app.store.set_down(true);
            let r = w.app.raw(&method, &good, token, None, Vec::new()).await;
            w.app.store.set_down(false);
            check("storage down", &r, 503);
        }
    }
    assert!(provoked > 150, "{provoked}");
}
