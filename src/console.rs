//! The operator console: `GET /console`, for pharmacies and admins.
//!
//! One page, embedded in the binary (`src/console/`: HTML, a stylesheet and a script module)
//! and served like the tracking page by [`crate::web`]: no CDN, no build step, strict CSP,
//! content-hashed files. The page carries no data and no secret; its script signs in and then
//! speaks only the public API: `/api/...` over HTTP with a bearer token and `/ws/vendor/{id}` for
//! the live fleet map. Sections: incoming orders (Accept, Reject), Assign driver, the fleet map,
//! a driver's run (its stops numbered in sequence, in a list and on the map, the drop-offs
//! reordered by drag and drop or with buttons: `PUT /api/drivers/{id}/run`), an order's custody
//! record and proofs, the daily report with a chart and its CSV, drivers, webhooks and API keys,
//! and for admins users and the configuration. How it keeps its session is written at the top
//! of `src/web/session.js`.
//!
//! Proofs are uploads that need the session's token, so the page fetches them and shows them
//! from memory: its `img-src` also admits `blob:`.

use axum::Router;

use crate::web::{Features, Images, TileLayer};

const INDEX_HTML: &str = include_str!("console/index.html");

/// `GET /console` (and `/console/`), drawing the fleet map over `tiles` when given.
pub(crate) fn routes(tiles: Option<&TileLayer>) -> Router {
    crate::web::page(
        &["/console", "/console/"],
        INDEX_HTML,
        tiles,
        Images::OwnAndBlobs,
        Features::None,
    )
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::web::tests::{assert_page_headers, assert_page_links_resolve, get, header};

    #[tokio::test]
    async fn the_console_is_served_with_a_strict_policy_and_its_files() {
        let app = routes(None).merge(crate::web::asset_routes());
        for path in ["/console", "/console/"] {
            let (status, headers, body) = get(&app, path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_page_headers(&headers);
            assert!(
                header(&headers, "content-security-policy").contains("img-src 'self' data: blob:;")
            );
            assert_eq!(
                header(&headers, "permissions-policy"),
                "geolocation=(), camera=(), microphone=(), payment=(), usb=()"
            );
            assert!(body.contains(r#"<script type="module" src="/assets/console."#));
            assert!(body.contains(r#"data-tile-url="""#));
            assert_page_links_resolve(&app, &body).await;
        }
        let (status, _, _) = get(&app, "/console/orders", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_tile_layer_reaches_the_console_and_its_policy() {
        let tiles = TileLayer::new("https://tiles.example/{z}/{x}/{y}.png", "© Tiles").unwrap();
        let app = routes(Some(&tiles));
        let (_, headers, body) = get(&app, "/console", None).await;
        assert!(
            header(&headers, "content-security-policy")
                .contains("img-src 'self' data: blob: https://tiles.example;")
        );
        assert!(body.contains(r#"data-tile-url="https://tiles.example/{z}/{x}/{y}.png""#));
        assert!(body.contains(r#"data-tile-attribution="© Tiles""#));
    }
}
