//! Errors of the use cases. Each variant maps to one HTTP status in the transports; the mapping
//! lives there, the meaning lives here.

use crate::lifecycle::TransitionError;
use crate::store::StoreError;

/// A value that failed its invariant at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Not a UUID.
    #[error("not a valid id")]
    Id,
    /// Not an e-mail address.
    #[error("not a valid e-mail address")]
    Email,
    /// Latitude outside −90..=90 or not finite.
    #[error("latitude must be a finite number between -90 and 90")]
    Latitude,
    /// Longitude outside −180..=180 or not finite.
    #[error("longitude must be a finite number between -180 and 180")]
    Longitude,
    /// More than two decimals, or not finite, or absurdly large.
    #[error("amount must be finite with at most two decimals")]
    Money,
    /// Unknown role name.
    #[error("unknown role")]
    Role,
    /// Unknown order status name.
    #[error("unknown order status")]
    Status,
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, in the request's own naming (`items[2].quantity`).
    pub field: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl FieldError {
    /// Builds one.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a request could not be authenticated. Transports answer all of them alike (401), so a
/// client learns nothing about which accounts exist; the detail is for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No token, or not a token MedEx issued (bad signature, wrong algorithm, malformed).
    InvalidToken,
    /// Past its expiry.
    Expired,
    /// A refresh token where an access token belongs, or the reverse.
    WrongTokenType,
    /// A refresh token already used or revoked.
    Revoked,
    /// Unknown e-mail or wrong password.
    BadCredentials,
    /// The account was deactivated.
    Deactivated,
}

/// A request that is well-formed but collides with the current state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Conflict {
    /// The lifecycle does not allow this move now.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// Another account has this e-mail address.
    #[error("an account with this e-mail already exists")]
    EmailTaken,
    /// The driver is inactive, off duty or on another order.
    #[error("driver is not available")]
    DriverNotAvailable,
    /// A driver on an active order cannot go offline or on break.
    #[error("driver has an active order")]
    DriverHasActiveOrder,
    /// The vendor's proof policy is not met.
    #[error("proof of delivery missing: {}", .0.join(", "))]
    ProofMissing(Vec<&'static str>),
    /// The order has no delivery coordinates yet; the vendor must set them first.
    #[error("order needs a delivery location before it can be accepted")]
    LocationMissing,
    /// The order can no longer be edited (only pending orders can).
    #[error("only pending orders can be edited")]
    NotEditable,
    /// Proof can only be attached to an order on its way.
    #[error("proof can only be attached while the order is on its way")]
    NotInDelivery,
    /// Someone else changed the record in between; the caller may retry.
    #[error("the record was changed concurrently; retry")]
    ConcurrentUpdate,
}

impl Conflict {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Conflict::Transition(TransitionError::NotAllowed { .. }) => "invalid_transition",
            Conflict::Transition(TransitionError::ReasonRequired) => "reason_required",
            Conflict::EmailTaken => "email_taken",
            Conflict::DriverNotAvailable => "driver_not_available",
            Conflict::DriverHasActiveOrder => "driver_has_active_order",
            Conflict::ProofMissing(_) => "proof_missing",
            Conflict::LocationMissing => "location_missing",
            Conflict::NotEditable => "not_editable",
            Conflict::NotInDelivery => "not_in_delivery",
            Conflict::ConcurrentUpdate => "concurrent_update",
        }
    }
}

/// The error of every use case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Values out of range or missing (HTTP 422).
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// Not authenticated (HTTP 401).
    #[error("authentication failed")]
    Unauthenticated(AuthFailure),
    /// Authenticated but this role may not do this (HTTP 403).
    #[error("not allowed")]
    Forbidden,
    /// Does not exist, or the actor may not see it (HTTP 404).
    #[error("not found")]
    NotFound,
    /// Collides with the current state (HTTP 409).
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The store failed; the detail is for logs, never for clients (HTTP 503).
    #[error("storage unavailable")]
    Storage(#[source] StoreError),
}

impl Error {
    /// A single invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, message)])
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "validation_failed",
            Error::Unauthenticated(AuthFailure::Expired) => "token_expired",
            Error::Unauthenticated(AuthFailure::BadCredentials) => "bad_credentials",
            Error::Unauthenticated(AuthFailure::Deactivated) => "account_inactive",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Forbidden => "forbidden",
            Error::NotFound => "not_found",
            Error::Conflict(c) => c.code(),
            Error::Storage(_) => "storage_unavailable",
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Error::Conflict(Conflict::ConcurrentUpdate),
            StoreError::Duplicate(crate::store::UniqueKey::Email) => {
                Error::Conflict(Conflict::EmailTaken)
            }
            // Other unique keys are generated by MedEx itself; a collision is retried by the
            // caller, and reaching here means the retry budget ran out.
            other => Error::Storage(other),
        }
    }
}

impl From<TransitionError> for Error {
    fn from(e: TransitionError) -> Self {
        Error::Conflict(Conflict::Transition(e))
    }
}

/// Shorthand for use case results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
