//! What instances sharing the database coordinate through it: the configuration's version,
//! leases, the sweep of expired refresh sessions, and uploaded files.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use medex_core::config::SystemConfig;
use medex_core::files::is_valid_file_name;
use medex_core::store::{LeaseClaim, RefreshSession, StoreError, StoredConfig};

use crate::codec::{JsonText, decode, encode, protect, split_time};
use crate::errors::from_pg;
use crate::records::client;

pub(crate) async fn system_config(pool: &Pool) -> Result<Option<StoredConfig>, StoreError> {
    let client = client(pool).await?;
    let statement = client
        .prepare_cached("SELECT record, version FROM system_config WHERE id = 1")
        .await
        .map_err(from_pg)?;
    let Some(row) = client.query_opt(&statement, &[]).await.map_err(from_pg)? else {
        return Ok(None);
    };
    let json: JsonText<'_> = row
        .try_get(0)
        .map_err(|e| StoreError::Corrupt(format!("unreadable system configuration: {e}")))?;
    let version: i64 = row.get(1);
    Ok(Some(StoredConfig {
        config: decode("system configuration", json)?,
        version: u64::try_from(version)
            .map_err(|_| StoreError::Corrupt("negative configuration version".into()))?,
    }))
}

/// Version 1 inserts (finding no row), later versions update the row holding the one before:
/// touching no row is a `Conflict`, as for records.
pub(crate) async fn save_system_config(
    pool: &Pool,
    config: &SystemConfig,
    version: u64,
) -> Result<(), StoreError> {
    let record = encode("system configuration", config)?;
    let version = i64::try_from(version).map_err(|_| StoreError::Conflict)?;
    let sql = match version {
        1 => {
            "INSERT INTO system_config (id, record, version) VALUES (1, $1, $2)
             ON CONFLICT (id) DO NOTHING"
        }
        v if v > 1 => {
            "UPDATE system_config SET record = $1, version = $2
             WHERE id = 1 AND version = $2::bigint - 1"
        }
        _ => return Err(StoreError::Conflict),
    };
    let client = client(pool).await?;
    let statement = client.prepare_cached(sql).await.map_err(from_pg)?;
    match client
        .execute(&statement, &[&record, &version])
        .await
        .map_err(from_pg)?
    {
        1 => Ok(()),
        _ => Err(StoreError::Conflict),
    }
}

/// One statement: an insert, or an update of a row whose lease is the holder's own or has ended.
/// The row lock makes racing callers take turns, and each re-checks the condition on the row
/// the one before it left.
pub(crate) async fn acquire_lease(pool: &Pool, claim: LeaseClaim<'_>) -> Result<bool, StoreError> {
    let client = client(pool).await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO medex_leases AS l (name, holder, until) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
             WHERE l.holder = EXCLUDED.holder OR l.until <= $4",
        )
        .await
        .map_err(from_pg)?;
    let granted = client
        .execute(
            &statement,
            &[
                &protect(claim.name),
                &protect(claim.holder),
                &claim.until,
                &claim.now,
            ],
        )
        .await
        .map_err(from_pg)?;
    Ok(granted == 1)
}

pub(crate) async fn release_lease(pool: &Pool, name: &str, holder: &str) -> Result<(), StoreError> {
    let client = client(pool).await?;
    let statement = client
        .prepare_cached("DELETE FROM medex_leases WHERE name = $1 AND holder = $2")
        .await
        .map_err(from_pg)?;
    client
        .execute(&statement, &[&protect(name), &protect(holder)])
        .await
        .map_err(from_pg)?;
    Ok(())
}

/// `expires_at` holds the expiry cut to microseconds: rows below the cut of `before` are
/// expired, and rows at it are decided by the exact time in their record.
pub(crate) async fn prune_refresh_sessions(
    pool: &Pool,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let (cut, _) = split_time(before);
    let client = client(pool).await?;
    let below = client
        .prepare_cached("DELETE FROM refresh_sessions WHERE expires_at < $1")
        .await
        .map_err(from_pg)?;
    let mut removed = client.execute(&below, &[&cut]).await.map_err(from_pg)?;
    let at_cut = client
        .prepare_cached("SELECT id, record FROM refresh_sessions WHERE expires_at = $1")
        .await
        .map_err(from_pg)?;
    let delete = client
        .prepare_cached("DELETE FROM refresh_sessions WHERE id = $1")
        .await
        .map_err(from_pg)?;
    for row in client.query(&at_cut, &[&cut]).await.map_err(from_pg)? {
        let id: String = row.get(0);
        let session: RefreshSession = decode("refresh session", row.get(1))?;
        if session.expires_at < before {
            removed += client.execute(&delete, &[&id]).await.map_err(from_pg)?;
        }
    }
    Ok(removed)
}

fn checked(name: &str) -> Result<&str, StoreError> {
    if is_valid_file_name(name) {
        Ok(name)
    } else {
        Err(StoreError::Unavailable(
            "refused a file name that is not a generated one".into(),
        ))
    }
}

/// An insert that finds the name taken touches no row: `Conflict`, the stored file untouched.
pub(crate) async fn put_file(pool: &Pool, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let name = checked(name)?;
    let client = client(pool).await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO uploads (name, bytes) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .await
        .map_err(from_pg)?;
    match client
        .execute(&statement, &[&name, &bytes])
        .await
        .map_err(from_pg)?
    {
        1 => Ok(()),
        _ => Err(StoreError::Conflict),
    }
}

pub(crate) async fn file(pool: &Pool, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let name = checked(name)?;
    let client = client(pool).await?;
    let statement = client
        .prepare_cached("SELECT bytes FROM uploads WHERE name = $1")
        .await
        .map_err(from_pg)?;
    Ok(client
        .query_opt(&statement, &[&name])
        .await
        .map_err(from_pg)?
        .map(|row| row.get(0)))
}

pub(crate) async fn delete_file(pool: &Pool, name: &str) -> Result<(), StoreError> {
    let name = checked(name)?;
    let client = client(pool).await?;
    let statement = client
        .prepare_cached("DELETE FROM uploads WHERE name = $1")
        .await
        .map_err(from_pg)?;
    client
        .execute(&statement, &[&name])
        .await
        .map_err(from_pg)?;
    Ok(())
}
