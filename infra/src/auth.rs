//! Bearer-JWT authentication: `authorization: Bearer <jwt>`, HS256 with the configured secret,
//! claims `sub`, `role` and `exp` (all required), as the contract (`api/README.md`) states.
//!
//! This module answers "who is calling"; what each caller may do is the command and query
//! services' business. Error messages say what is wrong with the token and never echo it or
//! anything of the secret.

mod caller;
mod secret;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use orderflow_domain::{Role, Timestamp};
use serde::{Deserialize, Serialize};

pub use caller::{Caller, MAX_SUBJECT_CHARS};
pub use secret::{JwtSecret, WeakSecret, MIN_SECRET_BYTES};

/// Clock skew tolerated past `exp`. Small: issuers and this service run NTP, and a token
/// should stop working when it says it does.
pub const LEEWAY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("authorization must be \"Bearer <token>\"")]
    MalformedHeader,
    #[error("token is not a well-formed jwt")]
    MalformedToken,
    #[error("token must be signed with HS256")]
    UnsupportedAlgorithm,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has no exp claim")]
    MissingExpiry,
    #[error("token has expired")]
    Expired,
    #[error("token has no sub claim")]
    MissingSubject,
    #[error("token sub is not a valid {} subject", .role.as_str())]
    BadSubject { role: Role },
    #[error("token has no role claim")]
    MissingRole,
    #[error("token role must be one of buyer, merchant, rider, ops, admin, service")]
    UnknownRole,
    /// Only `mint` can fail so, and only if the JWT library refused plain claims.
    #[error("could not sign the token")]
    Signing,
}

/// The claims orderflow signs and reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    /// Seconds since the Unix epoch.
    pub exp: u64,
}

/// The claims as they come off the wire, every one optional, so a missing or unknown one is
/// reported as such rather than as an unreadable token.
#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    role: Option<String>,
    exp: Option<u64>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
}

/// Verifies and mints orderflow's bearer tokens.
#[derive(Clone)]
pub struct JwtAuth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys hold the secret.
        f.debug_struct("JwtAuth").finish_non_exhaustive()
    }
}

impl JwtAuth {
    pub fn new(secret: &JwtSecret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` must be present, but its deadline is checked in `verify_at` against the
        // caller's clock, so tests drive time and every service agrees on "now".
        validation.required_spec_claims = ["exp".to_owned()].into();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        // No audience in our tokens; a foreign `aud` is not a reason to refuse one.
        validation.validate_aud = false;
        JwtAuth {
            encoding: EncodingKey::from_secret(secret.expose()),
            decoding: DecodingKey::from_secret(secret.expose()),
            validation,
        }
    }

    /// Checks an `authorization` header value at the current wall-clock time.
    pub fn verify(&self, header_value: &str) -> Result<Caller, AuthError> {
        self.verify_at(header_value, now())
    }

    /// Checks an `authorization` header value (`Bearer <jwt>`) at `now`.
    pub fn verify_at(&self, header_value: &str, now: Timestamp) -> Result<Caller, AuthError> {
        self.verify_token_at(bearer_token(header_value)?, now)
            .map(|(caller, _)| caller)
    }

    /// Checks a bare token (the `<jwt>` of `Bearer <jwt>`, see [`bearer_token`]) at `now`;
    /// returns the caller and the first instant at which the token no longer verifies (its
    /// `exp` plus [`LEEWAY`]), so a cache of verified tokens can keep the answer until then.
    pub fn verify_token_at(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<(Caller, Timestamp), AuthError> {
        // Refuse any algorithm but HS256 by name before the library looks at the token:
        // `none` is not even an algorithm it can parse, and RS256 with our secret as a
        // "public key" is the classic confusion attack.
        if header_alg(token)?.as_deref() != Some("HS256") {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        let data = jsonwebtoken::decode::<RawClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                    AuthError::UnsupportedAlgorithm
                }
                ErrorKind::MissingRequiredClaim(claim) if claim == "exp" => {
                    AuthError::MissingExpiry
                }
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::MalformedToken,
            })?;
        let RawClaims { sub, role, exp } = data.claims;
        let exp = exp.ok_or(AuthError::MissingExpiry)?;
        let expires = expiry(exp).plus(LEEWAY);
        if now >= expires {
            return Err(AuthError::Expired);
        }
        let role: Role = role
            .ok_or(AuthError::MissingRole)?
            .parse()
            .map_err(|_| AuthError::UnknownRole)?;
        let caller = Caller::new(role, sub.ok_or(AuthError::MissingSubject)?)?;
        Ok((caller, expires))
    }

    /// A token for `role` and `sub` valid for `ttl` from now: for tests, the demo and
    /// `orderflow token`. Refuses a subject `verify` would refuse.
    pub fn mint(&self, role: Role, sub: &str, ttl: Duration) -> Result<String, AuthError> {
        self.mint_at(role, sub, now(), ttl)
    }

    /// As [`JwtAuth::mint`], valid for `ttl` from `now`.
    pub fn mint_at(
        &self,
        role: Role,
        sub: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<String, AuthError> {
        let caller = Caller::new(role, sub)?;
        let exp_ms = now.plus(ttl).as_millis();
        // Rounded up to a whole second, so a token is never shorter-lived than asked.
        let exp = u64::try_from(exp_ms.div_euclid(1000) + i64::from(exp_ms.rem_euclid(1000) > 0))
            .unwrap_or(0);
        self.sign(&Claims {
            sub: caller.subject().to_owned(),
            role,
            exp,
        })
    }

    /// Signs any claims with HS256, unchecked: tests use it to forge odd tokens.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, AuthError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|_| AuthError::Signing)
    }
}

/// The token of `Bearer <token>`; the scheme is case-insensitive (RFC 7235).
pub fn bearer_token(header_value: &str) -> Result<&str, AuthError> {
    let (scheme, token) = header_value
        .trim()
        .split_once(' ')
        .ok_or(AuthError::MalformedHeader)?;
    let token = token.trim_start();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(AuthError::MalformedHeader);
    }
    Ok(token)
}

/// The `alg` of a token's header, read without trusting anything else in it.
fn header_alg(token: &str) -> Result<Option<String>, AuthError> {
    let header = token.split('.').next().ok_or(AuthError::MalformedToken)?;
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::MalformedToken)?;
    let header: RawHeader = serde_json::from_slice(&json).map_err(|_| AuthError::MalformedToken)?;
    Ok(header.alg)
}

/// `exp` (seconds) as a timestamp; absurdly far futures saturate.
fn expiry(exp_secs: u64) -> Timestamp {
    let secs = i64::try_from(exp_secs).unwrap_or(i64::MAX);
    Timestamp::from_millis(secs.saturating_mul(1000))
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_millis(ms)
}

#[cfg(test)]
mod tests;
