//! The chain of custody made checkable by anyone: every history entry is hashed together with the
//! hash of the entry before it, and the server signs the newest hash with its custody key.
//!
//! **Canonical JSON** of an entry: the entry as served (`status_history[i]`, or
//! `GET /api/orders/{id}/custody`'s `entries[i]`) without its `hash` member, written with
//!
//! - its members sorted by name (they are all ASCII), nested objects likewise;
//! - no whitespace between tokens;
//! - `null` for an absent value, every member always present;
//! - strings in UTF-8, escaping only `"`, `\` and U+0000–U+001F (`\b \t \n \f \r` by those short
//!   forms, the others as `\u00xx` with lowercase hex digits);
//! - no numbers at all: degrees are decimal strings with six decimals, times RFC 3339 strings as
//!   stored.
//!
//! That is exactly what Python's `json.dumps(entry, sort_keys=True, separators=(",", ":"),
//! ensure_ascii=False)` writes. `hash` = lowercase hex SHA-256 of those bytes; `prev_hash` is the
//! `hash` of the entry before, and for the first entry the order id (lowercase, hyphenated).
//!
//! **Signature**: Ed25519 over the ASCII bytes of the order id followed by the head hash (the
//! newest entry's `hash`), 36 + 64 bytes, no separator; base64 (standard alphabet, padded) of the
//! 64 signature bytes. A key's id is the first 16 hex digits of SHA-256 of its 32 public key
//! bytes. The server signs when it appends an entry and stores the signature with the order, so
//! that rewriting entries in the store, even with recomputed hashes, fails the check: only the
//! holder of the key can sign a new head.
//!
//! Pure code: keys come in as values ([`CustodyKeys`]), never from files.

use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::Serialize;

use crate::model::{
    CustodyLocation, CustodySeal, Order, OrderId, OrderStatus, Role, Sha256, StatusChange, UserId,
};

/// An entry without its `hash`, members in name order: the bytes that are hashed.
#[derive(Serialize)]
struct Canonical<'a> {
    actor_id: &'a UserId,
    actor_role: Role,
    at: &'a DateTime<Utc>,
    location: Option<&'a CustodyLocation>,
    note: Option<&'a str>,
    prev_hash: &'a str,
    proof_sha256: &'a [Sha256],
    reason: Option<&'a str>,
    status: OrderStatus,
}

/// The canonical JSON of `entry` (see the module documentation).
pub fn canonical_json(entry: &StatusChange) -> Vec<u8> {
    let canonical = Canonical {
        actor_id: &entry.actor_id,
        actor_role: entry.actor_role,
        at: &entry.at,
        location: entry.location.as_ref(),
        note: entry.note.as_deref(),
        prev_hash: &entry.prev_hash,
        proof_sha256: &entry.proof_sha256,
        reason: entry.reason.as_deref(),
        status: entry.status,
    };
    // Plain structs of strings and enums always serialize.
    serde_json::to_vec(&canonical).unwrap_or_default()
}

/// The hash an entry must carry: hex SHA-256 of its canonical JSON.
pub fn entry_hash(entry: &StatusChange) -> String {
    Sha256::digest(&canonical_json(entry)).to_hex()
}

/// What the first entry of `order`'s chain points back to.
fn origin(order: OrderId) -> String {
    order.to_string()
}

/// `entry` linked behind `history` (the order's entries so far): its `prev_hash` and `hash` set.
pub fn link(order: OrderId, history: &[StatusChange], mut entry: StatusChange) -> StatusChange {
    entry.prev_hash = history
        .last()
        .map_or_else(|| origin(order), |last| last.hash.clone());
    entry.hash = entry_hash(&entry);
    entry
}

/// Appends `entry` to `order`'s history, linked behind the newest entry, and signs the new head
/// with the current key: the one way entries are added, so that no entry goes unsigned.
pub fn append(order: &mut Order, entry: StatusChange, keys: &CustodyKeys) {
    let linked = link(order.id, &order.status_history, entry);
    order.status_history.push(linked);
    order.custody_seal = keys.seal(order);
}

/// The bytes a custody signature covers: the order id and the head hash, as ASCII.
pub fn signed_message(order: OrderId, head_hash: &str) -> Vec<u8> {
    let mut message = order.to_string().into_bytes();
    message.extend_from_slice(head_hash.as_bytes());
    message
}

/// A custody key that could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not base64.
    #[error("not base64")]
    Base64,
    /// Not 32 bytes once decoded.
    #[error("must decode to 32 bytes")]
    Length,
    /// 32 bytes that are no Ed25519 public key.
    #[error("not an Ed25519 public key")]
    NotAPublicKey,
}

fn decode32(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| KeyError::Base64)?;
    bytes.try_into().map_err(|_| KeyError::Length)
}

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The id of a public key: the first 16 hex digits of SHA-256 of its 32 bytes.
pub fn key_id(public: &VerifyingKey) -> String {
    Sha256::digest(public.as_bytes()).to_hex()[..16].to_owned()
}

/// A public custody key as published by `GET /api/custody/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedKey {
    /// The key's id (see [`key_id`]), as named in custody records.
    pub key_id: String,
    /// Base64 of the raw 32-byte Ed25519 public key.
    pub public_key: String,
}

/// The custody keys in force: the current signing key, and the public keys of former ones, kept
/// so that records signed before a rotation still verify.
#[derive(Clone)]
pub struct CustodyKeys {
    current: SigningKey,
    current_id: String,
    former: Vec<(String, VerifyingKey)>,
}

impl fmt::Debug for CustodyKeys {
    // Never the seed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustodyKeys")
            .field("current", &self.current_id)
            .field(
                "former",
                &self.former.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl CustodyKeys {
    /// Signs with the Ed25519 key of this 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let current = SigningKey::from_bytes(&seed);
        let current_id = key_id(&current.verifying_key());
        Self {
            current,
            current_id,
            former: Vec::new(),
        }
    }

    /// Reads a seed given as base64 (what `MEDEX_CUSTODY_KEY` holds).
    pub fn from_base64_seed(seed: &str) -> Result<Self, KeyError> {
        decode32(seed).map(Self::from_seed)
    }

    /// Also accepts signatures of a former key, given as base64 of its 32 public bytes. The
    /// current key and keys already listed are not listed twice.
    pub fn with_former(mut self, public_key: &str) -> Result<Self, KeyError> {
        let public = VerifyingKey::from_bytes(&decode32(public_key)?)
            .map_err(|_| KeyError::NotAPublicKey)?;
        let id = key_id(&public);
        if id != self.current_id && self.former.iter().all(|(known, _)| *known != id) {
            self.former.push((id, public));
        }
        Ok(self)
    }

    /// The current key's public half, as base64.
    pub fn public_key(&self) -> String {
        encode(self.current.verifying_key().as_bytes())
    }

    /// The current key's seed, as base64: for the operator's key file, never for clients.
    pub fn seed(&self) -> String {
        encode(self.current.as_bytes())
    }

    /// The id of the key that signs now.
    pub fn current_key_id(&self) -> &str {
        &self.current_id
    }

    /// The current key, then the former ones.
    pub fn published(&self) -> Vec<PublishedKey> {
        std::iter::once(PublishedKey {
            key_id: self.current_id.clone(),
            public_key: self.public_key(),
        })
        .chain(self.former.iter().map(|(id, key)| PublishedKey {
            key_id: id.clone(),
            public_key: encode(key.as_bytes()),
        }))
        .collect()
    }

    fn verifying_key(&self, id: &str) -> Option<VerifyingKey> {
        if id == self.current_id {
            return Some(self.current.verifying_key());
        }
        self.former
            .iter()
            .find(|(known, _)| known == id)
            .map(|(_, key)| *key)
    }

    /// Signs `order`'s newest entry with the current key; `None` for an order without history.
    pub fn seal(&self, order: &Order) -> Option<CustodySeal> {
        let head = order.status_history.last()?;
        let signature = self.current.sign(&signed_message(order.id, &head.hash));
        Some(CustodySeal {
            key_id: self.current_id.clone(),
            signature: encode(&signature.to_bytes()),
        })
    }

    /// Whether `seal` is a signature of a known key over `order` and `head_hash`.
    fn verifies(&self, order: OrderId, head_hash: &str, seal: &CustodySeal) -> bool {
        let Some(key) = self.verifying_key(&seal.key_id) else {
            return false;
        };
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&seal.signature) else {
            return false;
        };
        let Ok(signature) = ed25519_dalek::Signature::from_slice(&bytes) else {
            return false;
        };
        key.verify(&signed_message(order, head_hash), &signature)
            .is_ok()
    }
}

/// An order's chain of custody with what checking it found (`GET /api/orders/{id}/custody`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustodyRecord {
    /// The order.
    pub order_id: OrderId,
    /// Its history, oldest first, as stored.
    pub entries: Vec<StatusChange>,
    /// The newest entry's `hash`, as stored.
    pub head_hash: Option<String>,
    /// The stored signature (base64), if the order was ever signed.
    pub signature: Option<String>,
    /// The key that made it.
    pub key_id: Option<String>,
    /// Every hash re-derived from its entry, every link to the entry before intact, the first
    /// entry pointing to the order, and the signature valid over the head by a known key.
    pub verified: bool,
}

impl CustodyRecord {
    /// Re-derives every hash of `order`'s history and checks the chain and its signature.
    pub fn check(order: &Order, keys: &CustodyKeys) -> Self {
        let entries = &order.status_history;
        let mut expected_prev = origin(order.id);
        let mut chain_intact = !entries.is_empty();
        for entry in entries {
            let derived = entry_hash(entry);
            chain_intact &= entry.prev_hash == expected_prev && entry.hash == derived;
            expected_prev = derived;
        }
        let head_hash = entries.last().map(|e| e.hash.clone());
        let signed = match (&order.custody_seal, &head_hash) {
            (Some(seal), Some(head)) => keys.verifies(order.id, head, seal),
            _ => false,
        };
        Self {
            order_id: order.id,
            entries: entries.clone(),
            head_hash,
            signature: order.custody_seal.as_ref().map(|s| s.signature.clone()),
            key_id: order.custody_seal.as_ref().map(|s| s.key_id.clone()),
            verified: chain_intact && signed,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use uuid::Uuid;

    use super::*;
    use crate::conformance::fixtures;
    use crate::model::*;

    fn entry(status: OrderStatus, minute: u32) -> StatusChange {
        let at = Utc.with_ymd_and_hms(2026, 6, 1, 9, minute, 0).unwrap();
        StatusChange::new(
            status,
            at,
            UserId::from_uuid(Uuid::from_u128(7)),
            Role::Driver,
        )
    }

    fn signed_order(keys: &CustodyKeys) -> Order {
        let mut order = fixtures::order(
            OrderId::from_uuid(Uuid::from_u128(1)),
            VendorId::from_uuid(Uuid::from_u128(2)),
            UserId::from_uuid(Uuid::from_u128(3)),
        );
        for (i, status) in [OrderStatus::Pending, OrderStatus::Accepted]
            .into_iter()
            .enumerate()
        {
            append(&mut order, entry(status, i as u32), keys);
        }
        let mut failed = entry(OrderStatus::Failed, 9);
        failed.reason = Some("other".into());
        failed.note = Some("dog \"Rex\"\nat the gate\u{1}\t ünïcode".into());
        failed.location = Some(CustodyLocation::new(
            Coordinates::new(52.525, -0.00001).unwrap(),
            Utc.with_ymd_and_hms(2026, 6, 1, 9, 8, 59).unwrap(),
        ));
        failed.proof_sha256 = vec![Sha256::digest(b"photo")];
        append(&mut order, failed, keys);
        order
    }

    #[test]
    fn canonical_json_is_sorted_compact_and_escapes_only_what_json_must() {
        let keys = CustodyKeys::from_seed([5; 32]);
        let order = signed_order(&keys);
        let failed = &order.status_history[2];
        let text = String::from_utf8(canonical_json(failed)).unwrap();
        let expected = format!(
            concat!(
                r#"{{"actor_id":"00000000-0000-0000-0000-000000000007","actor_role":"driver","#,
                r#""at":"2026-06-01T09:09:00Z","location":{{"latitude":"52.525000","#,
                r#""longitude":"-0.000010","recorded_at":"2026-06-01T09:08:59Z"}},"#,
                r#""note":"dog \"Rex\"\nat the gate\u0001\t ünïcode","prev_hash":"{}","#,
                r#""proof_sha256":["{}"],"reason":"other","status":"failed"}}"#
            ),
            order.status_history[1].hash,
            Sha256::digest(b"photo").to_hex()
        );
        assert_eq!(text, expected);
        assert_eq!(failed.hash, Sha256::digest(expected.as_bytes()).to_hex());
    }

    #[test]
    fn the_chain_starts_at_the_order_and_links_every_entry() {
        let keys = CustodyKeys::from_seed([5; 32]);
        let order = signed_order(&keys);
        let history = &order.status_history;
        assert_eq!(history[0].prev_hash, order.id.to_string());
        assert_eq!(history[1].prev_hash, history[0].hash);
        assert_eq!(history[2].prev_hash, history[1].hash);
        let record = CustodyRecord::check(&order, &keys);
        assert!(record.verified);
        assert_eq!(record.head_hash.as_deref(), Some(history[2].hash.as_str()));
        assert_eq!(record.key_id.as_deref(), Some(keys.current_key_id()));
    }

    #[test]
    fn any_edit_fails_the_check_even_with_recomputed_hashes() {
        let keys = CustodyKeys::from_seed([5; 32]);
        let order = signed_order(&keys);
        let check = |edit: &dyn Fn(&mut Order), why: &str| {
            let mut tampered = order.clone();
            edit(&mut tampered);
            assert!(!CustodyRecord::check(&tampered, &keys).verified, "{why}");
        };
        check(
            &|o| o.status_history[1].actor_role = Role::Admin,
            "an entry edited",
        );
        check(
            &|o| {
                o.status_history[1].actor_role = Role::Admin;
                let mut rebuilt = Vec::new();
                for e in o.status_history.clone() {
                    let linked = link(o.id, &rebuilt, e);
                    rebuilt.push(linked);
                }
                o.status_history = rebuilt;
            },
            "an entry edited and every hash recomputed",
        );
        check(
            &|o| drop(o.status_history.pop()),
            "the newest entry removed",
        );
        check(&|o| drop(o.status_history.remove(0)), "the first removed");
        check(&|o| o.status_history.swap(0, 1), "entries reordered");
        check(
            &|o| o.id = OrderId::from_uuid(Uuid::from_u128(99)),
            "another order",
        );
        check(&|o| o.custody_seal = None, "the signature removed");
        check(
            &|o| {
                let other = CustodyKeys::from_seed([6; 32]);
                o.custody_seal = other.seal(o);
            },
            "signed by an unknown key",
        );
        check(
            &|o| o.custody_seal.as_mut().unwrap().signature = "not base64!".into(),
            "a garbled signature",
        );
        check(&|o| o.status_history.clear(), "no history");
    }

    #[test]
    fn former_keys_still_verify_what_they_signed() {
        let old = CustodyKeys::from_seed([5; 32]);
        let order = signed_order(&old);
        let new = CustodyKeys::from_seed([6; 32]);
        assert!(!CustodyRecord::check(&order, &new).verified);
        let rotated = new.with_former(&old.public_key()).unwrap();
        assert!(CustodyRecord::check(&order, &rotated).verified);
        let published = rotated.published();
        assert_eq!(published.len(), 2);
        assert_eq!(published[0].key_id, rotated.current_key_id());
        assert_eq!(published[1].key_id, old.current_key_id());
        // Listing a key twice, or the current one as former, lists it once.
        let again = rotated
            .with_former(&old.public_key())
            .unwrap()
            .with_former(&new_public(&[6; 32]))
            .unwrap();
        assert_eq!(again.published().len(), 2);
    }

    fn new_public(seed: &[u8; 32]) -> String {
        CustodyKeys::from_seed(*seed).public_key()
    }

    #[test]
    fn keys_are_read_from_base64_and_never_printed() {
        let keys = CustodyKeys::from_seed([5; 32]);
        let again = CustodyKeys::from_base64_seed(&keys.seed()).unwrap();
        assert_eq!(again.public_key(), keys.public_key());
        assert_eq!(keys.current_key_id().len(), 16);
        assert_eq!(
            CustodyKeys::from_base64_seed("not base64!").err(),
            Some(KeyError::Base64)
        );
        assert_eq!(
            CustodyKeys::from_base64_seed("c2hvcnQ=").err(),
            Some(KeyError::Length)
        );
        assert!(!format!("{keys:?}").contains(&keys.seed()));
        assert!(keys.clone().with_former("c2hvcnQ=").is_err());
    }
}
