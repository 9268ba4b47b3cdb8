//! Timestamps written to JSON exactly as chrono writes them (RFC 3339 in UTC with `Z`, and as many
//! fractional digits as the value needs: none, 3, 6 or 9), only faster.
//!
//! chrono hands serde a `Display` value, which serde_json writes a character or two at a time,
//! checking every piece for characters to escape: in a tracking view with a dozen timestamps that
//! was most of the encoding time. Here the text is made in a stack buffer and written at once.
//! Use it with `#[serde(serialize_with = "crate::timestamp::serialize")]` (or
//! `timestamp::option::serialize` for an `Option`); reading stays chrono's.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// `9999-12-31T23:59:59.999999999Z`.
const MAX_LEN: usize = 30;

/// Serializes `at` as chrono would, without going through `Display`.
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut text = Text::default();
    if text.rfc3339(at) {
        serializer.serialize_str(text.as_str())
    } else {
        // Years outside 0..=9999 take a sign and more digits: rare enough for chrono's path.
        at.serialize(serializer)
    }
}

/// The same for optional timestamps.
pub mod option {
    use chrono::{DateTime, Utc};
    use serde::{Serialize, Serializer};

    struct Fast<'a>(&'a DateTime<Utc>);

    impl Serialize for Fast<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            super::serialize(self.0, serializer)
        }
    }

    /// Serializes `at` as chrono would (`null` when absent).
    pub fn serialize<S: Serializer>(
        at: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        at.as_ref().map(Fast).serialize(serializer)
    }
}

/// The text being written: ASCII digits and separators only.
#[derive(Default)]
struct Text {
    bytes: [u8; MAX_LEN],
    len: usize,
}

impl Text {
    /// Writes `at`; `false` (and nothing usable) for a year that does not take four digits.
    fn rfc3339(&mut self, at: &DateTime<Utc>) -> bool {
        let year = at.year();
        if !(0..=9999).contains(&year) {
            return false;
        }
        // A leap second is kept as a nanosecond count of a second or more; chrono prints it as
        // second 60.
        let (mut second, mut nano) = (at.second(), at.nanosecond());
        if nano >= 1_000_000_000 {
            second += 1;
            nano -= 1_000_000_000;
        }
        self.digits(year.unsigned_abs(), 4);
        self.byte(b'-');
        self.digits(at.month(), 2);
        self.byte(b'-');
        self.digits(at.day(), 2);
        self.byte(b'T');
        self.digits(at.hour(), 2);
        self.byte(b':');
        self.digits(at.minute(), 2);
        self.byte(b':');
        self.digits(second, 2);
        if nano != 0 {
            self.byte(b'.');
            if nano % 1_000_000 == 0 {
                self.digits(nano / 1_000_000, 3);
            } else if nano % 1_000 == 0 {
                self.digits(nano / 1_000, 6);
            } else {
                self.digits(nano, 9);
            }
        }
        self.byte(b'Z');
        true
    }

    fn byte(&mut self, b: u8) {
        self.bytes[self.len] = b;
        self.len += 1;
    }

    /// `value` in exactly `width` decimal digits, zero-padded (callers keep it within width).
    fn digits(&mut self, mut value: u32, width: usize) {
        for at in (self.len..self.len + width).rev() {
            self.bytes[at] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.len += width;
    }

    fn as_str(&self) -> &str {
        // Only ASCII was written, so this cannot fail; the empty fallback is never taken.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};
    use proptest::prelude::*;
    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct Both {
        #[serde(serialize_with = "serialize")]
        fast: DateTime<Utc>,
        chrono: DateTime<Utc>,
        #[serde(serialize_with = "option::serialize")]
        fast_option: Option<DateTime<Utc>>,
        chrono_option: Option<DateTime<Utc>>,
    }

    fn assert_same_as_chrono(at: DateTime<Utc>) {
        for option in [Some(at), None] {
            let both = Both {
                fast: at,
                chrono: at,
                fast_option: option,
                chrono_option: option,
            };
            let json = serde_json::to_value(&both).unwrap();
            assert_eq!(json["fast"], json["chrono"], "{at:?}");
            assert_eq!(json["fast_option"], json["chrono_option"], "{option:?}");
        }
    }

    #[test]
    fn every_fraction_width_and_the_edges_match_chrono() {
        let second = Utc.with_ymd_and_hms(2026, 11, 24, 9, 5, 7).unwrap();
        for nanos in [
            0,
            1,
            999,
            1_000,
            120_000,
            5_000_000,
            500_000_000,
            999_999_999,
        ] {
            assert_same_as_chrono(second + chrono::Duration::nanoseconds(nanos));
        }
        assert_same_as_chrono(DateTime::UNIX_EPOCH);
        assert_same_as_chrono(Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap());
        assert_same_as_chrono(Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap());
        // Outside four-digit years chrono's own path is taken.
        assert_same_as_chrono(Utc.with_ymd_and_hms(-1, 6, 1, 0, 0, 0).unwrap());
        assert_same_as_chrono(Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap());
        // A leap second.
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_250_000_000)
            .unwrap()
            .and_utc();
        assert_same_as_chrono(leap);
    }

    proptest! {
        #[test]
        fn any_timestamp_is_written_as_chrono_writes_it(
            seconds in -62_167_219_200i64..253_402_300_800,
            nanos in prop_oneof![
                Just(0u32),
                (0u32..1000).prop_map(|ms| ms * 1_000_000),
                (0u32..1_000_000).prop_map(|us| us * 1_000),
                0u32..1_000_000_000,
            ],
        ) {
            let at = DateTime::from_timestamp(seconds, nanos).unwrap();
            assert_same_as_chrono(at);
        }
    }
}
