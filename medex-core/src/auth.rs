//! Passwords (argon2id) and tokens (JWT, HS256 pinned).
//!
//! Access tokens live 15 minutes, refresh tokens 7 days by default. Every token says what it is
//! (`typ`), so a refresh token is never accepted as an access token. Expiry is checked against the
//! injected clock, not the system's, so tests control it.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::model::{Role, SessionId, UserId};

/// Why a request could not be authenticated. Transports answer all of them alike (401), so a
/// client learns nothing about which accounts exist; the detail is for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No token, or not a token MedEx issued (bad signature, wrong algorithm, malformed).
    InvalidToken,
    /// Past its expiry.
    Expired,
    /// A refresh token where an access token belongs, or the reverse.
    WrongTokenType,
    /// A refresh token already used or revoked.
    Revoked,
    /// Unknown e-mail or wrong password.
    BadCredentials,
    /// The account was deactivated.
    Deactivated,
}

/// Whether a shared secret is too regular to be random: fewer than 10 distinct bytes (16 × `a`,
/// a short pattern repeated), or under 64 bits by the Shannon estimate of its byte frequencies.
/// A heuristic against secrets typed by hand, not a proof of randomness.
pub fn looks_guessable(secret: &[u8]) -> bool {
    let mut counts = [0usize; 256];
    for &byte in secret {
        counts[usize::from(byte)] += 1;
    }
    let distinct = counts.iter().filter(|&&n| n > 0).count();
    let len = secret.len() as f64;
    let bits_per_byte: f64 = counts
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| {
            let p = n as f64 / len;
            -p * p.log2()
        })
        .sum();
    distinct < 10 || bits_per_byte * len < 64.0
}

/// Hashes and checks passwords. Implementations for servers run the work off the async threads.
#[async_trait]
pub trait PasswordHasher: Send + Sync + 'static {
    /// A PHC string for `password`.
    async fn hash(&self, password: String) -> String;
    /// Whether `password` matches the PHC string `hash` (false for a malformed hash).
    async fn verify(&self, password: String, hash: String) -> bool;
}

/// Argon2id with given parameters, computed on the calling thread.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    params: Params,
}

impl Default for Argon2Hasher {
    /// The OWASP minimum, argon2's own default: m = 19 MiB, t = 2, p = 1.
    fn default() -> Self {
        Self {
            params: Params::default(),
        }
    }
}

impl Argon2Hasher {
    /// Cheap parameters (8 KiB, one pass) for tests, where thousands of hashes must be quick.
    /// Still argon2id, still salted; never for production.
    pub fn insecure_fast() -> Self {
        Self {
            params: Params::new(8, 1, 1, None).expect("valid argon2 params"),
        }
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes on this thread.
    pub fn hash_blocking(&self, password: &str) -> String {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            // Only fails for parameters out of argon2's bounds, which `Params` already checked.
            .unwrap_or_default()
    }

    /// Verifies on this thread. The parameters come from the hash itself, so hashes made with
    /// other parameters still verify.
    pub fn verify_blocking(&self, password: &str, hash: &str) -> bool {
        match PasswordHash::new(hash) {
            Ok(parsed) => self
                .argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// As [`Argon2Hasher::hash_blocking`], working in `memory` (grown to the parameters' size
    /// once, then reused): the same PHC string, without allocating 19 MiB per hash.
    pub fn hash_in(&self, password: &str, memory: &mut Argon2Memory) -> String {
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_bytes = [0u8; 64];
        let Ok(salt_bytes) = salt.as_salt().decode_b64(&mut salt_bytes) else {
            return String::new();
        };
        let argon2 = self.argon2();
        let blocks = memory.at_least(self.params.block_count());
        let output = argon2::password_hash::Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
            argon2
                .hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, blocks)
                .map_err(|_| argon2::password_hash::Error::Crypto)
        });
        let (Ok(output), Ok(params)) = (output, (&self.params).try_into()) else {
            return String::new();
        };
        PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        }
        .to_string()
    }

    /// As [`Argon2Hasher::verify_blocking`], working in `memory`.
    pub fn verify_in(&self, password: &str, hash: &str, memory: &mut Argon2Memory) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let (Ok(algorithm), Ok(params), Some(expected), Some(salt)) = (
            Algorithm::try_from(parsed.algorithm),
            Params::try_from(&parsed),
            parsed.hash,
            parsed.salt,
        ) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from) {
            None => Version::default(),
            Some(Ok(v)) => v,
            Some(Err(_)) => return false,
        };
        let mut salt_bytes = [0u8; 64];
        let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        let blocks = memory.at_least(params.block_count());
        let argon2 = Argon2::new(algorithm, version, params);
        let computed = argon2::password_hash::Output::init_with(expected.len(), |out| {
            argon2
                .hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, blocks)
                .map_err(|_| argon2::password_hash::Error::Crypto)
        });
        // `Output` compares in constant time.
        computed.is_ok_and(|c| c == expected)
    }
}

/// Argon2's working memory, kept by a caller that hashes again and again (one per concurrent
/// hash), so that each hash does not allocate its 19 MiB anew: the C allocator keeps freed
/// blocks of that size in each thread's arena, and a pool of threads would keep one each.
#[derive(Default)]
pub struct Argon2Memory(Vec<argon2::Block>);

impl std::fmt::Debug for Argon2Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Argon2Memory({} blocks)", self.0.len())
    }
}

impl Argon2Memory {
    fn at_least(&mut self, blocks: usize) -> &mut [argon2::Block] {
        if self.0.len() < blocks {
            self.0.resize(blocks, argon2::Block::default());
        }
        &mut self.0[..blocks]
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: String) -> String {
        self.hash_blocking(&password)
    }

    async fn verify(&self, password: String, hash: String) -> bool {
        self.verify_blocking(&password, &hash)
    }
}

/// Which kind of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// Authorises API calls.
    Access,
    /// Buys a new pair of tokens, once.
    Refresh,
}

/// What a MedEx token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account.
    pub sub: UserId,
    /// Its role when issued (the account is re-read on every request anyway).
    pub role: Role,
    /// Access or refresh.
    pub typ: TokenType,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Unique id; refresh tokens are tracked by it.
    pub jti: String,
    /// The session (one login and its refreshes) the token belongs to.
    #[serde(default)]
    pub sid: Option<SessionId>,
    /// The account's token generation when issued (see [`crate::model::Sessions`]).
    #[serde(default)]
    pub generation: u32,
}

/// Whom a token is for: the account, its role, its session and its token generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    /// The account.
    pub user: UserId,
    /// Its role.
    pub role: Role,
    /// The session.
    pub session: SessionId,
    /// The account's token generation.
    pub generation: u32,
}

/// Token lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetimes {
    /// Access token lifetime.
    pub access: Duration,
    /// Refresh token lifetime.
    pub refresh: Duration,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            access: Duration::minutes(15),
            refresh: Duration::days(7),
        }
    }
}

/// The secret is shorter than 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the JWT secret must be at least 32 bytes")]
pub struct WeakSecret;

/// Issues and checks tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetimes: TokenLifetimes,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("TokenKeys")
            .field("lifetimes", &self.lifetimes)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Keys from a secret of at least 32 bytes.
    pub fn new(secret: &[u8], lifetimes: TokenLifetimes) -> Result<Self, WeakSecret> {
        if secret.len() < 32 {
            return Err(WeakSecret);
        }
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        // Expiry is checked against the injected clock in `verify`; the claim stays mandatory.
        validation.validate_exp = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            lifetimes,
        })
    }

    /// The lifetimes in force.
    pub fn lifetimes(&self) -> TokenLifetimes {
        self.lifetimes
    }

    /// Signs a token of `typ` for `subject`, valid from `now`; returns it with its claims.
    pub fn issue(
        &self,
        subject: Subject,
        typ: TokenType,
        jti: String,
        now: DateTime<Utc>,
    ) -> (String, Claims) {
        let ttl = match typ {
            TokenType::Access => self.lifetimes.access,
            TokenType::Refresh => self.lifetimes.refresh,
        };
        let claims = Claims {
            sub: subject.user,
            role: subject.role,
            typ,
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
            jti,
            sid: Some(subject.session),
            generation: subject.generation,
        };
        let token = jsonwebtoken::encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &self.encoding,
        )
        // HS256 encoding of a serialisable struct cannot fail.
        .unwrap_or_default();
        (token, claims)
    }

    /// Checks signature, algorithm, type and expiry.
    pub fn verify(
        &self,
        token: &str,
        expected: TokenType,
        now: DateTime<Utc>,
    ) -> Result<Claims, AuthFailure> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthFailure::Expired,
                _ => AuthFailure::InvalidToken,
            })?;
        let claims = data.claims;
        if claims.typ != expected {
            return Err(AuthFailure::WrongTokenType);
        }
        if claims.exp <= now.timestamp() {
            return Err(AuthFailure::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use chrono::TimeZone;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn hashes_in_reused_memory_are_the_same_phc_strings() {
        for hasher in [
            Argon2Hasher::insecure_fast(),
            Argon2Hasher {
                params: Params::new(64, 2, 1, None).unwrap(),
            },
        ] {
            let mut memory = Argon2Memory::default();
            let reused = hasher.hash_in("correct horse", &mut memory);
            let fresh = hasher.hash_blocking("correct horse");
            let prefix = |h: &str| h.rsplitn(3, '$').nth(2).unwrap().to_owned();
            assert_eq!(
                prefix(&reused),
                prefix(&fresh),
                "same algorithm, version, params"
            );
            for hash in [&reused, &fresh] {
                assert!(hasher.verify_blocking("correct horse", hash));
                assert!(hasher.verify_in("correct horse", hash, &mut memory));
                assert!(!hasher.verify_in("wrong horse", hash, &mut memory));
            }
            assert!(!hasher.verify_in("correct horse", "not a hash", &mut memory));
        }
        // A hash made with bigger parameters grows the memory it is verified in.
        let mut small = Argon2Memory::default();
        let _ = Argon2Hasher::insecure_fast().hash_in("x", &mut small);
        let big = Argon2Hasher {
            params: Params::new(64, 1, 1, None).unwrap(),
        };
        let hash = big.hash_blocking("x");
        assert!(Argon2Hasher::insecure_fast().verify_in("x", &hash, &mut small));
    }

    fn keys() -> TokenKeys {
        TokenKeys::new(SECRET, TokenLifetimes::default()).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    fn user() -> UserId {
        UserId::from_uuid(uuid::Uuid::from_u128(42))
    }

    fn subject(role: Role) -> Subject {
        Subject {
            user: user(),
            role,
            session: SessionId::from_uuid(uuid::Uuid::from_u128(7)),
            generation: 3,
        }
    }

    #[test]
    fn passwords_verify_only_when_right() {
        let h = Argon2Hasher::insecure_fast();
        let hash = h.hash_blocking("correct horse");
        assert!(hash.starts_with("$argon2id$"));
        assert!(h.verify_blocking("correct horse", &hash));
        assert!(!h.verify_blocking("wrong horse", &hash));
        assert!(!h.verify_blocking("correct horse", "not a hash"));
        // Hashes record their parameters: the default hasher verifies a fast hash and back.
        assert!(Argon2Hasher::default().verify_blocking("correct horse", &hash));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(
            TokenKeys::new(b"short", TokenLifetimes::default()).err(),
            Some(WeakSecret)
        );
    }

    #[test]
    fn tokens_round_trip_and_expire() {
        let k = keys();
        let (token, claims) = k.issue(subject(Role::Driver), TokenType::Access, "j".into(), now());
        assert_eq!(k.verify(&token, TokenType::Access, now()), Ok(claims));
        let later = now() + Duration::minutes(15);
        assert_eq!(
            k.verify(&token, TokenType::Access, later),
            Err(AuthFailure::Expired)
        );
    }

    #[test]
    fn refresh_is_not_access() {
        let k = keys();
        let (token, _) = k.issue(subject(Role::User), TokenType::Refresh, "j".into(), now());
        assert_eq!(
            k.verify(&token, TokenType::Access, now()),
            Err(AuthFailure::WrongTokenType)
        );
        assert!(k.verify(&token, TokenType::Refresh, now()).is_ok());
    }

    #[test]
    fn forged_tokens_are_refused() {
        let k = keys();
        let (token, _) = k.issue(subject(Role::User), TokenType::Access, "j".into(), now());
        let other = TokenKeys::new(
            b"another-secret-another-secret-xx",
            TokenLifetimes::default(),
        )
        .unwrap();
        assert_eq!(
            other.verify(&token, TokenType::Access, now()),
            Err(AuthFailure::InvalidToken)
        );

        // Same claims, `alg: none`, no signature.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = token.split('.').nth(1).unwrap();
        let none = format!(
            "{}.{payload}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#)
        );
        assert_eq!(
            k.verify(&none, TokenType::Access, now()),
            Err(AuthFailure::InvalidToken)
        );

        // Payload changed to admin, signature kept.
        let claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(payload).unwrap()).unwrap();
        let mut admin = claims.clone();
        admin["role"] = "admin".into();
        let parts: Vec<_> = token.split('.').collect();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64.encode(admin.to_string()),
            parts[2]
        );
        assert_eq!(
            k.verify(&tampered, TokenType::Access, now()),
            Err(AuthFailure::InvalidToken)
        );

        // No expiry at all.
        let mut no_exp = claims;
        no_exp.as_object_mut().unwrap().remove("exp");
        let unsigned = jsonwebtoken::encode(
            &Header::default(),
            &no_exp,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(
            k.verify(&unsigned, TokenType::Access, now()),
            Err(AuthFailure::InvalidToken)
        );

        assert_eq!(
            k.verify("garbage", TokenType::Access, now()),
            Err(AuthFailure::InvalidToken)
        );
    }

    #[test]
    fn guessable_secrets_are_recognised() {
        assert!(looks_guessable(b"aaaaaaaaaaaaaaaa"));
        assert!(looks_guessable(b"abcdabcdabcdabcd"));
        assert!(looks_guessable(b"0123456789"));
        assert!(!looks_guessable(b"wc-shared-secret-0123456789"));
        assert!(!looks_guessable(b"q8Vw3kZ1pT6xN0rL"));
    }
}
