//! Pagination: `limit` (default 50, at most 200; more is 422) and `cursor` (the id of the last
//! item seen); a full page announces the next one in `Link: <…>; rel="next"`.

use axum::Json;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use medex_core::integrations::{ApiKey, Delivery};
use medex_core::model::{Driver, Order, User, Vendor};
use medex_core::service::{DEFAULT_PAGE, MAX_PAGE};
use medex_core::store::Page;
use serde::Serialize;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;

/// `limit` and `cursor` of a list without filters.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Page length, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub(crate) limit: Option<u32>,
    /// The id of the last item of the previous page.
    pub(crate) cursor: Option<Uuid>,
}

/// Checks `limit` and turns `cursor` into a core page.
pub(crate) fn page<C>(
    limit: Option<u32>,
    cursor: Option<Uuid>,
    wrap: impl FnOnce(Uuid) -> C,
) -> Result<Page<C>, ApiError> {
    let limit = match limit {
        None => DEFAULT_PAGE,
        Some(n) if (1..=MAX_PAGE as u32).contains(&n) => n as usize,
        Some(_) => {
            return Err(ApiError::invalid(
                "limit",
                format!("must be between 1 and {MAX_PAGE}"),
            ));
        }
    };
    Ok(Page {
        limit,
        after: cursor.map(wrap),
    })
}

/// The next page's link: this request's path and query with `limit` and `cursor` replaced.
pub(crate) fn next_link(uri: &Uri, base: Option<&str>, limit: usize, cursor: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if key != "limit" && key != "cursor" {
            query.append_pair(&key, &value);
        }
    }
    query.append_pair("limit", &limit.to_string());
    query.append_pair("cursor", cursor);
    let base = base.unwrap_or("").trim_end_matches('/');
    format!("<{base}{}?{}>; rel=\"next\"", uri.path(), query.finish())
}

/// A record that pages by its id: the cursor of the page after it.
pub(crate) trait Cursor {
    fn cursor(&self) -> String;
}

macro_rules! cursor_is_id {
    ($($record:ty),*) => {$(
        impl Cursor for $record {
            fn cursor(&self) -> String {
                self.id.to_string()
            }
        }
    )*};
}
cursor_is_id!(User, Vendor, Driver, Order, ApiKey, Delivery);

/// A JSON array answer of `records` as `view` shows them, with a `Link` header to the next page
/// when this one is full.
pub(crate) fn listed<'r, R: Cursor, T: Serialize>(
    state: &AppState,
    uri: &Uri,
    limit: usize,
    records: &'r [R],
    view: impl Fn(&'r R) -> T,
) -> Response {
    let base = state.config.public_base_url.as_deref();
    let link = records
        .last()
        .filter(|_| records.len() >= limit)
        .and_then(|last| HeaderValue::try_from(next_link(uri, base, limit, &last.cursor())).ok());
    let items: Vec<T> = records.iter().map(view).collect();
    let mut response = Json(items).into_response();
    if let Some(link) = link {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked() {
        let p = |limit| {
            page(limit, None, |u| u)
                .map(|p| p.limit)
                .map_err(|e| e.status().as_u16())
        };
        assert_eq!(p(None), Ok(50));
        assert_eq!(p(Some(1)), Ok(1));
        assert_eq!(p(Some(200)), Ok(200));
        assert_eq!(p(Some(201)), Err(422));
        assert_eq!(p(Some(0)), Err(422));
    }

    #[test]
    fn next_link_keeps_other_parameters() {
        let uri: Uri = "/api/orders?status=pending&limit=2&cursor=old"
            .parse()
            .unwrap();
        assert_eq!(
            next_link(&uri, None, 2, "abc"),
            "</api/orders?status=pending&limit=2&cursor=abc>; rel=\"next\""
        );
        assert_eq!(
            next_link(
                &"/api/vendors".parse().unwrap(),
                Some("https://x.io/"),
                50,
                "z"
            ),
            "<https://x.io/api/vendors?limit=50&cursor=z>; rel=\"next\""
        );
    }
}
