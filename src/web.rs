//! What the server's own pages share: their files, their security headers, their map tiles.
//!
//! Three front ends are served by the server itself, with no CDN and no build step: the public
//! tracking page (`/track/{token}`, [`crate::tracking_page`]), the operator console (`/console`,
//! `src/console.rs`) and the driver app (`/driver`, `src/driver_app.rs`); `GET /` offers
//! browsers a page linking them. Their stylesheets, scripts and icon are embedded in the binary
//! and served from one place, `GET /assets/{file}`, under names that carry a hash of their
//! content (`map.1f2e….js`), so that browsers may keep them for a year and fetch them again only
//! when they change. Scripts are plain JavaScript modules: a module that imports another
//! (`import … from './map.js'`) is served with the import rewritten to the hashed name, and its
//! own hash covers that name, so a change to a shared module renames every page that uses it.
//!
//! Every page answers with the same headers (one `PagePolicy`): a strict
//! `Content-Security-Policy` (scripts, styles and connections from this origin only, no inline
//! script or style, no frames, no form posts to anywhere), `Referrer-Policy: no-referrer`,
//! `Cache-Control: no-store`, `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` and a
//! `Permissions-Policy` naming the browser features the page may use (the driver app asks for
//! geolocation and the camera, the others for nothing). An operator may add a raster tile layer
//! under the maps ([`TileLayer`], `MEDEX_TILE_URL`): its host is then added to `img-src`.
//!
//! ```
//! # async fn build(medex: std::sync::Arc<medex_core::MedEx>) {
//! // The three front ends and their files, without map tiles.
//! let app: axum::Router = medex::web::routes(medex, None);
//! # }
//! ```

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::extract::rejection::PathRejection;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{Method, Response, StatusCode};
use axum::middleware::Next;
use axum::routing::get;
use medex_core::MedEx;
use sha2::{Digest as _, Sha256};

/// Where every page's files are served from.
pub(crate) const ASSET_PREFIX: &str = "/assets/";

/// The embedded files: `(file name, content type, content)`. A script may import the scripts
/// listed before it (by `'./name.js'`), which is why the shared modules come first.
const SOURCES: &[(&str, &str, &str)] = &[
    ("icon.svg", "image/svg+xml", include_str!("web/icon.svg")),
    ("base.css", CSS, include_str!("web/base.css")),
    ("map.js", JS, include_str!("web/map.js")),
    ("session.js", JS, include_str!("web/session.js")),
    ("ui.js", JS, include_str!("web/ui.js")),
    ("track.css", CSS, include_str!("tracking_page/track.css")),
    ("track.js", JS, include_str!("tracking_page/track.js")),
    ("console.css", CSS, include_str!("console/console.css")),
    ("console.js", JS, include_str!("console/console.js")),
    ("driver.css", CSS, include_str!("driver_app/driver.css")),
    ("driver.js", JS, include_str!("driver_app/driver.js")),
];
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One embedded file, named after a hash of its content.
#[derive(Debug)]
pub(crate) struct Asset {
    /// The name it was written under (`map.js`).
    pub(crate) source: &'static str,
    /// The name it is served under (`map.0123456789abcdef.js`).
    pub(crate) name: String,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
}

impl Asset {
    /// Where it is served.
    pub(crate) fn path(&self) -> String {
        format!("{ASSET_PREFIX}{}", self.name)
    }
}

/// Every embedded file, in [`SOURCES`] order.
pub(crate) struct Assets(Vec<Asset>);

impl Assets {
    fn build() -> Self {
        let mut assets: Vec<Asset> = Vec::with_capacity(SOURCES.len());
        for &(source, content_type, text) in SOURCES {
            let mut body = text.to_owned();
            if content_type == JS {
                // Imports name the files as written; browsers must ask for the hashed names.
                for earlier in &assets {
                    for quote in ['\'', '"'] {
                        body = body.replace(
                            &format!("{quote}./{}{quote}", earlier.source),
                            &format!("{quote}./{}{quote}", earlier.name),
                        );
                    }
                }
            }
            let digest = Sha256::digest(body.as_bytes());
            let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            let (stem, extension) = source.rsplit_once('.').unwrap_or((source, ""));
            assets.push(Asset {
                source,
                name: format!("{stem}.{hash}.{extension}"),
                content_type,
                body,
            });
        }
        Self(assets)
    }

    /// The file written as `source`. Every name a page asks for is in [`SOURCES`], which the
    /// tests check for each page.
    pub(crate) fn get(&self, source: &str) -> Option<&Asset> {
        self.0.iter().find(|a| a.source == source)
    }

    fn by_name(&self, name: &str) -> Option<&Asset> {
        self.0.iter().find(|a| a.name == name)
    }

    /// All of them.
    #[cfg(test)]
    pub(crate) fn all(&self) -> &[Asset] {
        &self.0
    }
}

/// The embedded files, hashed once.
pub(crate) static ASSETS: LazyLock<Assets> = LazyLock::new(Assets::build);

/// The start of every page up to its title (`{{head}}` in a template): language, viewport, no
/// referrer, not indexed, light and dark.
const HEAD_HTML: &str = include_str!("web/head.html");

/// Fills a page template: `{{head}}` becomes [`HEAD_HTML`], `{{asset:NAME}}` the hashed path of
/// that file, `{{TILE_URL}}` and `{{TILE_ATTRIBUTION}}` the tile layer's settings (escaped).
pub(crate) fn render(template: &str, tiles: Option<&TileLayer>) -> String {
    let template = template.replacen("{{head}}\n", HEAD_HTML, 1);
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template.as_str();
    while let Some(at) = rest.find("{{asset:") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "{{asset:".len()..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[at..]);
            rest = "";
            break;
        };
        let source = &after[..end];
        match ASSETS.get(source) {
            Some(asset) => out.push_str(&asset.path()),
            // A page naming a file that is not embedded: a broken link the tests catch.
            None => out.push_str(&format!("{ASSET_PREFIX}missing-{source}")),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out.replace(
        "{{TILE_URL}}",
        &escape_html(tiles.map(TileLayer::url_template).unwrap_or_default()),
    )
    .replace(
        "{{TILE_ATTRIBUTION}}",
        &escape_html(tiles.map(TileLayer::attribution).unwrap_or_default()),
    )
}

/// Escapes text for an HTML attribute value or element content.
pub(crate) fn escape_html(text: &str) -> String {
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

// ---------------------------------------------------------------------------------------------
// Headers

/// Which browser features a page may use (`Permissions-Policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Features {
    /// None: the tracking page, the console, the landing page.
    None,
    /// The device's position and its camera, for this origin only: the driver app.
    LocationAndCamera,
}

impl Features {
    fn header(self) -> &'static str {
        match self {
            Features::None => "geolocation=(), camera=(), microphone=(), payment=(), usb=()",
            Features::LocationAndCamera => {
                "geolocation=(self), camera=(self), microphone=(), payment=(), usb=()"
            }
        }
    }
}

/// Which images a page shows besides its own files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Images {
    /// Its files, `data:` URLs and map tiles.
    Own,
    /// Also `blob:` URLs: proofs fetched with the session's token and shown from memory.
    OwnAndBlobs,
}

/// The headers of a page, decided once when the routes are built.
#[derive(Debug, Clone)]
pub(crate) struct PagePolicy {
    csp: HeaderValue,
    features: Features,
}

const FALLBACK_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; \
    form-action 'none'";

impl PagePolicy {
    pub(crate) fn new(tiles: Option<&TileLayer>, images: Images, features: Features) -> Self {
        let mut img = String::from("'self' data:");
        if images == Images::OwnAndBlobs {
            img.push_str(" blob:");
        }
        if let Some(tiles) = tiles {
            img.push(' ');
            img.push_str(tiles.csp_source());
        }
        let policy = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src {img}; \
             connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
        );
        // The tile source was checked to hold only URL characters; the fallback is never reached.
        let csp = HeaderValue::from_str(&policy)
            .unwrap_or_else(|_| HeaderValue::from_static(FALLBACK_CSP));
        Self { csp, features }
    }

    /// An HTML answer under this policy.
    pub(crate) fn html(&self, status: StatusCode, body: &str) -> Response<Body> {
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
                self.features.header(),
            ),
        ];
        for (name, value) in fixed {
            headers.insert(name, HeaderValue::from_static(value));
        }
        headers.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
        response
    }
}

// ---------------------------------------------------------------------------------------------
// Routes

/// The three front ends, the landing page's assets and every file they use, drawing maps over
/// `tiles` when given. `GET /` for browsers is [`landing`], a middleware, because `/` itself
/// belongs to the HTTP API (its JSON index).
pub fn routes(medex: Arc<MedEx>, tiles: Option<TileLayer>) -> Router {
    crate::tracking_page::routes_with(medex, tiles.clone())
        .merge(crate::console::routes(tiles.as_ref()))
        .merge(crate::driver_app::routes(tiles.as_ref()))
        .merge(asset_routes())
}

/// `GET` on each of `paths`: the page `template` (rendered once) under its policy.
pub(crate) fn page(
    paths: &[&'static str],
    template: &str,
    tiles: Option<&TileLayer>,
    images: Images,
    features: Features,
) -> Router {
    let policy = PagePolicy::new(tiles, images, features);
    let page: Arc<str> = render(template, tiles).into();
    let serve = move || {
        let policy = policy.clone();
        let page = page.clone();
        async move { policy.html(StatusCode::OK, &page) }
    };
    paths.iter().fold(Router::new(), |router, path| {
        router.route(path, get(serve.clone()))
    })
}

/// `GET /assets/{file}`: an embedded file by its hashed name, cacheable for a year; anything
/// else is a plain 404.
pub(crate) fn asset_routes() -> Router {
    Router::new().route("/assets/{file}", get(asset))
}

async fn asset(file: Result<axum::extract::Path<String>, PathRejection>) -> Response<Body> {
    // The files live as long as the program: served without a copy.
    let assets: &'static Assets = &ASSETS;
    let found = file
        .ok()
        .and_then(|axum::extract::Path(name)| assets.by_name(&name));
    let mut response = match found {
        Some(asset) => {
            let mut response = Response::new(Body::from(asset.body.as_str()));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            );
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            response
        }
        None => {
            let mut response = Response::new(Body::from("not found\n"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
    };
    let headers = response.headers_mut();
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

const LANDING_HTML: &str = include_str!("web/landing.html");

static LANDING: LazyLock<(PagePolicy, String)> = LazyLock::new(|| {
    (
        PagePolicy::new(None, Images::Own, Features::None),
        render(LANDING_HTML, None),
    )
});

/// `GET /` for a browser (an `Accept` that names `text/html`): a page linking the console, the
/// driver app and the API documentation. Every other request, and `/` asked for JSON, goes on
/// to the API's JSON index.
pub async fn landing(request: Request, next: Next) -> Response<Body> {
    let wants_html = request.method() == Method::GET
        && request.uri().path() == "/"
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
    if !wants_html {
        return next.run(request).await;
    }
    let (policy, page) = &*LANDING;
    let mut response = policy.html(StatusCode::OK, page);
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

// ---------------------------------------------------------------------------------------------
// Map tiles

/// Why a tile URL template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TileLayerError(String);

/// An optional raster tile layer under the maps, e.g.
/// `https://tile.openstreetmap.org/{z}/{x}/{y}.png`.
///
/// The template needs `{z}`, `{x}` and `{y}`; `{s}` may stand for the first label of the host
/// (it is replaced by `a`, `b` or `c`). Only `http` and `https` URLs with a plain host are
/// accepted, because the host goes into the pages' `img-src` policy.
///
/// ```
/// use medex::web::TileLayer;
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

    /// The source added to the pages' `img-src` policy (scheme, host, port).
    pub fn csp_source(&self) -> &str {
        &self.csp_source
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    /// `GET path` on `app`: status, headers and the body as text.
    pub(crate) async fn get(
        app: &Router,
        path: &str,
        accept: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let mut request = Request::get(path);
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    pub(crate) fn header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> &'a str {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The headers every page carries, and that its policy is strict.
    pub(crate) fn assert_page_headers(headers: &axum::http::HeaderMap) {
        assert!(header(headers, "content-type").starts_with("text/html"));
        let csp = header(headers, "content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self';",
            "style-src 'self';",
            "connect-src 'self';",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ] {
            assert!(csp.contains(directive), "{directive} missing from {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(header(headers, "referrer-policy"), "no-referrer");
        assert_eq!(header(headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(headers, "x-frame-options"), "DENY");
        assert_eq!(header(headers, "cache-control"), "no-store");
    }

    /// A served page: no inline script or style, and every file it links is served.
    pub(crate) async fn assert_page_links_resolve(app: &Router, body: &str) {
        assert!(
            !body.contains("<script>") && !body.contains(" style="),
            "{body}"
        );
        assert!(
            !body.contains("missing-"),
            "a page names a file that is not embedded"
        );
        let mut linked = 0;
        for part in body.split(ASSET_PREFIX).skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .collect();
            let (status, _, _) = get(app, &format!("{ASSET_PREFIX}{name}"), None).await;
            assert_eq!(status, StatusCode::OK, "{name}");
            linked += 1;
        }
        assert!(linked >= 2, "the page links {linked} files");
    }

    #[tokio::test]
    async fn assets_are_served_by_hashed_names_cacheable_and_nothing_else() {
        let app = asset_routes();
        for asset in ASSETS.all() {
            let (stem, extension) = asset.source.rsplit_once('.').unwrap();
            let hash = asset
                .name
                .strip_prefix(&format!("{stem}."))
                .and_then(|rest| rest.strip_suffix(&format!(".{extension}")))
                .unwrap_or_else(|| panic!("{}", asset.name));
            assert!(
                hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()),
                "{}",
                asset.name
            );
            let (status, headers, body) = get(&app, &asset.path(), None).await;
            assert_eq!(status, StatusCode::OK, "{}", asset.name);
            assert_eq!(header(&headers, "content-type"), asset.content_type);
            assert_eq!(
                header(&headers, "cache-control"),
                "public, max-age=31536000, immutable"
            );
            assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
            assert_eq!(
                header(&headers, "content-security-policy"),
                "default-src 'none'"
            );
            assert_eq!(body, asset.body);
        }
        for missing in [
            "/assets/map.js",
            "/assets/map.0000000000000000.js",
            "/assets/..%2Fserver.rs",
            "/assets/%FF",
            &format!("/assets/{}", "x".repeat(500)),
        ] {
            let (status, headers, body) = get(&app, missing, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
            assert!(header(&headers, "content-type").starts_with("text/plain"));
            assert_eq!(header(&headers, "cache-control"), "no-store");
            assert_eq!(body, "not found\n");
        }
    }

    #[test]
    fn imports_name_the_hashed_files_and_a_change_renames_the_importer() {
        let map = ASSETS.get("map.js").unwrap();
        let session = ASSETS.get("session.js").unwrap();
        for page in ["console.js", "driver.js", "track.js"] {
            let body = &ASSETS.get(page).unwrap().body;
            assert!(body.contains(&format!("'./{}'", map.name)), "{page}");
            assert!(!body.contains("'./map.js'"), "{page}");
        }
        for page in ["console.js", "driver.js", "track.js"] {
            let body = &ASSETS.get(page).unwrap().body;
            assert!(body.contains(&format!("'./{}'", session.name)), "{page}");
        }
        // Every name is unique, and the hash follows the rewritten body.
        let names: std::collections::BTreeSet<_> = ASSETS.all().iter().map(|a| &a.name).collect();
        assert_eq!(names.len(), SOURCES.len());
        let console = ASSETS.get("console.js").unwrap();
        let digest = Sha256::digest(console.body.as_bytes());
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(console.name, format!("console.{hash}.js"));
    }

    #[test]
    fn templates_name_hashed_files_and_escape_tile_settings() {
        let tiles = TileLayer::new("https://t.example/{z}/{x}/{y}.png?a=1&b=2", "<©>").unwrap();
        let page = render(
            r#"<link href="{{asset:base.css}}"><i data-t="{{TILE_URL}}">{{TILE_ATTRIBUTION}}</i>{{asset:nope.js}}"#,
            Some(&tiles),
        );
        let css = ASSETS.get("base.css").unwrap().path();
        assert_eq!(
            page,
            format!(
                r#"<link href="{css}"><i data-t="https://t.example/{{z}}/{{x}}/{{y}}.png?a=1&amp;b=2">&lt;©&gt;</i>/assets/missing-nope.js"#
            )
        );
    }

    #[tokio::test]
    async fn the_landing_page_is_for_browsers_and_json_goes_on_to_the_api() {
        let app = asset_routes()
            .route(
                "/",
                axum::routing::get(|| async { axum::Json(serde_json::json!({"name": "medex"})) }),
            )
            .layer(axum::middleware::from_fn(landing));
        let (status, headers, body) = get(&app, "/", Some("text/html,*/*;q=0.8")).await;
        assert_eq!(status, StatusCode::OK);
        assert_page_headers(&headers);
        assert_eq!(header(&headers, "vary"), "accept");
        for link in [
            r#"href="/console""#,
            r#"href="/driver""#,
            r#"href="/docs/""#,
        ] {
            assert!(body.contains(link), "{link} missing");
        }
        assert_page_links_resolve(&app, &body).await;
        for accept in [None, Some("application/json"), Some("*/*")] {
            let (status, headers, body) = get(&app, "/", accept).await;
            assert_eq!(status, StatusCode::OK);
            assert!(header(&headers, "content-type").starts_with("application/json"));
            assert_eq!(body, r#"{"name":"medex"}"#);
        }
    }

    #[test]
    fn policies_add_blobs_and_tiles_only_where_asked() {
        let tiles = TileLayer::new("https://{s}.tile.example.org/{z}/{x}/{y}.png", "").unwrap();
        let csp = |p: PagePolicy| p.csp.to_str().unwrap().to_owned();
        assert!(
            csp(PagePolicy::new(None, Images::Own, Features::None))
                .contains("img-src 'self' data:;")
        );
        assert!(
            csp(PagePolicy::new(
                Some(&tiles),
                Images::OwnAndBlobs,
                Features::None
            ))
            .contains("img-src 'self' data: blob: https://*.tile.example.org;")
        );
        let page = PagePolicy::new(None, Images::Own, Features::LocationAndCamera)
            .html(StatusCode::OK, "x");
        assert_eq!(
            header(page.headers(), "permissions-policy"),
            "geolocation=(self), camera=(self), microphone=(), payment=(), usb=()"
        );
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
