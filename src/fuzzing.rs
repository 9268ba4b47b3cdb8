//! The bodies of the fuzz targets in `fuzz/`, one function per target, and a test that replays
//! their seed corpora and every crash input kept under `fuzz/regressions/`.
//!
//! Public only because the cargo-fuzz crate is a workspace of its own and reaches this code
//! through the `fuzzing` feature; keeping the bodies here lets `cargo test` replay the inputs
//! without cargo-fuzz or a nightly compiler. Not part of the API: hidden from the docs, and free
//! to change.
//!
//! Each function panics when the input makes MedEx break its contract: a panic, a 5xx answer
//! other than 503, an error answer outside the `{"detail", "code"}` format, or a use case leaving
//! the state the lifecycle table allows. Anything else (refusals included) is a pass.
//!
//! Inputs of the HTTP-level targets may name the fixtures of a prepared world with `$` words
//! that are replaced before the input is used: tokens (`$admin`, `$customer`,
//! `$other_customer`, `$vendor`, `$other_vendor`, `$driver`, `$driver2`, `$other_driver`,
//! `$refresh`), ids (`$vendor_id`, `$other_vendor_id`, `$driver_id`, `$driver2_id`,
//! `$other_driver_id`, `$customer_id`) and orders in each status (`$pending`, `$accepted`,
//! `$assigned`, `$on_the_way`, `$delivered`, `$cancelled`, with `$tracking` the tracking token
//! of the one on its way). Seeds stay readable, and the fuzzer can swap one fixture for another.

use std::cell::RefCell;
use std::future::Future;

use medex_core::error::Error;
use medex_core::model::Coordinates;

mod lifecycle;
mod world;

use world::World;

/// The WooCommerce webhook secret of the prepared world's pharmacy (`$vendor_id`).
pub const WEBHOOK_SECRET: &str = "wc-fuzz-secret-0123456789abcdef";

/// The boundary of the multipart bodies of the `multipart` target.
pub const MULTIPART_BOUNDARY: &str = "medex-fuzz-boundary";

/// Inputs after which the prepared world is built anew, so that what the fuzzer creates (orders,
/// accounts, fixes) cannot slow it down or grow without bound.
const WORLD_LIFETIME: u32 = 2_000;

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    static WORLD: RefCell<Option<(World, u32)>> = const { RefCell::new(None) };
}

fn block_on<F: Future>(future: F) -> F::Output {
    RUNTIME.with(|runtime| runtime.block_on(future))
}

/// Runs `f` on this thread's prepared world, building it first when there is none or when it
/// has served [`WORLD_LIFETIME`] inputs.
fn with_world<R>(f: impl FnOnce(&World) -> R) -> R {
    WORLD.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot
            .as_ref()
            .is_none_or(|(_, runs)| *runs >= WORLD_LIFETIME)
        {
            *slot = None;
            *slot = Some((block_on(World::build()), 0));
        }
        let (world, runs) = slot.as_mut().expect("built above");
        *runs += 1;
        f(world)
    })
}

/// Target `http_request`: the input is a raw HTTP/1.1 request (request line, headers, body);
/// it goes through the whole router, as the server would hand it over.
pub fn http_request(data: &[u8]) {
    with_world(|world| {
        let raw = world.expand(data);
        let Some(request) = world::parse_request(&raw) else {
            // The server's HTTP parser refuses it before the router sees it.
            return;
        };
        let reply = block_on(world.send(request));
        reply.check();
    });
}

/// Target `lifecycle`: the input is a sequence of moves (who does what to which order) run
/// through the use cases on new orders of a prepared fleet, and checked step by step against a reference
/// model of the lifecycle table: the same moves are accepted, terminal orders never change,
/// every accepted move adds exactly one entry to the history, no driver is on two active
/// orders, and earnings are credited once per delivery.
pub fn lifecycle(data: &[u8]) {
    block_on(lifecycle::run(data));
}

/// Target `ws_message`: the input is a text frame from a driver's WebSocket client. It is
/// parsed as the connection parses it; a location is then recorded through the same use case,
/// which must either take it or refuse it as invalid.
pub fn ws_message(data: &[u8]) {
    // Text frames are UTF-8 (the WebSocket layer closes the connection otherwise) and at most
    // the configured size (4 KiB by default).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > medex_ws::WsConfig::default().max_message_size {
        return;
    }
    let Ok(Some(fix)) = medex_ws::parse_client_text(text) else {
        return;
    };
    // The connection answers bad coordinates itself, before the use case.
    if Coordinates::new(fix.latitude, fix.longitude).is_err() {
        return;
    }
    with_world(|world| {
        let driver = world.driver();
        match block_on(world.medex.record_location(&driver.0, driver.1, fix)) {
            Ok(location) => {
                assert_eq!(location.order_id, Some(world.on_the_way), "{location:?}");
                if let Some(eta) = location.eta_minutes {
                    assert!(eta.is_finite() && eta >= 0.0, "ETA {eta} for {fix:?}");
                }
                let now = world.medex.now();
                let at = location.fix.recorded_at;
                assert!(
                    at <= now + chrono::Duration::seconds(30)
                        && at >= now - chrono::Duration::hours(1),
                    "implausible time {at} kept for {fix:?}"
                );
                let view = block_on(world.medex.tracking_view(world.tracking(), true))
                    .expect("the order on its way is tracked");
                serde_json::to_string(&view).expect("the tracking view serializes");
            }
            Err(Error::Invalid(_)) => {}
            Err(e) => panic!("a fix is recorded or refused as invalid, not {e:?} ({fix:?})"),
        }
    });
}

/// Target `woocommerce`: the input is a webhook body. It is delivered twice: signed with the
/// pharmacy's secret (so it reaches the mapping into an order; a new order is delivered once
/// more and must come back as the same order), and unsigned with a form content type (only
/// WooCommerce's ping may pass; nothing is taken in).
pub fn woocommerce(data: &[u8]) {
    with_world(|world| {
        let signed = block_on(world.webhook(data, true));
        signed.check();
        assert!(
            matches!(signed.status, 200 | 201 | 400 | 413 | 422),
            "signed webhook answered {}: {}",
            signed.status,
            signed.text()
        );
        if signed.status == 201 {
            let replay = block_on(world.webhook(data, true));
            assert_eq!(replay.status, 200, "a replay is answered 200");
            assert_eq!(
                replay.json["id"], signed.json["id"],
                "a replay is the same order"
            );
        }
        let unsigned = block_on(world.webhook(data, false));
        unsigned.check();
        match unsigned.status {
            200 => assert_eq!(unsigned.json, serde_json::json!({"status": "ok"})),
            401 | 413 => {}
            other => panic!("unsigned webhook answered {other}: {}", unsigned.text()),
        }
    });
}

/// Target `webhook_registration`: the input is the JSON body of `POST
/// /api/vendors/{id}/webhooks` from the pharmacy's owner. The answer is 201, 400, 413 or 422;
/// an endpoint that is registered has an `https://` URL the address rule allows (the world
/// allows no private addresses), the events it was given, and a secret.
pub fn webhook_registration(data: &[u8]) {
    with_world(|world| {
        let reply = block_on(world.register_webhook(data));
        reply.check();
        assert!(
            matches!(reply.status, 201 | 400 | 413 | 422),
            "webhook registration answered {}: {}",
            reply.status,
            reply.text()
        );
        if reply.status == 201 {
            let url = reply.json["url"].as_str().expect("a registered url");
            assert_eq!(
                medex_core::integrations::check_target(url, false).as_deref(),
                Ok(url),
                "registered {url}: allowed, and as clients read it"
            );
            assert!(url.starts_with("https://"), "registered {url}");
            assert!(
                reply.json["secret"].as_str().is_some_and(|s| s.len() >= 32),
                "a secret: {}",
                reply.text()
            );
            assert!(
                reply.json["events"]
                    .as_array()
                    .is_some_and(|e| !e.is_empty())
            );
        }
    });
}

/// Target `multipart`: the input is a `multipart/form-data` body (boundary
/// [`MULTIPART_BOUNDARY`]) posted by the driver of the order on its way to the proof upload.
pub fn multipart(data: &[u8]) {
    with_world(|world| {
        let body = world.expand(data);
        let reply = block_on(world.upload(body));
        reply.check();
        match reply.status {
            201 => {
                assert_eq!(
                    reply.json["order_id"],
                    world.on_the_way.to_string().as_str()
                );
                let order = block_on(world.medex.get_order(&world.admin(), world.on_the_way))
                    .expect("the order exists");
                assert_eq!(
                    order.proof_photo_url.as_deref(),
                    reply.json["url"].as_str(),
                    "the stored proof is attached"
                );
            }
            400 | 404 | 413 | 415 | 422 => {}
            // The world's order keeps twenty proofs; later inputs find it full.
            409 if reply.json["code"] == "too_many_proofs" => {}
            other => panic!("upload answered {other}: {}", reply.text()),
        }
    });
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Every file under `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`, each on a
    /// freshly built world, as libFuzzer runs one input when reproducing a crash.
    fn replay(target: &str, run: fn(&[u8])) {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz"));
        let mut files = Vec::new();
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("a readable directory").path();
                let hidden = path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if path.is_file() && !hidden {
                    files.push(path);
                }
            }
        }
        files.sort();
        assert!(!files.is_empty(), "no seed inputs for {target}");
        for path in files {
            let data = std::fs::read(&path).expect("a readable file");
            WORLD.with(|cell| cell.borrow_mut().take());
            lifecycle::forget_fleet();
            eprintln!("{target}: {}", path.display());
            run(&data);
        }
    }

    #[test]
    fn http_request_inputs_pass() {
        replay("http_request", http_request);
    }

    #[test]
    fn lifecycle_inputs_pass() {
        replay("lifecycle", lifecycle);
    }

    /// As the fuzzer runs them: one fleet for many inputs, each leaving it as it found it.
    #[test]
    fn lifecycle_inputs_pass_one_after_another() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/lifecycle");
        let mut inputs: Vec<_> = std::fs::read_dir(dir)
            .expect("the lifecycle corpus")
            .map(|entry| std::fs::read(entry.expect("a readable directory").path()).unwrap())
            .collect();
        inputs.sort();
        for data in inputs.iter().chain(&inputs) {
            lifecycle(data);
        }
    }

    #[test]
    fn ws_message_inputs_pass() {
        replay("ws_message", ws_message);
    }

    #[test]
    fn woocommerce_inputs_pass() {
        replay("woocommerce", woocommerce);
    }

    #[test]
    fn webhook_registration_inputs_pass() {
        replay("webhook_registration", webhook_registration);
    }

    #[test]
    fn multipart_inputs_pass() {
        replay("multipart", multipart);
    }

    #[test]
    fn placeholders_expand_longest_first() {
        with_world(|world| {
            let expanded = world.expand(b"$driver2_id/$driver_id/$driver2/$driver/$nope");
            let text = String::from_utf8(expanded).unwrap();
            let parts: Vec<_> = text.split('/').collect();
            assert_eq!(parts.len(), 5, "{text}");
            assert!(!parts[..4].iter().any(|p| p.starts_with('$')), "{text}");
            assert_eq!(parts[4], "$nope");
            assert_ne!(parts[0], parts[1]);
        });
    }
}
