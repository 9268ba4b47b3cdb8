//! The public tracking page: `GET /track/{token}`, the link a customer receives.
//!
//! One self-contained page, embedded in the binary: its HTML, stylesheet and script live in
//! `src/tracking_page/`, with no CDN and no build step; the files are served, with those the
//! console and the driver app share (the SVG map in `map.js`, the reconnecting socket in
//! `session.js`, `base.css`), by [`crate::web`] under content-hashed names. The page carries
//! no order data: the script reads the token from its own URL, fetches the public tracking view
//! (`GET /api/tracking/{token}`) and follows `/ws/tracking/{token}`, reconnecting with backoff.
//! It therefore shows nothing the public tracking view does not already expose.
//!
//! Every page is served with the pages' strict headers ([`crate::web`]'s policy: no inline
//! script or style, `Referrer-Policy: no-referrer` — the token is in the URL — and
//! `Cache-Control: no-store`).
//!
//! The map is drawn in SVG from the coordinates alone and works offline. An operator may add a
//! raster tile layer ([`TileLayer`], `MEDEX_TILE_URL`); its host is then added to `img-src`.
//!
//! ```
//! # async fn build(medex: std::sync::Arc<medex_core::MedEx>) {
//! // The page alone; `medex::web::routes` adds the files it links.
//! let app: axum::Router = medex::tracking_page::routes(medex);
//! # }
//! ```

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{Response, StatusCode};
use axum::routing::get;
use medex_core::MedEx;
use medex_core::error::Error;

use crate::web::{Features, Images, PagePolicy, TileLayer, render};

const INDEX_HTML: &str = include_str!("tracking_page/index.html");
/// The page of a link that cannot be shown; its card is one of the two below.
const NOTICE_HTML: &str = include_str!("tracking_page/notice.html");
const NOT_FOUND_CARD: &str = include_str!("tracking_page/not_found.html");
const UNAVAILABLE_CARD: &str = include_str!("tracking_page/unavailable.html");

/// What the handlers share: the use cases and the pages, rendered once.
struct Pages {
    medex: Arc<MedEx>,
    index: String,
    not_found: String,
    unavailable: String,
    policy: PagePolicy,
}

/// The notice page with its title, element id and card filled in (all constants of this file).
fn notice(title: &str, id: &str, card: &str) -> String {
    NOTICE_HTML
        .replace("{{TITLE}}", title)
        .replace("{{NOTICE_ID}}", id)
        .replace("{{CARD}}", card)
}

/// The tracking page, with no tile layer (its files come from [`crate::web::routes`]).
pub fn routes(medex: Arc<MedEx>) -> Router {
    routes_with(medex, None)
}

/// The tracking page, drawing the map over `tiles` when given.
///
/// Serves `GET /track/{token}`: 200 with the page; a friendly HTML 404 for an unknown token; a
/// friendly HTML 503 when storage fails.
pub fn routes_with(medex: Arc<MedEx>, tiles: Option<TileLayer>) -> Router {
    let pages = Arc::new(Pages {
        medex,
        index: render(INDEX_HTML, tiles.as_ref()),
        not_found: render(
            &notice("Tracking link not found", "not-found", NOT_FOUND_CARD),
            None,
        ),
        unavailable: render(
            &notice("Tracking unavailable", "unavailable", UNAVAILABLE_CARD),
            None,
        ),
        policy: PagePolicy::new(tiles.as_ref(), Images::Own, Features::None),
    });
    Router::new()
        .route("/track/{token}", get(page))
        .with_state(pages)
}

fn html(pages: &Pages, status: StatusCode, body: &str) -> Response<Body> {
    pages.policy.html(status, body)
}

async fn page(
    State(pages): State<Arc<Pages>>,
    token: Result<Path<String>, PathRejection>,
) -> Response<Body> {
    let Ok(Path(token)) = token else {
        return html(&pages, StatusCode::NOT_FOUND, &pages.not_found);
    };
    match pages.medex.tracking_view(&token, false).await {
        Ok(_) => html(&pages, StatusCode::OK, &pages.index),
        Err(Error::NotFound) => html(&pages, StatusCode::NOT_FOUND, &pages.not_found),
        Err(error) => {
            tracing::error!(%error, "tracking page: cannot read the order");
            let mut response = html(&pages, StatusCode::SERVICE_UNAVAILABLE, &pages.unavailable);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use medex_core::model::{Order, OrderStatus};
    use medex_core::testkit::{FlakyStore, Options, World};

    use super::*;
    use crate::web::tests::{assert_page_headers, assert_page_links_resolve, get, header};

    async fn world(store: Option<Arc<dyn medex_core::store::Store>>) -> World {
        World::with(Options {
            store,
            ..Options::default()
        })
        .await
    }

    async fn medex() -> Arc<MedEx> {
        world(None).await.medex
    }

    /// A pending order of the shared world (its customer's name, phone, address and items are
    /// what the page must not show); the service and the order's tracking token.
    async fn order(
        store: Option<Arc<dyn medex_core::store::Store>>,
    ) -> (Arc<MedEx>, Order, String) {
        let world = world(store).await;
        let order = world.order_in(OrderStatus::Pending).await;
        let token = order.tracking_token.clone();
        (world.medex.clone(), order, token)
    }

    #[tokio::test]
    async fn the_page_is_served_with_a_strict_policy_and_no_order_data() {
        let (medex, order, token) = order(None).await;
        let app = crate::web::routes(medex, None);

        let (status, headers, body) = get(&app, &format!("/track/{token}"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_page_headers(&headers);
        let csp = header(&headers, "content-security-policy");
        assert!(csp.contains("img-src 'self' data:;"), "{csp}");
        assert_eq!(
            header(&headers, "permissions-policy"),
            "geolocation=(), camera=(), microphone=(), payment=(), usb=()"
        );

        for secret in [
            "Ann Patient",
            "30 1234",
            "9 Elm St",
            "keep cold",
            "Insulin",
            "Pharmacy 1",
            order.order_number.as_str(),
            token.as_str(),
        ] {
            assert!(!body.contains(secret), "the page shows {secret}");
        }
        let assets = &*crate::web::ASSETS;
        for file in ["track.js", "track.css", "base.css", "icon.svg"] {
            assert!(body.contains(&assets.get(file).unwrap().path()), "{file}");
        }
        assert_page_links_resolve(&app, &body).await;
    }

    #[tokio::test]
    async fn an_unknown_token_gets_a_friendly_html_404() {
        let app = routes(medex().await);
        for path in [
            "/track/no-such-token",
            "/track/%FF%FE",
            &format!("/track/{}", "x".repeat(300)),
        ] {
            let (status, headers, body) = get(&app, path, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_page_headers(&headers);
            assert!(
                body.contains("<html") && body.contains("tracking link"),
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn a_storage_failure_gets_a_friendly_html_503_without_details() {
        let store = Arc::new(FlakyStore::default());
        let (medex, _, token) = order(Some(store.clone())).await;
        let app = routes(medex);
        store.set_down(true);
        let (status, headers, body) = get(&app, &format!("/track/{token}"), None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_page_headers(&headers);
        assert_eq!(header(&headers, "retry-after"), "10");
        assert!(body.contains("briefly unavailable") && !body.contains("secret"));
        store.set_down(false);
        let (status, _, _) = get(&app, &format!("/track/{token}"), None).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_tile_layer_reaches_the_page_escaped_and_the_policy() {
        let (medex, _, token) = order(None).await;
        let tiles = TileLayer::new(
            "https://{s}.tile.example.org/{z}/{x}/{y}.png?key=a&b=c",
            "© \"Example\" <maps>",
        )
        .unwrap();
        let app = routes_with(medex, Some(tiles));
        let (status, headers, body) = get(&app, &format!("/track/{token}"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            header(&headers, "content-security-policy")
                .contains("img-src 'self' data: https://*.tile.example.org;")
        );
        assert!(body.contains(
            r#"data-tile-url="https://{s}.tile.example.org/{z}/{x}/{y}.png?key=a&amp;b=c""#
        ));
        assert!(body.contains("© &quot;Example&quot; &lt;maps&gt;"));
    }
}
