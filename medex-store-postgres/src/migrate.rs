//! The schema, as versioned SQL migrations embedded in the binary and applied at start.
//!
//! A small migrator rather than a crate: the whole job is "apply the missing files in order, in
//! one transaction, under an advisory lock", and doing it here keeps the lock, the refusal of a
//! newer schema and the error messages under MedEx's control. Every instance runs it at start;
//! the transaction-level advisory lock makes instances starting together apply each migration
//! once (the others wait, then find nothing to do).

use deadpool_postgres::Client;

use crate::OpenError;

/// One migration: its number, a name, and its SQL.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in order. Add a file and a line; never edit a released one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "records_and_trail",
        sql: include_str!("../migrations/0001_records_and_trail.sql"),
    },
    Migration {
        version: 2,
        name: "instances",
        sql: include_str!("../migrations/0002_instances.sql"),
    },
    Migration {
        version: 3,
        name: "integrations",
        sql: include_str!("../migrations/0003_integrations.sql"),
    },
];

/// The advisory lock key of migrations (any fixed number; other MedEx locks use nearby ones).
const MIGRATION_LOCK: i64 = 7_262_730_600_000_000_001;

/// The newest schema version this build knows.
pub(crate) fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Applies the migrations the database lacks; refuses a database migrated by a newer MedEx.
/// Returns the versions it applied.
pub(crate) async fn run(client: &mut Client) -> Result<Vec<i32>, OpenError> {
    let failed = |step: &'static str| move |source| OpenError::Migration { step, source };
    let tx = client
        .transaction()
        .await
        .map_err(failed("begin the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(failed("take the migration lock"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS medex_migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(failed("create the migrations table"))?;
    let applied: Vec<(i32, String)> = tx
        .query(
            "SELECT version, name FROM medex_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(failed("read the applied migrations"))?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    if let Some(&(found, _)) = applied.iter().find(|(v, _)| *v > latest()) {
        return Err(OpenError::NewerSchema {
            found,
            supported: latest(),
        });
    }
    for (version, name) in &applied {
        let known = MIGRATIONS.iter().find(|m| m.version == *version);
        if known.is_none_or(|m| m.name != name) {
            return Err(OpenError::ForeignSchema(format!(
                "migration {version} is recorded as {name:?}, which this build does not know"
            )));
        }
    }
    let mut done = Vec::new();
    for migration in MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
    {
        tx.batch_execute(migration.sql)
            .await
            .map_err(failed("apply a migration"))?;
        tx.execute(
            "INSERT INTO medex_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await
        .map_err(failed("record a migration"))?;
        done.push(migration.version);
    }
    tx.commit().await.map_err(failed("commit the migrations"))?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
            assert!(!m.sql.trim().is_empty());
        }
    }
}
