//! The umbrella error of the use cases, [`Error`], over the leaf errors raised beside their code
//! ([`ValueError`] in the model, [`Invalid`] fields, [`AuthFailure`] of tokens and passwords,
//! [`Denial`] of permissions, [`TransitionError`] of the lifecycle, [`StoreError`] of stores).
//! Leaves never import this module; it imports them.
//!
//! Each variant answers with one status, the same over HTTP and WebSocket handshakes
//! ([`Error::status`]):
//!
//! | variant | status |
//! |---|---|
//! | `Invalid` | 422, with the fields |
//! | `Handover` | 422, `code` `handover_code_required` or `handover_code_invalid` |
//! | `IdempotencyKeyReused` | 422 |
//! | `Unauthenticated` | 401 |
//! | `Forbidden` | 403 |
//! | `NotFound` | 404 |
//! | `Conflict` | 409, `code` names the conflict (`proof_missing`, `invalid_transition`, …) |
//! | `RateLimited` | 429 |
//! | `Storage` | 503; the source is for logs, never for clients |

use std::borrow::Cow;

pub use crate::auth::AuthFailure;
pub use crate::fields::{FieldError, Invalid};
use crate::lifecycle::TransitionError;
pub use crate::model::ValueError;
pub use crate::permissions::Denial;
use crate::store::StoreError;

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
    /// The order is scheduled for later: no driver before its `scheduled_for`.
    #[error("order is scheduled for later and cannot be dispatched yet")]
    NotYetScheduled,
    /// The order can no longer be edited (only pending orders can).
    #[error("only pending orders can be edited")]
    NotEditable,
    /// The order has its destination already; only one that arrived without it can be given one.
    #[error("the order has its destination; only one that arrived without it can be given one")]
    DestinationSet,
    /// Proof can only be attached to an order on its way.
    #[error("proof can only be attached while the order is on its way")]
    NotInDelivery,
    /// Someone else changed the record in between; the caller may retry.
    #[error("the record was changed concurrently; retry")]
    ConcurrentUpdate,
    /// Too many wrong handover codes were given in this attempt: it can only fail now, with
    /// reason `handover_code_failed`.
    #[error(
        "too many wrong handover codes: delivery is locked; only a failed attempt (handover_code_failed) remains"
    )]
    HandoverLocked,
    /// An order keeps a bounded number of proofs.
    #[error("this order has as many proofs as it can keep")]
    TooManyProofs,
    /// The first request with this `Idempotency-Key` is still running; retry shortly to get its
    /// answer.
    #[error("a request with this Idempotency-Key is in progress; retry shortly")]
    IdempotencyKeyInUse,
    /// A pharmacy holds as many API keys or webhook endpoints as it may; remove one first.
    #[error("{0}")]
    LimitReached(&'static str),
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
            Conflict::NotYetScheduled => "not_yet_scheduled",
            Conflict::NotEditable => "not_editable",
            Conflict::DestinationSet => "destination_already_set",
            Conflict::NotInDelivery => "not_in_delivery",
            Conflict::ConcurrentUpdate => "concurrent_update",
            Conflict::HandoverLocked => "handover_locked",
            Conflict::TooManyProofs => "too_many_proofs",
            Conflict::IdempotencyKeyInUse => "idempotency_key_in_use",
            Conflict::LimitReached(_) => "limit_reached",
        }
    }
}

/// A delivery that needs the recipient's handover code did not carry the right one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandoverRefusal {
    /// No code was given.
    #[error("this order needs the recipient's handover_code")]
    Required,
    /// The code is not the order's; it counted as a wrong try.
    #[error("the handover code is wrong; {remaining} tries left")]
    Invalid {
        /// Wrong codes still accepted before delivery locks.
        remaining: u32,
    },
}

/// The error of every use case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Values out of range or missing (HTTP 422).
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// A delivery's handover code was missing or wrong (HTTP 422).
    #[error(transparent)]
    Handover(HandoverRefusal),
    /// This `Idempotency-Key` came with another request before (HTTP 422).
    #[error("this Idempotency-Key was used with another request")]
    IdempotencyKeyReused,
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
    /// Too soon after the previous request of its kind (HTTP 429): a driver's fixes faster
    /// than the minimum interval, whatever socket or request they come by.
    #[error("too many requests; retry after {retry_after_ms} ms")]
    RateLimited {
        /// How long until one is accepted again, milliseconds.
        retry_after_ms: u64,
    },
    /// The store failed; the detail is for logs, never for clients (HTTP 503).
    #[error("storage unavailable")]
    Storage(#[source] StoreError),
}

impl Error {
    /// A single invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, message)])
    }

    /// The HTTP status this error answers with, the same in the HTTP API and in WebSocket
    /// handshakes (see the table of the module).
    pub fn status(&self) -> u16 {
        match self {
            Error::Invalid(_) | Error::Handover(_) | Error::IdempotencyKeyReused => 422,
            Error::Unauthenticated(_) => 401,
            Error::Forbidden => 403,
            Error::NotFound => 404,
            Error::Conflict(_) => 409,
            Error::RateLimited { .. } => 429,
            Error::Storage(_) => 503,
        }
    }

    /// What a client may be told, for people. Never a storage detail: that is only for logs.
    pub fn public_detail(&self) -> Cow<'static, str> {
        match self {
            Error::Invalid(fields) => match fields.as_slice() {
                [one] => format!("{}: {}", one.field, one.message).into(),
                _ => "some values are invalid".into(),
            },
            Error::Unauthenticated(failure) => match failure {
                AuthFailure::BadCredentials => "wrong e-mail or password",
                AuthFailure::Expired => "the token has expired",
                AuthFailure::Deactivated => "the account is deactivated",
                _ => "the token is missing, invalid or revoked",
            }
            .into(),
            Error::Handover(refusal) => refusal.to_string().into(),
            Error::IdempotencyKeyReused => self.to_string().into(),
            Error::Forbidden => "your role may not do this".into(),
            Error::NotFound => "not found".into(),
            Error::Conflict(conflict) => conflict.to_string().into(),
            Error::RateLimited { .. } => "too many requests; retry shortly".into(),
            Error::Storage(_) => "storage is unavailable; try again later".into(),
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "validation_failed",
            Error::IdempotencyKeyReused => "idempotency_key_reused",
            Error::Handover(HandoverRefusal::Required) => "handover_code_required",
            Error::Handover(HandoverRefusal::Invalid { .. }) => "handover_code_invalid",
            Error::Unauthenticated(AuthFailure::Expired) => "token_expired",
            Error::Unauthenticated(AuthFailure::BadCredentials) => "bad_credentials",
            Error::Unauthenticated(AuthFailure::Deactivated) => "account_inactive",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Forbidden => "forbidden",
            Error::NotFound => "not_found",
            Error::Conflict(c) => c.code(),
            Error::RateLimited { .. } => "rate_limited",
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

impl From<Invalid> for Error {
    fn from(Invalid(fields): Invalid) -> Self {
        Error::Invalid(fields)
    }
}

impl From<FieldError> for Error {
    fn from(error: FieldError) -> Self {
        Error::Invalid(vec![error])
    }
}

impl From<Denial> for Error {
    fn from(denial: Denial) -> Self {
        match denial {
            Denial::Forbidden => Error::Forbidden,
            Denial::Hidden => Error::NotFound,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_has_one_status_and_a_public_detail() {
        let check = |error: Error, status: u16, code: &str| {
            assert_eq!((error.status(), error.code()), (status, code), "{error:?}");
            assert!(!error.public_detail().is_empty());
        };
        check(Error::invalid("email", "bad"), 422, "validation_failed");
        check(
            Error::Unauthenticated(AuthFailure::Expired),
            401,
            "token_expired",
        );
        check(Error::Forbidden, 403, "forbidden");
        check(Error::NotFound, 404, "not_found");
        check(Conflict::EmailTaken.into(), 409, "email_taken");
        check(
            Error::Handover(HandoverRefusal::Invalid { remaining: 2 }),
            422,
            "handover_code_invalid",
        );
        check(
            Error::Handover(HandoverRefusal::Required),
            422,
            "handover_code_required",
        );
        check(Conflict::HandoverLocked.into(), 409, "handover_locked");
        check(Error::IdempotencyKeyReused, 422, "idempotency_key_reused");
        check(
            Conflict::IdempotencyKeyInUse.into(),
            409,
            "idempotency_key_in_use",
        );
        check(
            Error::Storage(StoreError::Unavailable("disk /var/secret full".into())),
            503,
            "storage_unavailable",
        );
    }

    #[test]
    fn storage_details_stay_out_of_what_clients_see() {
        let error = Error::Storage(StoreError::Unavailable("disk /var/secret full".into()));
        assert!(!error.public_detail().contains("secret"));
    }

    #[test]
    fn one_invalid_field_is_named_in_the_detail() {
        assert_eq!(
            Error::invalid("email", "is bad").public_detail(),
            "email: is bad"
        );
    }
}
