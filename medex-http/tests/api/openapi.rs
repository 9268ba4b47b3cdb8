//! The OpenAPI document and the router describe the same API.

use serde_json::{Value, json};

use crate::access::concrete;
use crate::helpers::*;

/// Every endpoint of DESIGN §3 (paths under /api unless noted).
const CONTRACT: &[(&str, &str)] = &[
    ("post", "/api/auth/register"),
    ("post", "/api/auth/login"),
    ("post", "/api/auth/refresh"),
    ("post", "/api/auth/logout"),
    ("get", "/api/auth/me"),
    ("post", "/api/orders"),
    ("get", "/api/orders"),
    ("get", "/api/orders/{id}"),
    ("patch", "/api/orders/{id}"),
    ("delete", "/api/orders/{id}"),
    ("post", "/api/orders/{id}/assign-driver"),
    ("post", "/api/orders/{id}/assignment"),
    ("post", "/api/drivers/register"),
    ("get", "/api/drivers"),
    ("get", "/api/drivers/{id}"),
    ("patch", "/api/drivers/{id}"),
    ("patch", "/api/drivers/{id}/status"),
    ("post", "/api/drivers/{id}/location"),
    ("get", "/api/drivers/{id}/earnings"),
    ("get", "/api/drivers/{id}/deliveries"),
    ("post", "/api/vendors/register"),
    ("get", "/api/vendors"),
    ("get", "/api/vendors/{id}"),
    ("patch", "/api/vendors/{id}"),
    ("get", "/api/vendors/{id}/orders"),
    ("post", "/api/vendors/{id}/export-csv"),
    ("get", "/api/tracking/{token}"),
    ("get", "/api/reports/vendors/{id}"),
    ("get", "/api/reports/vendors/{id}/drivers"),
    ("get", "/api/admin/users"),
    ("patch", "/api/admin/users/{id}"),
    ("get", "/api/admin/config"),
    ("patch", "/api/admin/config"),
    ("post", "/api/uploads/proof"),
    ("post", "/api/uploads/signature"),
    ("get", "/api/uploads/{name}"),
    ("post", "/api/webhooks/wc/order-created"),
    ("get", "/api/health"),
    ("get", "/"),
];

fn documented() -> Vec<(String, String)> {
    let doc = serde_json::to_value(medex_http::openapi()).unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.push((method.clone(), path.clone()));
        }
    }
    ops.sort();
    ops
}

#[test]
fn the_document_covers_the_contract() {
    let ops = documented();
    for (method, path) in CONTRACT {
        assert!(
            ops.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is not documented"
        );
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_nothing_else_is() {
    let w = World::new().await;
    let order = w.order().await;
    let ops = documented();
    let methods = ["get", "post", "patch", "delete", "put"];
    let mut paths: Vec<&String> = ops.iter().map(|(_, p)| p).collect();
    paths.dedup();
    for path in paths {
        let url = concrete(path, &w, &order, "no-such-token");
        for method in methods {
            let is_documented = ops.iter().any(|(m, p)| m == method && p == path);
            let r = w
                .app
                .call(&method.to_uppercase(), &url, Some(&w.admin.token), None)
                .await;
            if is_documented {
                assert!(
                    !matches!(r.code(), "route_not_found" | "method_not_allowed"),
                    "{method} {path} is documented but not routed: {}",
                    r.text
                );
            } else {
                assert_eq!(
                    r.code(),
                    "method_not_allowed",
                    "{method} {path} is routed but not documented"
                );
            }
            assert!(r.status.as_u16() < 500, "{method} {path}: {}", r.text);
        }
    }
}

#[test]
fn secured_operations_declare_the_bearer_scheme() {
    let doc = serde_json::to_value(medex_http::openapi()).unwrap();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}");
            if op.get("security").is_some() {
                assert!(responses.contains_key("401"), "{method} {path} lacks 401");
            }
            assert_ne!(op["tags"], Value::Null, "{method} {path} untagged");
        }
    }
}

/// Every key a record is served with is documented, and every documented key is served.
#[tokio::test]
async fn documented_schemas_match_the_served_records() {
    let w = World::new().await;
    let order = w.order_in("driver_assigned").await;
    let doc = serde_json::to_value(medex_http::openapi()).unwrap();
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let schema = |name: &str| keys(&doc["components"]["schemas"][name]["properties"]);
    let served_order = w
        .app
        .get(&format!("/api/orders/{order}"), &w.admin.token)
        .await;
    assert_eq!(keys(&served_order.json), schema("Order"));
    let served_driver = w
        .app
        .get(&format!("/api/drivers/{}", w.driver.id), &w.admin.token)
        .await;
    let mut documented = schema("Driver");
    documented.retain(|k| k != "driver_id"); // only in the registration answer
    assert_eq!(keys(&served_driver.json), documented);
    let served_user = w.app.get("/api/auth/me", &w.vendor.owner.token).await;
    assert_eq!(keys(&served_user.json), schema("UserView"));
    let served_vendor = w
        .app
        .get(&format!("/api/vendors/{}", w.vendor.id), &w.admin.token)
        .await;
    assert_eq!(keys(&served_vendor.json), schema("VendorView"));
}

/// The pattern the document gives a field, resolved through `allOf`.
fn field_pattern(doc: &Value, schema: &str, field: &str) -> regex::Regex {
    let component = &doc["components"]["schemas"][schema];
    let parts = component["allOf"].as_array().cloned().unwrap_or_default();
    let property = std::iter::once(component)
        .chain(parts.iter())
        .map(|s| &s["properties"][field])
        .find(|p| p["pattern"].is_string())
        .unwrap_or_else(|| panic!("{schema}.{field} has no pattern"));
    regex::Regex::new(property["pattern"].as_str().unwrap()).unwrap()
}

/// Every string of up to `count` pieces.
fn strings(pieces: &[&str], count: usize) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut last = vec![String::new()];
    for _ in 0..count {
        last = last
            .iter()
            .flat_map(|s| pieces.iter().map(move |p| format!("{s}{p}")))
            .collect();
        all.extend(last.iter().cloned());
    }
    all.sort();
    all.dedup();
    all
}

/// The document's patterns for free text and e-mail addresses accept exactly what medex-core's
/// validation accepts: white space trimmed first, control characters refused, lengths counted
/// on the trimmed text.
#[tokio::test]
async fn documented_patterns_are_the_validation() {
    let w = World::new().await;
    let doc = serde_json::to_value(medex_http::openapi()).unwrap();
    let driver = format!("/api/drivers/{}", w.driver.id);
    let token = &w.driver.who.token;
    let pieces = [
        "a", "é", " ", "\t", "\n", "\r", "\u{0}", "\u{85}", "\u{3000}", "\u{1f}",
    ];
    let mut texts = strings(&pieces, 3);
    for n in [39, 40, 41, 199, 200, 201] {
        let long = "x".repeat(n);
        texts.extend([long.clone(), format!("  {long}\t"), format!("{long}\u{7f}")]);
    }
    let mut accepted = 0;
    for (field, schema) in [
        ("full_name", "PatchDriverRequest"),
        ("phone", "PatchDriverRequest"),
    ] {
        let pattern = field_pattern(&doc, schema, field);
        for text in &texts {
            let r = w.app.patch(&driver, token, json!({ field: text })).await;
            let ok = match r.status.as_u16() {
                200 => true,
                422 => false,
                other => panic!("{field} {text:?}: {other} {}", r.text),
            };
            assert_eq!(pattern.is_match(text), ok, "{field} {text:?}: {}", r.text);
            accepted += usize::from(ok);
        }
    }
    assert!(accepted > 100, "{accepted}");

    let pattern = field_pattern(&doc, "RegisterRequest", "email");
    let pieces = ["a", "@", ".", " ", "\t", "\u{0}", "É"];
    for (n, local) in strings(&pieces, 4).iter().enumerate() {
        // A unique tail keeps addresses apart; the candidate's shape stays in front of it.
        let email = format!("{local}{n}");
        let r = w
            .app
            .post(
                "/api/auth/register",
                None,
                json!({"email": email, "password": PASSWORD, "full_name": "Ann"}),
            )
            .await;
        let ok = match r.status.as_u16() {
            201 | 409 => true,
            422 => false,
            other => panic!("{email:?}: {other} {}", r.text),
        };
        assert_eq!(pattern.is_match(&email), ok, "{email:?}: {}", r.text);
    }
}
