//! `/api/uploads/*`: proof of delivery (photo, signature) uploaded by the assigned driver and
//! served to the parties of the order.
//!
//! Files are recognised by their first bytes (JPEG, PNG, WebP), never by name or declared type,
//! and stored as `<order id>-<random>.<ext>` in the file store (a directory, or the database when
//! several instances share one): the client's file name never reaches it, and the order id in
//! the name is what access is checked against. Every upload is a new file, never one written
//! over; the order lists each with its SHA-256.

use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medex_core::model::{OrderId, Sha256};
use medex_core::permissions::Actor;
use medex_core::service::ProofKind;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, Auth};

/// Image types accepted, by magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageType {
    Jpeg,
    Png,
    Webp,
}

impl ImageType {
    /// Recognises an image by its first bytes.
    pub(crate) fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageType::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageType::Png)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(ImageType::Webp)
        } else {
            None
        }
    }

    fn extension(self) -> &'static str {
        match self {
            ImageType::Jpeg => "jpg",
            ImageType::Png => "png",
            ImageType::Webp => "webp",
        }
    }

    fn from_extension(ext: &str) -> Option<Self> {
        match ext {
            "jpg" => Some(ImageType::Jpeg),
            "png" => Some(ImageType::Png),
            "webp" => Some(ImageType::Webp),
            _ => None,
        }
    }

    fn mime(self) -> &'static str {
        match self {
            ImageType::Jpeg => "image/jpeg",
            ImageType::Png => "image/png",
            ImageType::Webp => "image/webp",
        }
    }
}

/// A stored file's name, checked: `<order uuid>-<32 hex>.<jpg|png|webp>`, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredName {
    order: OrderId,
    kind: ImageType,
    name: String,
}

impl StoredName {
    fn generate(order: OrderId, kind: ImageType) -> Self {
        let name = format!("{order}-{}.{}", Uuid::new_v4().simple(), kind.extension());
        Self { order, kind, name }
    }

    /// Accepts only names this module generates; anything else (paths, encodings, other
    /// extensions) is `None` and never reaches the file store.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        if name.len() > 36 + 1 + 32 + 5
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return None;
        }
        let (stem, ext) = name.split_once('.')?;
        let kind = ImageType::from_extension(ext)?;
        let (order, random) = (stem.get(..36)?, stem.get(36..)?);
        let random = random.strip_prefix('-')?;
        if random.len() != 32 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let order: OrderId = order.parse().ok()?;
        // Only the canonical spelling, so one file has one name.
        (order.to_string() == stem[..36]).then(|| Self {
            order,
            kind,
            name: name.to_owned(),
        })
    }
}

/// The multipart form of an upload, for the document: `file` and `order_id`. Other parts are
/// read and dropped, but a part's name travels in a header, where control characters (tab
/// aside) make the form malformed (400); the schema says so with `propertyNames`.
pub(crate) struct UploadForm;

impl utoipa::PartialSchema for UploadForm {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some("The multipart form of an upload."))
            .property(
                "file",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                    .description(Some(
                        "JPEG, PNG or WebP, recognised by content; at most the configured size \
                         (default 5 MiB).",
                    )),
            )
            .required("file")
            .property(
                "order_id",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .description(Some("The order on its way that the proof belongs to.")),
            )
            .required("order_id")
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^[^\u0000-\u0008\u000A-\u001F\u007F]*$")),
            ))
            .into()
    }
}

impl ToSchema for UploadForm {}

/// What an upload answers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UploadView {
    /// Where the parties of the order fetch it (`GET`, with their token).
    url: String,
    /// `image/jpeg`, `image/png` or `image/webp`.
    content_type: &'static str,
    /// Size in bytes.
    bytes: usize,
    /// SHA-256 of the file, 64 lowercase hex digits, as listed in the order's `proofs`.
    sha256: String,
    /// The order.
    order_id: Uuid,
}

struct Upload {
    order: OrderId,
    bytes: Vec<u8>,
}

async fn read_upload(req: Request, state: &AppState) -> Result<Upload, ApiError> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !multipart {
        return Err(ApiError::unsupported_media_type("multipart/form-data"));
    }
    let limit = state.config.max_upload_bytes;
    let field_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::malformed("malformed multipart body")
        }
    };
    let mut form = Multipart::from_request(req, state)
        .await
        .map_err(|_| ApiError::malformed("malformed multipart body"))?;
    let (mut order, mut file) = (None, None);
    while let Some(mut field) = form.next_field().await.map_err(field_error)? {
        match field.name() {
            Some("file") if file.is_none() => {
                // The client's file name and declared type are ignored on purpose.
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(field_error)? {
                    if bytes.len() + chunk.len() > limit {
                        return Err(ApiError::too_large(limit));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                file = Some(bytes);
            }
            Some("order_id") if order.is_none() => {
                let mut raw = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(field_error)? {
                    raw.extend_from_slice(&chunk);
                    if raw.len() > 64 {
                        return Err(ApiError::invalid("order_id", "not a valid id"));
                    }
                }
                let id = std::str::from_utf8(&raw)
                    .ok()
                    .and_then(|s| s.trim().parse::<OrderId>().ok())
                    .ok_or_else(|| ApiError::invalid("order_id", "not a valid id"))?;
                order = Some(id);
            }
            // Other fields are read and dropped.
            _ => while field.chunk().await.map_err(field_error)?.is_some() {},
        }
    }
    let order = order.ok_or_else(|| ApiError::invalid("order_id", "is required"))?;
    let bytes = file.ok_or_else(|| ApiError::invalid("file", "is required"))?;
    Ok(Upload { order, bytes })
}

async fn upload(
    state: AppState,
    actor: Actor,
    req: Request,
    kind: ProofKind,
) -> ApiResult<(StatusCode, Json<UploadView>)> {
    let upload = read_upload(req, &state).await?;
    let image = ImageType::sniff(&upload.bytes).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the file must be a JPEG, PNG or WebP image",
        )
    })?;
    // Strangers learn nothing and cost no disk write.
    state
        .medex
        .may_read_attachments(&actor, upload.order)
        .await?;
    let name = StoredName::generate(upload.order, image);
    let files = &state.files;
    files
        .put_file(&name.name, &upload.bytes)
        .await
        .map_err(|error| {
            tracing::error!(%error, "storing an upload failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the file could not be stored; try again later",
            )
        })?;
    let url = format!("/api/uploads/{}", name.name);
    let sha256 = Sha256::digest(&upload.bytes);
    if let Err(error) = state
        .medex
        .attach_proof(&actor, upload.order, kind, url.clone(), sha256)
        .await
    {
        if let Err(error) = files.delete_file(&name.name).await {
            tracing::warn!(%error, "an upload that was not attached stays stored");
        }
        return Err(error.into());
    }
    Ok((
        StatusCode::CREATED,
        Json(UploadView {
            url,
            content_type: image.mime(),
            bytes: upload.bytes.len(),
            sha256: sha256.to_hex(),
            order_id: *upload.order.as_uuid(),
        }),
    ))
}

/// What both upload operations answer (documentation only).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum UploadAnswers {
    /// Stored and attached
    #[response(status = 201)]
    Stored(UploadView),
    /// Not the assigned driver
    #[response(status = 403)]
    NotTheDriver(ErrorBody),
    /// No such order, or not yours
    #[response(status = 404)]
    NoSuchOrder(ErrorBody),
    /// The order is not on its way (not_in_delivery), keeps as many proofs as it can
    /// (too_many_proofs), or changed by another request meanwhile (concurrent_update)
    #[response(status = 409)]
    NotNow(ErrorBody),
    /// Not multipart, or not a JPEG/PNG/WebP image
    #[response(status = 415)]
    NotAnImage(ErrorBody),
    /// Missing field or bad order id
    #[response(status = 422)]
    BadForm(ErrorBody),
    /// The file could not be stored
    #[response(status = 503)]
    NotStored(ErrorBody),
}

/// Uploads a proof photo of an order on its way (its assigned driver, or its pharmacy): added to
/// the order's `proofs` with its SHA-256, and the order's `proof_photo_url` as the latest photo.
#[utoipa::path(post, path = "/api/uploads/proof", tag = "uploads", security(("bearer" = [])),
    request_body(content((UploadForm = "multipart/form-data",
        encoding(("file" = (content_type = "image/jpeg, image/png, image/webp")))))),
    responses(UploadAnswers))]
pub(crate) async fn upload_proof(
    State(state): State<AppState>,
    Auth(actor): Auth,
    req: Request,
) -> ApiResult<(StatusCode, Json<UploadView>)> {
    upload(state, actor, req, ProofKind::Photo).await
}

/// Uploads the recipient's signature (an image): added to the order's `proofs` with its SHA-256,
/// and the order's `signature_url` as the latest signature.
#[utoipa::path(post, path = "/api/uploads/signature", tag = "uploads", security(("bearer" = [])),
    request_body(content((UploadForm = "multipart/form-data",
        encoding(("file" = (content_type = "image/jpeg, image/png, image/webp")))))),
    responses(UploadAnswers))]
pub(crate) async fn upload_signature(
    State(state): State<AppState>,
    Auth(actor): Auth,
    req: Request,
) -> ApiResult<(StatusCode, Json<UploadView>)> {
    upload(state, actor, req, ProofKind::Signature).await
}

/// Serves an uploaded proof to the parties of its order.
#[utoipa::path(get, path = "/api/uploads/{name}", tag = "uploads", security(("bearer" = [])),
    params(("name" = String, Path, description = "The generated file name")),
    responses(
        (status = 200, description = "The image",
            content((Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png"), (Vec<u8> = "image/webp"))),
        (status = 404, description = "No such file, or not yours", body = ErrorBody),
        (status = 503, description = "The file could not be read", body = ErrorBody),
    ))]
pub(crate) async fn get_upload(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    let name = StoredName::parse(&name)
        .ok_or_else(|| ApiError::from(medex_core::error::Error::NotFound))?;
    state.medex.may_read_attachments(&actor, name.order).await?;
    let bytes = match state.files.file(&name.name).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(medex_core::error::Error::NotFound.into()),
        Err(error) => {
            tracing::error!(%error, "reading an upload failed");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the file could not be read; try again later",
            ));
        }
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(name.kind.mime()),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_recognised_by_content() {
        assert_eq!(
            ImageType::sniff(b"\xFF\xD8\xFF\xE0rest"),
            Some(ImageType::Jpeg)
        );
        assert_eq!(
            ImageType::sniff(b"\x89PNG\r\n\x1a\nrest"),
            Some(ImageType::Png)
        );
        assert_eq!(
            ImageType::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ImageType::Webp)
        );
        assert_eq!(ImageType::sniff(b"RIFF\0\0\0\0WAVEfmt "), None);
        assert_eq!(ImageType::sniff(b"<html><script>alert(1)</script>"), None);
        assert_eq!(ImageType::sniff(b""), None);
        assert_eq!(ImageType::sniff(b"\xFF\xD8"), None);
    }

    #[test]
    fn only_generated_names_parse() {
        let order = OrderId::from_uuid(Uuid::now_v7());
        let generated = StoredName::generate(order, ImageType::Png);
        assert_eq!(StoredName::parse(&generated.name), Some(generated.clone()));
        let random = "0123456789abcdef0123456789abcdef";
        for bad in [
            "../../etc/passwd".to_owned(),
            "/etc/passwd".to_owned(),
            "a%00.jpg".to_owned(),
            "a\0.jpg".to_owned(),
            format!("{order}-{random}.html"),
            format!("{order}-{random}.png.html"),
            format!("{order}-{random}"),
            format!("{order}-{random}x.png"),
            format!("{order}/{random}.png"),
            format!("{order}-../{random}.png"),
            format!("{}-{random}.png", order.to_string().to_uppercase()),
            format!("{}-{random}.png", order.as_uuid().simple()),
            format!("{order}-{}.png", &random[1..]),
            String::new(),
        ] {
            assert_eq!(StoredName::parse(&bad), None, "{bad:?}");
        }
        assert!(StoredName::parse(&format!("{order}-{random}.webp")).is_some());
    }
}
