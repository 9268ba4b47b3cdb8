//! Bytes on disk: the record envelope and the key layouts.
//!
//! Every stored value is `[SCHEMA_VERSION, json...]`. Keys are built so that sled's byte order is
//! the order lists need: ids are 16 big-endian bytes (UUIDv7 sorts by creation) and times are
//! 12 bytes (seconds with the sign bit flipped, then nanoseconds) so they sort chronologically,
//! before 1970 too.

use chrono::{DateTime, Utc};
use medex_core::model::{DriverId, VendorId};
use medex_core::store::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The layout of every record and key this build writes. Bump it when they change; a store marked
/// with a higher number is refused at open rather than misread.
pub(crate) const SCHEMA_VERSION: u8 = 1;

/// Length of an id in a key.
pub(crate) const ID_LEN: usize = 16;
/// Length of a time in a key.
pub(crate) const TIME_LEN: usize = 12;

/// Serialises `value` into an envelope, and refuses values that would not read back (serde_json
/// writes NaN and infinities as `null`, and `Money` beyond ±10^13 fails to parse): storing one
/// would leave a record that can never be read or updated again.
pub(crate) fn encode<T: Serialize + DeserializeOwned>(
    what: &str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(512);
    out.push(SCHEMA_VERSION);
    serde_json::to_writer(&mut out, value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode {what}: {e}")))?;
    if let Err(e) = serde_json::from_slice::<T>(&out[1..]) {
        return Err(StoreError::Corrupt(format!(
            "refusing to store {what} that would not read back: {e}"
        )));
    }
    Ok(out)
}

/// Reads an envelope back. Never panics: bad bytes are `Corrupt`.
pub(crate) fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&SCHEMA_VERSION, body)) => serde_json::from_slice(body)
            .map_err(|e| StoreError::Corrupt(format!("undecodable {what}: {e}"))),
        Some((&other, _)) => Err(StoreError::Corrupt(format!(
            "{what} was written with schema version {other}; this build reads {SCHEMA_VERSION}"
        ))),
        None => Err(StoreError::Corrupt(format!("empty {what} record"))),
    }
}

/// A time as 12 sortable bytes.
pub(crate) fn time_key(at: DateTime<Utc>) -> [u8; TIME_LEN] {
    let secs = (at.timestamp() as u64) ^ (1 << 63);
    let mut key = [0; TIME_LEN];
    key[..8].copy_from_slice(&secs.to_be_bytes());
    key[8..].copy_from_slice(&at.timestamp_subsec_nanos().to_be_bytes());
    key
}

/// Concatenates key parts.
pub(crate) fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The smallest key greater than every key starting with `prefix`, or `None` when there is none
/// (the prefix is empty or all `0xff`).
pub(crate) fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// The 16 id bytes at `at` in `key`, or `Corrupt` when the key is too short.
pub(crate) fn id_at(key: &[u8], at: usize) -> Result<[u8; ID_LEN], StoreError> {
    key.get(at..at + ID_LEN)
        .and_then(|bytes| <[u8; ID_LEN]>::try_from(bytes).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("malformed index key of {} bytes", key.len())))
}

/// The key of a `(vendor, source, external id)` order reference: the source is length-prefixed so
/// that no two pairs give the same bytes.
pub(crate) fn external_ref_key(vendor: VendorId, source: &str, id: &str) -> Vec<u8> {
    let len = u32::try_from(source.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes();
    key(&[&vendor.to_bytes(), &len, source.as_bytes(), id.as_bytes()])
}

/// The key of one trail entry: driver, time, then a sequence number so that fixes with the same
/// time keep their arrival order.
pub(crate) fn trail_key(driver: DriverId, at: DateTime<Utc>, seq: u64) -> Vec<u8> {
    key(&[&driver.to_bytes(), &time_key(at), &seq.to_be_bytes()])
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn time_keys_sort_like_times() {
        let times = [
            Utc.timestamp_opt(-5_000_000_000, 0).unwrap(),
            Utc.timestamp_opt(-1, 999_999_999).unwrap(),
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.timestamp_opt(0, 1).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 5).unwrap(),
            Utc.timestamp_opt(1_700_000_001, 0).unwrap(),
        ];
        for pair in times.windows(2) {
            assert!(time_key(pair[0]) < time_key(pair[1]), "{pair:?}");
        }
    }

    #[test]
    fn successor_bounds_a_prefix() {
        assert_eq!(successor(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(successor(&[0xff, 0xff]), None);
        assert_eq!(successor(&[]), None);
    }

    #[test]
    fn bad_bytes_are_corrupt_not_panics() {
        let check = |bytes: &[u8]| {
            assert!(matches!(
                decode::<u64>("test", bytes),
                Err(StoreError::Corrupt(_))
            ));
        };
        check(&[]);
        check(&[SCHEMA_VERSION]);
        check(&[SCHEMA_VERSION, b'{']);
        check(&[SCHEMA_VERSION + 1, b'1']);
        assert_eq!(decode::<u64>("test", &[SCHEMA_VERSION, b'7']).unwrap(), 7);
        assert!(id_at(&[0; 10], 0).is_err());
    }

    #[test]
    fn values_that_would_not_read_back_are_refused() {
        assert!(encode("test", &1.5f64).is_ok());
        assert!(matches!(
            encode("test", &f64::NAN),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn external_refs_do_not_collide() {
        let vendor = VendorId::from_uuid(uuid::Uuid::nil());
        assert_ne!(
            external_ref_key(vendor, "ab", "c"),
            external_ref_key(vendor, "a", "bc")
        );
    }
}
