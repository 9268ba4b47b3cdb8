//! Values between Rust and PostgreSQL: records as JSONB, times split at the microsecond.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Duration, Utc};
use medex_core::store::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

/// The version byte of PostgreSQL's binary JSONB format (the JSON text follows it).
const JSONB_FORMAT: u8 = 1;

/// A record encoded for a `jsonb` parameter: the format byte, then the JSON.
#[derive(Debug)]
pub(crate) struct Jsonb(Vec<u8>);

impl ToSql for Jsonb {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.put_slice(&self.0);
        } else {
            out.put_slice(&self.0[1..]);
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }

    to_sql_checked!();
}

/// The JSON text of a `jsonb` or `json` column, undecoded.
pub(crate) struct JsonText<'a>(pub(crate) &'a [u8]);

impl<'a> FromSql<'a> for JsonText<'a> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        if *ty != Type::JSONB {
            return Ok(JsonText(raw));
        }
        match raw.split_first() {
            Some((&JSONB_FORMAT, text)) => Ok(JsonText(text)),
            _ => Err("unknown jsonb format version".into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
}

/// Encodes `value` for a `jsonb` column, refusing what would not read back: serde_json writes NaN
/// and infinities as `null`, and PostgreSQL's text (so JSONB too) cannot hold a NUL character.
/// Storing either would fail later, or leave a record that can never be read again.
pub(crate) fn encode<T: Serialize + DeserializeOwned>(
    what: &str,
    value: &T,
) -> Result<Jsonb, StoreError> {
    let mut out = Vec::with_capacity(512);
    out.push(JSONB_FORMAT);
    serde_json::to_writer(&mut out, value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode {what}: {e}")))?;
    if has_nul_escape(&out[1..]) {
        return Err(StoreError::Corrupt(format!(
            "refusing to store {what} with a NUL character, which PostgreSQL text cannot hold"
        )));
    }
    if let Err(e) = serde_json::from_slice::<T>(&out[1..]) {
        return Err(StoreError::Corrupt(format!(
            "refusing to store {what} that would not read back: {e}"
        )));
    }
    Ok(Jsonb(out))
}

/// Whether JSON text written by serde_json holds the escape of a NUL character (`\u0000`), as
/// opposed to an escaped backslash followed by `u0000`.
fn has_nul_escape(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json[i + 1..].starts_with(b"u0000") {
                return true;
            }
            // Skip the escaped character, so that `\\` never starts another escape.
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Decodes a record. Never panics: bad JSON is `Corrupt`.
pub(crate) fn decode<T: DeserializeOwned>(what: &str, json: JsonText<'_>) -> Result<T, StoreError> {
    serde_json::from_slice(json.0)
        .map_err(|e| StoreError::Corrupt(format!("undecodable {what}: {e}")))
}

/// A time cut to PostgreSQL's microseconds, and the nanoseconds below them (0..1000), so that a
/// `timestamptz` column plus a `smallint` keep chrono's nanoseconds exactly.
pub(crate) fn split_time(at: DateTime<Utc>) -> (DateTime<Utc>, i16) {
    let below = (at.timestamp_subsec_nanos() % 1000) as i16;
    (at - Duration::nanoseconds(i64::from(below)), below)
}

/// PostgreSQL's earliest `timestamptz`, 4714-11-24 BC (Julian day 0); chrono's latest time is
/// before PostgreSQL's latest.
fn earliest() -> DateTime<Utc> {
    chrono::NaiveDate::from_ymd_opt(-4713, 11, 24)
        .expect("a valid date")
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
}

/// [`split_time`] for a bound of a range query: a bound before PostgreSQL's earliest time becomes
/// that time, which compares with every storable time as the bound would.
pub(crate) fn split_bound(at: DateTime<Utc>) -> (DateTime<Utc>, i16) {
    split_time(at.max(earliest()))
}

/// The time [`split_time`] split.
pub(crate) fn join_time(cut: DateTime<Utc>, below: i16) -> DateTime<Utc> {
    cut + Duration::nanoseconds(i64::from(below))
}

/// A page size or trail limit as a SQL `LIMIT`.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn nul_characters_are_found_and_escaped_backslashes_are_not() {
        let check = |text: &str, expected: bool| {
            let json = serde_json::to_vec(&text).unwrap();
            assert_eq!(has_nul_escape(&json), expected, "{text:?} as {json:?}");
        };
        check("plain", false);
        check("a\0b", true);
        check("\0", true);
        check("\\u0000", false);
        check("\\\0", true);
        check("\u{1}\n\"", false);
    }

    #[test]
    fn encode_refuses_what_would_not_read_back() {
        assert!(matches!(
            encode("text", &"a\0".to_string()),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            encode("number", &f64::NAN),
            Err(StoreError::Corrupt(_))
        ));
        let ok = encode("text", &"fine".to_string()).unwrap();
        assert_eq!(ok.0, b"\x01\"fine\"");
    }

    #[test]
    fn bounds_before_postgres_time_begins_are_raised_to_it() {
        let (cut, below) = split_bound(DateTime::<Utc>::MIN_UTC);
        assert_eq!((cut, below), (earliest(), 0));
        let t = Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap();
        assert_eq!(split_bound(t), split_time(t));
    }

    #[test]
    fn times_split_at_the_microsecond_and_join_back() {
        let base = Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap();
        for ns in [0, 1, 999, 1000, 123_456_789, 999_999_999] {
            let at = base + Duration::nanoseconds(ns);
            let (cut, below) = split_time(at);
            assert_eq!(cut.timestamp_subsec_nanos() % 1000, 0, "{at}");
            assert!((0..1000).contains(&below));
            assert_eq!(join_time(cut, below), at);
        }
    }
}
