//! The one mapping from PostgreSQL and pool failures to [`StoreError`].

use deadpool_postgres::PoolError;
use medex_core::store::{StoreError, UniqueKey};
use tokio_postgres::error::SqlState;

/// The unique constraints of the schema, by the names the migrations give them.
const UNIQUE_KEYS: &[(&str, UniqueKey)] = &[
    ("users_email_key", UniqueKey::Email),
    ("orders_order_number_key", UniqueKey::OrderNumber),
    ("orders_tracking_token_key", UniqueKey::TrackingToken),
    ("orders_external_ref_key", UniqueKey::ExternalOrder),
    ("api_keys_hash_key", UniqueKey::ApiKeyHash),
];

/// What a failed statement means for the caller.
pub(crate) fn from_pg(error: tokio_postgres::Error) -> StoreError {
    let Some(db) = error.as_db_error() else {
        // No answer from the server: the connection broke, timed out or never opened.
        return StoreError::Unavailable(error.to_string());
    };
    let code = db.code();
    if *code == SqlState::UNIQUE_VIOLATION
        && let Some(key) = db
            .constraint()
            .and_then(|name| UNIQUE_KEYS.iter().find(|(n, _)| *n == name))
    {
        return StoreError::Duplicate(key.1);
    }
    if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED {
        // Another transaction won a race on the same rows: like a stale version.
        return StoreError::Conflict;
    }
    // Shutdown, restart, read-only standby, disk full, too many connections, and anything the
    // schema did not expect: the store cannot serve this now. The detail is for logs.
    StoreError::Unavailable(format!("{} ({})", db.message(), code.code()))
}

/// What a failure to get a pooled connection means: the database is out of reach for now.
pub(crate) fn from_pool(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(e) => from_pg(e),
        other => StoreError::Unavailable(format!("no database connection: {other}")),
    }
}
