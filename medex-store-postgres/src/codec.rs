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

/// Encodes `value` for a `jsonb` column, refusing what would not read back (serde_json writes
/// NaN and infinities as `null`): storing it would leave a record that can never be read again.
/// Text that PostgreSQL cannot hold is protected (see [`protect`]).
pub(crate) fn encode<T: Serialize + DeserializeOwned>(
    what: &str,
    value: &T,
) -> Result<Jsonb, StoreError> {
    let mut json = Vec::with_capacity(512);
    serde_json::to_writer(&mut json, value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode {what}: {e}")))?;
    if let Err(e) = serde_json::from_slice::<T>(&json) {
        return Err(StoreError::Corrupt(format!(
            "refusing to store {what} that would not read back: {e}"
        )));
    }
    let mut out = Vec::with_capacity(json.len() + 1);
    out.push(JSONB_FORMAT);
    protect_json(&json, &mut out);
    Ok(Jsonb(out))
}

/// Decodes a record. Never panics: bad JSON is `Corrupt`.
pub(crate) fn decode<T: DeserializeOwned>(what: &str, json: JsonText<'_>) -> Result<T, StoreError> {
    let restored = restore_json(json.0);
    serde_json::from_slice(&restored)
        .map_err(|e| StoreError::Corrupt(format!("undecodable {what}: {e}")))
}

/// U+FFFF, a noncharacter: the escape of text PostgreSQL cannot hold.
const MARK: &str = "\u{FFFF}";

/// PostgreSQL text, and so JSONB, cannot hold the NUL character, which MedEx text may contain
/// (a customer's note is the customer's). So NUL is kept as U+FFFF followed by `0`, and U+FFFF
/// itself as U+FFFF followed by `1`: a reversible change that leaves all other text as it is.
/// Key columns go through it too, so lookups compare like with like.
pub(crate) fn protect(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['\0', '\u{FFFF}']) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\0' => out.push_str("\u{FFFF}0"),
            '\u{FFFF}' => out.push_str("\u{FFFF}1"),
            c => out.push(c),
        }
    }
    out.into()
}

/// [`protect`] on JSON text as serde_json writes it: NUL appears as the escape `\u0000` (never
/// raw), U+FFFF raw. Appends the result to `out`.
fn protect_json(json: &[u8], out: &mut Vec<u8>) {
    let mark = MARK.as_bytes();
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json[i + 1..].starts_with(b"u0000") {
                out.extend_from_slice(mark);
                out.push(b'0');
                i += 6;
            } else {
                // The escaped character too, so that `\\` never starts another escape.
                out.extend_from_slice(&json[i..(i + 2).min(json.len())]);
                i += 2;
            }
        } else if json[i..].starts_with(mark) {
            out.extend_from_slice(mark);
            out.push(b'1');
            i += mark.len();
        } else {
            out.push(json[i]);
            i += 1;
        }
    }
}

/// Undoes [`protect_json`] on JSON text read back.
fn restore_json(json: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mark = MARK.as_bytes();
    if !json.windows(mark.len()).any(|w| w == mark) {
        return json.into();
    }
    let mut out = Vec::with_capacity(json.len());
    let mut i = 0;
    while i < json.len() {
        if json[i..].starts_with(mark) {
            match json.get(i + mark.len()) {
                Some(b'0') => out.extend_from_slice(b"\\u0000"),
                Some(b'1') => out.extend_from_slice(mark),
                // Not written by `protect_json`: left as found.
                _ => {
                    out.extend_from_slice(mark);
                    i += mark.len();
                    continue;
                }
            }
            i += mark.len() + 1;
        } else {
            out.push(json[i]);
            i += 1;
        }
    }
    out.into()
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
    fn text_postgres_cannot_hold_is_protected_and_restored() {
        for text in [
            "plain",
            "a\0b",
            "\0",
            "\\u0000",
            "\\\0",
            "\u{FFFF}",
            "\u{FFFF}0",
            "\u{FFFF}1\0\u{FFFF}",
            "\u{1}\n\"",
        ] {
            let encoded = encode("text", &text.to_string()).unwrap();
            let json = &encoded.0[1..];
            assert!(!has_nul(json), "{text:?} as {json:?}");
            let back: String = decode("text", JsonText(json)).unwrap();
            assert_eq!(back, text);
            let key = protect(text);
            assert!(!key.contains('\0'));
            assert_eq!(key == text, !text.contains(['\0', '\u{FFFF}']));
        }
        assert_ne!(protect("\0"), protect("\u{FFFF}"));
    }

    /// Whether JSON text holds a NUL escape (an escaped backslash followed by `u0000` is not one).
    fn has_nul(json: &[u8]) -> bool {
        let text: String = serde_json::from_slice(json).unwrap();
        text.contains('\0')
    }

    #[test]
    fn encode_refuses_what_would_not_read_back() {
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
