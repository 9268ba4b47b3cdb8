//! Dates, periods and UTC offsets in query strings.

use chrono::{DateTime, Days, FixedOffset, NaiveDate, NaiveTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// JSON (default) or CSV.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    /// `application/json`.
    #[default]
    Json,
    /// `text/csv`, as a download.
    Csv,
}

/// A range of local dates: `from` not after `to`, at most 366 days before it.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DateRange {
    /// First day, `YYYY-MM-DD`.
    pub(crate) from: Option<NaiveDate>,
    /// Last day, inclusive (default: today).
    pub(crate) to: Option<NaiveDate>,
    /// UTC offset of the days, `+02:00` (default `Z`).
    #[param(schema_with = crate::schemas::utc_offset)]
    pub(crate) tz: Option<String>,
    /// `json` (default) or `csv`.
    #[param(inline)]
    pub(crate) format: Option<Format>,
}

impl DateRange {
    /// `(from, to)`, defaulting `to` to today and `from` to `default_days` before `to`.
    pub(crate) fn resolve(
        &self,
        now: DateTime<Utc>,
        offset: FixedOffset,
        default_days: u64,
    ) -> Result<(NaiveDate, NaiveDate), ApiError> {
        let to = self
            .to
            .unwrap_or_else(|| now.with_timezone(&offset).date_naive());
        let from = match self.from {
            Some(from) => from,
            None => to
                .checked_sub_days(Days::new(default_days))
                .ok_or_else(|| ApiError::invalid("to", "out of range"))?,
        };
        Ok((from, to))
    }
}

/// A UTC offset: `Z` or `UTC` (any case), `±HH:MM` or `±HHMM` up to 14 hours, surrounding white
/// space ignored. A `+` decoded to a space from a query string (`tz=+02:00` unencoded) is read as
/// `+`. `schemas::utc_offset` states the same rule for the document.
pub(crate) fn parse_offset(raw: Option<&str>) -> Result<FixedOffset, ApiError> {
    let bad = || ApiError::invalid("tz", "must be a UTC offset like +02:00, -05:30 or Z");
    let Some(raw) = raw else {
        return FixedOffset::east_opt(0).ok_or_else(bad);
    };
    let trimmed = raw.trim();
    if trimmed.eq_ignore_ascii_case("z") || trimmed.eq_ignore_ascii_case("utc") {
        return FixedOffset::east_opt(0).ok_or_else(bad);
    }
    let (sign, rest) = match trimmed.as_bytes().first() {
        Some(b'+') => (1, &trimmed[1..]),
        Some(b'-') => (-1, &trimmed[1..]),
        Some(b'0'..=b'9') if raw.starts_with(' ') => (1, trimmed),
        _ => return Err(bad()),
    };
    let digits = match *rest.as_bytes() {
        [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => [h1, h2, m1, m2],
        _ => return Err(bad()),
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let number = |tens: u8, ones: u8| i32::from(tens - b'0') * 10 + i32::from(ones - b'0');
    let (hours, minutes) = (number(digits[0], digits[1]), number(digits[2], digits[3]));
    if minutes >= 60 || hours > 14 {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).ok_or_else(bad)
}

/// An instant given as RFC 3339 or as a date (the start of that UTC day; with `end_of_day`, the
/// start of the next, so a date as an end includes the whole day).
pub(crate) fn parse_instant(
    field: &'static str,
    raw: &str,
    end_of_day: bool,
) -> Result<DateTime<Utc>, ApiError> {
    let raw = raw.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(at.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| ApiError::invalid(field, "must be a date (YYYY-MM-DD) or an RFC 3339 time"))?;
    let date = if end_of_day {
        date.succ_opt()
            .ok_or_else(|| ApiError::invalid(field, "out of range"))?
    } else {
        date
    };
    Ok(date.and_time(NaiveTime::MIN).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        let secs = |raw: Option<&str>| parse_offset(raw).map(|o| o.local_minus_utc()).ok();
        assert_eq!(secs(None), Some(0));
        assert_eq!(secs(Some("Z")), Some(0));
        assert_eq!(secs(Some("+02:00")), Some(7200));
        assert_eq!(secs(Some(" 02:00")), Some(7200));
        assert_eq!(secs(Some("-05:30")), Some(-19800));
        assert_eq!(secs(Some("+0100")), Some(3600));
        assert_eq!(secs(Some("+25:00")), None);
        assert_eq!(secs(Some("02:00")), None);
        assert_eq!(secs(Some("+02:60")), None);
        assert_eq!(secs(Some("Europe/Berlin")), None);
        assert_eq!(secs(Some("+")), None);
        // The colon, if any, separates hours from minutes; nowhere else.
        assert_eq!(secs(Some("+0:200")), None);
        assert_eq!(secs(Some("+0200:")), None);
        assert_eq!(secs(Some("+:0200")), None);
        assert_eq!(secs(Some(" utc ")), Some(0));
        assert_eq!(secs(Some("-1400")), Some(-50400));
    }

    /// The document's pattern for `tz` accepts exactly what `parse_offset` accepts.
    #[test]
    fn the_documented_pattern_is_the_parser() {
        let schema = crate::schemas::utc_offset();
        let pattern = regex::Regex::new(schema.pattern.as_deref().unwrap()).unwrap();
        let pieces = [
            "", " ", "\t", "\u{3000}", "+", "-", ":", "0", "2", "00", "14", "15", "59", "60", "z",
            "UTC", "utc", "x",
        ];
        // Every string of up to four pieces: signs, colons, digits at the limits, white space.
        let mut candidates = vec![String::new()];
        for _ in 0..4 {
            candidates = candidates
                .iter()
                .flat_map(|c| pieces.iter().map(move |p| format!("{c}{p}")))
                .collect();
        }
        let accepted = candidates
            .iter()
            .filter(|raw| {
                let documented = pattern.is_match(raw);
                assert_eq!(documented, parse_offset(Some(raw)).is_ok(), "{raw:?}");
                documented
            })
            .count();
        assert!(accepted > 1000, "{accepted}");
    }

    #[test]
    fn instants() {
        let at = |raw, end| parse_instant("from", raw, end).map(|t| t.to_rfc3339()).ok();
        assert_eq!(
            at("2026-03-01", false).as_deref(),
            Some("2026-03-01T00:00:00+00:00")
        );
        assert_eq!(
            at("2026-03-01", true).as_deref(),
            Some("2026-03-02T00:00:00+00:00")
        );
        assert_eq!(
            at("2026-03-01T10:00:00+02:00", false).as_deref(),
            Some("2026-03-01T08:00:00+00:00")
        );
        assert_eq!(at("yesterday", false), None);
    }
}
