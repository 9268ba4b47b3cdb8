//! Time and randomness come in from outside, so tests can fix both.

use std::sync::Mutex;

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use uuid::Uuid;

use crate::model::HandoverCode;

/// The current time.
pub trait Clock: Send + Sync + 'static {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told: for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// Starts at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    /// Moves time forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }

    /// Jumps to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where ids, tokens and order numbers come from.
pub trait Entropy: Send + Sync + 'static {
    /// Fills `buf` with unpredictable bytes.
    fn fill(&self, buf: &mut [u8]);

    /// A UUIDv7 for `now`: time-ordered, so keys sort by creation.
    fn uuid(&self, now: DateTime<Utc>) -> Uuid {
        let mut random = [0u8; 10];
        self.fill(&mut random);
        let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
    }

    /// A URL-safe secret of 128 random bits (22 characters).
    fn token(&self) -> String {
        let mut bytes = [0u8; 16];
        self.fill(&mut bytes);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// `ORD-` and 8 characters from an alphabet without look-alikes (0/O, 1/I).
    fn order_number(&self) -> String {
        const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
        let mut bytes = [0u8; 8];
        self.fill(&mut bytes);
        let tail: String = bytes
            .iter()
            .map(|b| ALPHABET[usize::from(b % 32)] as char)
            .collect();
        format!("ORD-{tail}")
    }

    /// Six uniformly drawn digits: the handover code of a new order. Draws above the largest
    /// multiple of 10^6 are drawn again, so that no code is likelier than another.
    fn handover_code(&self) -> HandoverCode {
        const CODES: u32 = 1_000_000;
        const LIMIT: u32 = u32::MAX - u32::MAX % CODES;
        loop {
            let mut bytes = [0u8; 4];
            self.fill(&mut bytes);
            let n = u32::from_le_bytes(bytes);
            if n < LIMIT
                && let Ok(code) = HandoverCode::parse(&format!("{:06}", n % CODES))
            {
                return code;
            }
        }
    }
}

/// The operating system's random generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) {
        rand::rng().fill_bytes(buf);
    }
}

/// A seeded generator: the same seed gives the same ids, for reproducible tests.
#[derive(Debug)]
pub struct SeededEntropy(Mutex<StdRng>);

impl SeededEntropy {
    /// From a seed.
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(StdRng::seed_from_u64(seed)))
    }
}

impl Entropy for SeededEntropy {
    fn fill(&self, buf: &mut [u8]) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fill_bytes(buf);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn generated_values_have_their_shapes() {
        let e = SeededEntropy::new(7);
        let token = e.token();
        assert_eq!(token.len(), 22);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let number = e.order_number();
        assert!(number.starts_with("ORD-") && number.len() == 12, "{number}");
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let (a, b) = (e.uuid(t), e.uuid(t + Duration::milliseconds(1)));
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b, "later ids sort later");
        let codes: Vec<String> = (0..200)
            .map(|_| e.handover_code().as_str().to_owned())
            .collect();
        assert!(codes.iter().all(|c| c.len() == 6));
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert!(distinct.len() > 190, "codes are drawn, not repeated");
    }

    #[test]
    fn same_seed_same_values() {
        assert_eq!(SeededEntropy::new(1).token(), SeededEntropy::new(1).token());
        assert_ne!(SeededEntropy::new(1).token(), SeededEntropy::new(2).token());
    }
}
