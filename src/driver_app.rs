//! The driver app: `GET /driver`, for drivers on a phone.
//!
//! One page, embedded in the binary (`src/driver_app/`: HTML, a stylesheet and a script module)
//! and served like the tracking page by [`crate::web`]: no CDN, no build step, strict CSP,
//! content-hashed files. Its script signs in and speaks only the public API: Go available / Go
//! offline, assignments arriving over `/ws/driver` with Accept / Decline, the browser's
//! Geolocation positions sent over the same socket every 4 s while on duty (kept while the
//! connection is down and sent late as a `locations` batch with their `recorded_at`), Picked up,
//! Out for delivery, Delivered with a camera photo, a signature drawn on a canvas and the
//! handover code, Failed with a reason, and earnings. A driver holding several orders sees the
//! next stop of its run (`GET /api/drivers/{id}/run`) and how many are left. How it keeps its session through a reload
//! or a server restart is written at the top of `src/web/session.js`.
//!
//! It is the one page whose `Permissions-Policy` grants geolocation and the camera (to this
//! origin only); the photo preview is shown from memory, so `img-src` also admits `blob:`.

use axum::Router;

use crate::web::{Features, Images, TileLayer};

const INDEX_HTML: &str = include_str!("driver_app/index.html");

/// `GET /driver` (and `/driver/`), drawing its map over `tiles` when given.
pub(crate) fn routes(tiles: Option<&TileLayer>) -> Router {
    crate::web::page(
        &["/driver", "/driver/"],
        INDEX_HTML,
        tiles,
        Images::OwnAndBlobs,
        Features::LocationAndCamera,
    )
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::web::tests::{assert_page_headers, assert_page_links_resolve, get, header};

    #[tokio::test]
    async fn the_driver_app_may_use_location_and_camera_under_a_strict_policy() {
        let app = routes(None).merge(crate::web::asset_routes());
        for path in ["/driver", "/driver/"] {
            let (status, headers, body) = get(&app, path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_page_headers(&headers);
            assert_eq!(
                header(&headers, "permissions-policy"),
                "geolocation=(self), camera=(self), microphone=(), payment=(), usb=()"
            );
            assert!(body.contains(r#"<script type="module" src="/assets/driver."#));
            assert!(body.contains(r#"capture="environment""#));
            assert_page_links_resolve(&app, &body).await;
        }
        let (status, _, _) = get(&app, "/driver/x", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
