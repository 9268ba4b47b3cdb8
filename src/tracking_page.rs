//! The public tracking page: `GET /track/{token}`, the link a customer receives.
//!
//! One self-contained page, embedded in the binary: its HTML, stylesheet and script live in
//! `src/tracking_page/` and are served from here, with no CDN and no build step. The page carries
//! no order data: the script reads the token from its own URL, fetches the public tracking view
//! (`GET /api/tracking/{token}`) and follows `/ws/tracking/{token}`, reconnecting with backoff.
//! It therefore shows nothing the public tracking view does not already expose.
//!
//! Every page is served with a strict `Content-Security-Policy` (no inline script or style; the
//! script and stylesheet are separate files under `/track/assets/` whose names carry a hash of
//! their content, so they can be cached forever), `Referrer-Policy: no-referrer` (the token is in
//! the URL) and `Cache-Control: no-store`.
//!
//! The map is drawn in SVG from the coordinates alone and works offline. An operator may add a
//! raster tile layer ([`TileLayer`], `MEDEX_TILE_URL`); its host is then added to `img-src`.
//!
//! ```
//! # async fn build(medex: std::sync::Arc<medex_core::MedEx>) {
//! let app: axum::Router = medex::tracking_page::routes(medex);
//! # }
//! ```

use std::hash::{Hash as _, Hasher as _};
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{Response, StatusCode};
use axum::routing::get;
use medex_core::MedEx;
use medex_core::error::Error;

const INDEX_HTML: &str = include_str!("tracking_page/index.html");
/// The page of a link that cannot be shown; its card is one of the two below.
const NOTICE_HTML: &str = include_str!("tracking_page/notice.html");
const NOT_FOUND_CARD: &str = include_str!("tracking_page/not_found.html");
const UNAVAILABLE_CARD: &str = include_str!("tracking_page/unavailable.html");
const APP_JS: &str = include_str!("tracking_page/app.js");
const APP_CSS: &str = include_str!("tracking_page/app.css");
const ICON_SVG: &str = include_str!("tracking_page/icon.svg");

/// Where the page's files are served from.
const ASSET_PREFIX: &str = "/track/assets/";

/// One embedded file under [`ASSET_PREFIX`], named after a hash of its content.
struct Asset {
    name: String,
    content_type: &'static str,
    body: &'static str,
}

impl Asset {
    fn new(stem: &str, extension: &str, content_type: &'static str, body: &'static str) -> Self {
        // Only needs to change when the content does: a new name makes browsers fetch it again.
        let mut hasher = std::hash::DefaultHasher::new();
        body.hash(&mut hasher);
        Self {
            name: format!("{stem}.{:016x}.{extension}", hasher.finish()),
            content_type,
            body,
        }
    }

    fn path(&self) -> String {
        format!("{ASSET_PREFIX}{}", self.name)
    }
}

struct Assets {
    js: Asset,
    css: Asset,
    icon: Asset,
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets {
    js: Asset::new("app", "js", "text/javascript; charset=utf-8", APP_JS),
    css: Asset::new("app", "css", "text/css; charset=utf-8", APP_CSS),
    icon: Asset::new("icon", "svg", "image/svg+xml", ICON_SVG),
});

/// Why a tile URL template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TileLayerError(String);

/// An optional raster tile layer under the tracking map, e.g.
/// `https://tile.openstreetmap.org/{z}/{x}/{y}.png`.
///
/// The template needs `{z}`, `{x}` and `{y}`; `{s}` may stand for the first label of the host
/// (it is replaced by `a`, `b` or `c`). Only `http` and `https` URLs with a plain host are
/// accepted, because the host goes into the page's `img-src` policy.
///
/// ```
/// use medex::tracking_page::TileLayer;
/// let tiles = TileLayer::new("https://{s}.tiles.example/{z}/{x}/{y}.png", "© Example").unwrap();
/// assert_eq!(tiles.csp_source(), "https://*.tiles.example");
/// assert!(TileLayer::new("https://tiles.example/tiles.png", "").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileLayer {
    url_template: String,
    attribution: String,
    csp_source: String,
}

impl TileLayer {
    /// Checks a URL template; `attribution` is the credit line the tile provider asks for
    /// (shown as text under the map, may be empty).
    pub fn new(url_template: &str, attribution: &str) -> Result<Self, TileLayerError> {
        let refuse = |why: &str| Err(TileLayerError(why.to_owned()));
        let url = url_template.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return refuse("must be an http:// or https:// URL");
        };
        if scheme != "https" && scheme != "http" {
            return refuse("must be an http:// or https:// URL");
        }
        for placeholder in ["{z}", "{x}", "{y}"] {
            if !url.contains(placeholder) {
                return refuse("must contain {z}, {x} and {y}");
            }
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~:/?#@!$&()*+,=%{}[]".contains(c);
        if !url.chars().all(allowed) {
            return refuse("may not contain spaces, quotes, semicolons or non-ASCII characters");
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => {
                (host, Some(port))
            }
            Some(_) => return refuse("has an invalid port"),
            None => (authority, None),
        };
        let (wildcard, host) = match host.strip_prefix("{s}.") {
            Some(rest) => (true, rest),
            None => (false, host),
        };
        let plain_host = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !plain_host {
            return refuse("needs a plain host name ({s} only as its first label)");
        }
        let attribution = attribution.trim();
        if attribution.chars().count() > 300 || attribution.chars().any(char::is_control) {
            return Err(TileLayerError(
                "the attribution must be one line of at most 300 characters".into(),
            ));
        }
        let csp_source = format!(
            "{scheme}://{}{}{}",
            if wildcard { "*." } else { "" },
            host.to_ascii_lowercase(),
            port.map(|p| format!(":{p}")).unwrap_or_default(),
        );
        Ok(Self {
            url_template: url.to_owned(),
            attribution: attribution.to_owned(),
            csp_source,
        })
    }

    /// The URL template, as configured.
    pub fn url_template(&self) -> &str {
        &self.url_template
    }

    /// The credit line shown under the map.
    pub fn attribution(&self) -> &str {
        &self.attribution
    }

    /// The source added to the page's `img-src` policy (scheme, host, port).
    pub fn csp_source(&self) -> &str {
        &self.csp_source
    }
}

/// Escapes text for an HTML attribute value or element content.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the handlers share: the use cases and the pages, rendered once.
struct Pages {
    medex: Arc<MedEx>,
    index: String,
    not_found: String,
    unavailable: String,
    csp: HeaderValue,
}

/// The notice page with its title, element id and card filled in (all constants of this file).
fn notice(title: &str, id: &str, card: &str) -> String {
    NOTICE_HTML
        .replace("{{TITLE}}", title)
        .replace("{{NOTICE_ID}}", id)
        .replace("{{CARD}}", card)
}

fn render(template: &str, tiles: Option<&TileLayer>) -> String {
    let assets = &*ASSETS;
    template
        .replace("{{CSS}}", &assets.css.path())
        .replace("{{JS}}", &assets.js.path())
        .replace("{{ICON}}", &assets.icon.path())
        .replace(
            "{{TILE_URL}}",
            &escape_html(tiles.map(TileLayer::url_template).unwrap_or_default()),
        )
        .replace(
            "{{TILE_ATTRIBUTION}}",
            &escape_html(tiles.map(TileLayer::attribution).unwrap_or_default()),
        )
}

fn content_security_policy(tiles: Option<&TileLayer>) -> HeaderValue {
    let mut img = String::from("'self' data:");
    if let Some(tiles) = tiles {
        img.push(' ');
        img.push_str(tiles.csp_source());
    }
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src {img}; \
         connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    );
    // The tile source was checked to hold only URL characters; the fallback is never reached.
    HeaderValue::from_str(&policy).unwrap_or_else(|_| {
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
        )
    })
}

/// The tracking page and its files, with no tile layer.
pub fn routes(medex: Arc<MedEx>) -> Router {
    routes_with(medex, None)
}

/// The tracking page and its files, drawing the map over `tiles` when given.
///
/// Serves `GET /track/{token}` (200 with the page; a friendly HTML 404 for an unknown token; a
/// friendly HTML 503 when storage fails) and `GET /track/assets/{file}`.
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
        csp: content_security_policy(tiles.as_ref()),
    });
    Router::new()
        .route("/track/{token}", get(page))
        .route("/track/assets/{file}", get(asset))
        .with_state(pages)
}

fn html(pages: &Pages, status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_owned()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let fixed: [(HeaderName, &'static str); 6] = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("permissions-policy"),
            "geolocation=(), camera=(), microphone=()",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(header::CONTENT_SECURITY_POLICY, pages.csp.clone());
    response
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

async fn asset(
    State(pages): State<Arc<Pages>>,
    file: Result<Path<String>, PathRejection>,
) -> Response<Body> {
    let assets = &*ASSETS;
    let found = file.ok().and_then(|Path(name)| {
        [&assets.js, &assets.css, &assets.icon]
            .into_iter()
            .find(|a| a.name == name)
    });
    let Some(asset) = found else {
        return html(&pages, StatusCode::NOT_FOUND, &pages.not_found);
    };
    let mut response = Response::new(Body::from(asset.body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    response
}

#[cfg(test)]
mod tests {
    use axum::http::Request;
    use medex_core::model::{Order, OrderStatus};
    use medex_core::testkit::{FlakyStore, Options, World};
    use tower::ServiceExt as _;

    use super::*;

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

    async fn get(app: &Router, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    fn header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> &'a str {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn the_page_is_served_with_a_strict_policy_and_no_order_data() {
        let (medex, order, token) = order(None).await;
        let app = routes(medex);

        let (status, headers, body) = get(&app, &format!("/track/{token}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(header(&headers, "content-type").starts_with("text/html"));
        let csp = header(&headers, "content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "img-src 'self' data:;",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ] {
            assert!(csp.contains(directive), "{directive} missing from {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(header(&headers, "referrer-policy"), "no-referrer");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "cache-control"), "no-store");

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
        assert!(!body.contains("<script>") && !body.contains(" style="));
        let assets = &*ASSETS;
        assert!(body.contains(&assets.js.path()) && body.contains(&assets.css.path()));
    }

    #[tokio::test]
    async fn an_unknown_token_gets_a_friendly_html_404() {
        let app = routes(medex().await);
        for path in [
            "/track/no-such-token",
            "/track/%FF%FE",
            &format!("/track/{}", "x".repeat(300)),
        ] {
            let (status, headers, body) = get(&app, path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert!(header(&headers, "content-type").starts_with("text/html"));
            assert!(header(&headers, "content-security-policy").contains("default-src 'none'"));
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
        let (status, headers, body) = get(&app, &format!("/track/{token}")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(header(&headers, "content-type").starts_with("text/html"));
        assert!(header(&headers, "content-security-policy").contains("default-src 'none'"));
        assert_eq!(header(&headers, "retry-after"), "10");
        assert!(body.contains("briefly unavailable") && !body.contains("secret"));
        store.set_down(false);
        let (status, _, _) = get(&app, &format!("/track/{token}")).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn assets_are_served_by_their_hashed_names_only() {
        let app = routes(medex().await);
        let assets = &*ASSETS;
        for (asset, kind) in [
            (&assets.js, "text/javascript"),
            (&assets.css, "text/css"),
            (&assets.icon, "image/svg+xml"),
        ] {
            let (status, headers, body) = get(&app, &asset.path()).await;
            assert_eq!(status, StatusCode::OK, "{}", asset.name);
            assert!(header(&headers, "content-type").starts_with(kind));
            assert!(header(&headers, "cache-control").contains("immutable"));
            assert_eq!(body, asset.body);
        }
        let (status, _, _) = get(&app, "/track/assets/app.0000000000000000.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
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
        let (status, headers, body) = get(&app, &format!("/track/{token}")).await;
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

    #[test]
    fn tile_templates_are_checked() {
        let ok = |url: &str, source: &str| {
            let tiles = TileLayer::new(url, "").unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(tiles.csp_source(), source, "{url}");
        };
        ok(
            "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
            "https://tile.openstreetmap.org",
        );
        ok(
            " http://Tiles.Local:8080/{z}/{x}/{y}.png ",
            "http://tiles.local:8080",
        );
        ok("https://{s}.t.example/{z}/{x}/{y}", "https://*.t.example");
        for bad in [
            "",
            "tile.openstreetmap.org/{z}/{x}/{y}.png",
            "javascript:alert(1)//{z}{x}{y}",
            "ftp://t.example/{z}/{x}/{y}",
            "https://t.example/{z}/{x}.png",
            "https://t.example;/{z}/{x}/{y}",
            "https://t.example/{z}/{x}/{y}.png'",
            "https://t.example/{z}/{x}/{y} x",
            "https://a.{s}.example/{z}/{x}/{y}",
            "https://t.example:80a/{z}/{x}/{y}",
            "https://*.example/{z}/{x}/{y}",
            "https:///{z}/{x}/{y}",
            "https://user@t.example/{z}/{x}/{y}",
        ] {
            assert!(TileLayer::new(bad, "").is_err(), "{bad} accepted");
        }
        assert!(TileLayer::new("https://t.example/{z}/{x}/{y}", "a\nb").is_err());
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
