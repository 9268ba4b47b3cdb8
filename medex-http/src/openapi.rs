//! The OpenAPI document: its header (title, tags, the bearer scheme) and the completion that
//! makes every operation list every status the server can answer for it.
//!
//! Handlers document what only they know: a 403 for the wrong role, a 409 for a state, a 404 for
//! a record, the 503 of an operation without a token that reads storage. What follows from *what
//! an operation takes* is added by [`complete`], from the operation's own description, so that
//! no handler can forget it:
//!
//! | the operation takes | statuses | why (see `extract.rs`) |
//! |---|---|---|
//! | a request body | 400, 413, 422 | the body is read within the size limit (413), parsed (400: not well-formed, or nested too deep) and typed (422: a value missing, of the wrong type or out of range) |
//! | a body of one media type | 415 | any other `Content-Type` is refused before the body is read |
//! | path parameters | 422 | a segment that does not parse, such as an id that is not a UUID |
//! | query parameters | 422 | a value of the wrong type or range, or one given twice |
//! | a bearer token | 401, 503 | no token, or one invalid, expired, revoked or of a deactivated account; the token's account is read from storage |
//!
//! Where a handler already documents one of these statuses, its description comes first and the
//! generic causes follow. Every error status has the error body as its content.
//!
//! [`complete`] also adds the response links that let a client (or a stateful API tester) chain
//! calls: from each operation that creates a record to the operations that take its id.

use std::collections::BTreeMap;

use utoipa::OpenApi;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

use crate::error::ErrorBody;
use crate::views;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MedEx API",
        description = "Last-mile delivery for pharmacies. Errors are `{\"detail\", \"code\"}` \
            (+ `errors` for 422). Lists are JSON arrays paginated with `limit` and `cursor`; a \
            full page announces the next in a `Link: <…>; rel=\"next\"` header."
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody)),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "orders", description = "Orders and their lifecycle"),
        (name = "custody", description = "The signed chain of custody and its keys"),
        (name = "drivers", description = "Fleets and drivers"),
        (name = "vendors", description = "Pharmacies"),
        (name = "tracking", description = "Public tracking"),
        (name = "reports", description = "Reports"),
        (name = "uploads", description = "Proof of delivery"),
        (name = "webhooks", description = "Shop integrations"),
        (name = "integrations", description = "API keys and outgoing webhooks of a pharmacy"),
        (name = "admin", description = "Administration"),
        (name = "meta", description = "Health and discovery"),
    )
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or API key (mdx_…)")
                    .build(),
            ),
        );
    }
}

/// Adds the statuses that follow from what each operation takes, the response links, and what
/// the wire types' derived schemas cannot state (`views::refinements`).
pub(crate) fn complete(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            for (status, causes) in generic_statuses(operation) {
                add_error(operation, status, &causes);
            }
        }
    }
    add_links(doc);
    if let Some(components) = doc.components.as_mut() {
        for (name, rule) in views::refinements() {
            if let Some(schema) = components.schemas.remove(name) {
                components
                    .schemas
                    .insert(name.to_owned(), crate::schemas::all_of(schema, rule).into());
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The error statuses an operation can answer because of what it takes, each with its causes.
fn generic_statuses(operation: &Operation) -> BTreeMap<&'static str, Vec<String>> {
    let mut statuses: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut add = |status, cause: &str| statuses.entry(status).or_default().push(cause.into());
    let params = operation.parameters.as_deref().unwrap_or_default();
    let takes = |location: ParameterIn| params.iter().any(|p| p.parameter_in == location);
    if takes(ParameterIn::Path) {
        add(
            "422",
            "a path value that does not parse (an id that is not a UUID)",
        );
    }
    if takes(ParameterIn::Query) {
        add(
            "422",
            "a query value of the wrong type or range, or one given twice",
        );
    }
    if let Some(body) = &operation.request_body {
        let media_types: Vec<&String> = body.content.keys().collect();
        if media_types.iter().all(|m| m.starts_with("multipart/")) {
            add("400", "the body is not a well-formed multipart form");
        } else {
            add("400", "the body is not well-formed JSON, or nests too deep");
        }
        add("413", "the body is larger than the limit");
        if let [only] = media_types.as_slice() {
            add("415", &format!("the Content-Type is not {only}"));
        }
        add(
            "422",
            "a body value missing, of the wrong type or out of range (`errors` names each)",
        );
    }
    if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
        add(
            "401",
            "no bearer token, or one that is invalid, expired, revoked or of a deactivated account",
        );
        add(
            "503",
            "the storage is unavailable (the token's account is read from it)",
        );
    }
    statuses
}

fn error_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .build()
}

/// Documents `status` on `operation` with `causes`, after the handler's own description if it
/// has one, and with the error body.
fn add_error(operation: &mut Operation, status: &str, causes: &[String]) {
    let causes = causes.join("; ");
    let responses = &mut operation.responses.responses;
    match responses.get_mut(status) {
        Some(RefOr::T(response)) => {
            response.description = format!("{}; {causes}", response.description);
            if response.content.is_empty() {
                response
                    .content
                    .insert("application/json".into(), error_content());
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let mut description = causes;
            if let Some(first) = description.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            let response: Response = ResponseBuilder::new()
                .description(description)
                .content("application/json", error_content())
                .build();
            responses.insert(status.to_owned(), RefOr::T(response));
        }
    }
}

/// One response field that identifies a record, and the operations that take it.
struct LinkSource {
    /// The creating operation and its success status.
    from: (&'static str, &'static str),
    /// JSON pointer into that response's body.
    field: &'static str,
    /// The parameter the value goes to.
    parameter: &'static str,
    /// The operations that take it.
    to: &'static [&'static str],
}

const ORDER_OPERATIONS: &[&str] = &[
    "get_order",
    "patch_order",
    "cancel_order",
    "assign_driver",
    "respond_to_assignment",
];

const LINKS: &[LinkSource] = &[
    LinkSource {
        from: ("register_vendor", "201"),
        field: "/id",
        parameter: "id",
        to: &[
            "get_vendor",
            "patch_vendor",
            "vendor_orders",
            "export_csv",
            "vendor_daily",
            "driver_statistics",
        ],
    },
    LinkSource {
        from: ("register_driver", "201"),
        field: "/id",
        parameter: "id",
        to: &[
            "get_driver",
            "patch_driver",
            "set_driver_status",
            "record_location",
            "earnings",
            "deliveries",
        ],
    },
    LinkSource {
        from: ("create_order", "201"),
        field: "/id",
        parameter: "id",
        to: ORDER_OPERATIONS,
    },
    LinkSource {
        from: ("create_order", "201"),
        field: "/tracking_token",
        parameter: "token",
        to: &["tracking"],
    },
    LinkSource {
        from: ("woocommerce_order_created", "201"),
        field: "/id",
        parameter: "id",
        to: ORDER_OPERATIONS,
    },
    LinkSource {
        from: ("woocommerce_order_created", "201"),
        field: "/tracking_token",
        parameter: "token",
        to: &["tracking"],
    },
    LinkSource {
        from: ("register", "201"),
        field: "/user/id",
        parameter: "id",
        to: &["patch_user"],
    },
];

fn add_links(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            let id = operation.operation_id.clone().unwrap_or_default();
            for source in LINKS.iter().filter(|l| l.from.0 == id) {
                let Some(RefOr::T(response)) = operation.responses.responses.get_mut(source.from.1)
                else {
                    continue;
                };
                for target in source.to {
                    // utoipa 5.5 serializes `Link::operation_id` as `operation_id`; the field
                    // the specification (and every tool) reads is `operationId`.
                    let operation_id = Extensions::from_iter([("operationId", *target)]);
                    let link = LinkBuilder::new()
                        .extensions(Some(operation_id))
                        .parameter(source.parameter, format!("$response.body#{}", source.field))
                        .description(format!(
                            "`{}` of the answer is the `{}` of {target}",
                            source.field.trim_start_matches('/'),
                            source.parameter
                        ))
                        .build();
                    response.links.insert((*target).to_owned(), RefOr::T(link));
                }
            }
        }
    }
}
