//! Verified bearer tokens, remembered until they expire.
//!
//! A client (a buyer's app, a merchant's tablet, the BFF) sends the same token with every
//! call for the token's life, so the query service verifies each token once — HS256 MAC,
//! two base64 and JSON decodes — and then answers from this cache until the token's `exp`
//! (plus the verifier's leeway) passes on the service clock. Keyed by the exact token string:
//! a token differing in one byte is verified afresh, so the cache never accepts anything the
//! verifier would refuse, and it only holds tokens that verified. Refusals are not cached
//! (they are cheap to repeat, and caching them would let a flood of junk evict good tokens).
//!
//! Bounded: at [`TokenCache::capacity`] entries the expired ones are dropped, and if the
//! cache is still full it is emptied (every token is then verified once more). Simple, and
//! it keeps the cost of a full cache to one verification per live token.

use std::collections::HashMap;
use std::sync::Mutex;

use orderflow_domain::Timestamp;
use orderflow_infra::auth::{bearer_token, AuthError, Caller, JwtAuth};

/// Entries kept by default: one token per active user of the busiest minutes (the query
/// bench's 50,000 buyers with one token each fit), about 250 bytes each.
pub const DEFAULT_CAPACITY: usize = 65_536;

pub struct TokenCache {
    capacity: usize,
    /// A std Mutex, not a tokio one: held for one lookup or insert, never across an await.
    /// Contention is a few hundred nanoseconds per call at the bench's rates.
    entries: Mutex<HashMap<Box<str>, (Caller, Timestamp)>>,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The caller of an `authorization` header value at `now`: from the cache while the token
    /// is unexpired, else verified by `auth` (and remembered if it verifies).
    pub fn verify_at(
        &self,
        auth: &JwtAuth,
        header_value: &str,
        now: Timestamp,
    ) -> Result<Caller, AuthError> {
        let token = bearer_token(header_value)?;
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((caller, expires)) = entries.get(token) {
                if now < *expires {
                    return Ok(caller.clone());
                }
            }
        }
        let (caller, expires) = auth.verify_token_at(token, now)?;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            entries.retain(|_, (_, e)| now < *e);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(token.into(), (caller.clone(), expires));
        Ok(caller)
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new(DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use orderflow_domain::Role;
    use orderflow_infra::auth::{JwtSecret, LEEWAY};

    use super::*;

    fn auth(byte: u8) -> JwtAuth {
        JwtAuth::new(&JwtSecret::new(vec![byte; 32]).unwrap())
    }

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    const T: i64 = 1_795_305_600_000;

    #[test]
    fn a_cached_token_still_expires_on_the_service_clock() {
        let (auth, cache) = (auth(1), TokenCache::new(8));
        let token = auth
            .mint_at(Role::Buyer, "42", at(T), Duration::from_secs(60))
            .unwrap();
        let header = format!("Bearer {token}");
        let caller = cache.verify_at(&auth, &header, at(T)).unwrap();
        assert_eq!(caller.subject(), "42");
        assert_eq!(cache.len(), 1);
        // Answered from the cache (same caller) until exp + leeway, refused from then on.
        let last_ok = T + 60_000 + LEEWAY.as_millis() as i64 - 1;
        assert_eq!(
            cache.verify_at(&auth, &header, at(last_ok)).unwrap(),
            caller
        );
        assert_eq!(
            cache.verify_at(&auth, &header, at(last_ok + 1)),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn only_the_exact_verified_token_is_answered_from_the_cache() {
        let (auth, cache) = (auth(1), TokenCache::new(8));
        let token = auth
            .mint_at(Role::Ops, "alice", at(T), Duration::from_secs(60))
            .unwrap();
        cache
            .verify_at(&auth, &format!("Bearer {token}"), at(T))
            .unwrap();
        // The same claims signed with another secret: never verified, so not a hit.
        let forged = self::auth(2)
            .mint_at(Role::Ops, "alice", at(T), Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            cache.verify_at(&auth, &format!("Bearer {forged}"), at(T)),
            Err(AuthError::BadSignature)
        );
        let mut tampered = token.clone();
        tampered.pop();
        assert!(cache
            .verify_at(&auth, &format!("Bearer {tampered}"), at(T))
            .is_err());
        assert_eq!(cache.len(), 1, "refusals are not remembered");
        assert_eq!(
            cache.verify_at(&auth, &token, at(T)),
            Err(AuthError::MalformedHeader)
        );
    }

    #[test]
    fn a_full_cache_drops_expired_tokens_then_everything() {
        let (auth, cache) = (auth(1), TokenCache::new(3));
        let mint = |sub: &str, ttl_s: u64| {
            let token = auth
                .mint_at(Role::Buyer, sub, at(T), Duration::from_secs(ttl_s))
                .unwrap();
            format!("Bearer {token}")
        };
        let (short, long1, long2) = (mint("1", 1), mint("2", 600), mint("3", 600));
        for header in [&short, &long1, &long2] {
            cache.verify_at(&auth, header, at(T)).unwrap();
        }
        assert_eq!(cache.len(), 3);
        // Later: the short-lived one has expired and makes room.
        let later = at(T + 60_000);
        cache.verify_at(&auth, &mint("4", 600), later).unwrap();
        assert_eq!(cache.len(), 3);
        // Full of live tokens: emptied, then the new one kept; the others verify again.
        cache.verify_at(&auth, &mint("5", 600), later).unwrap();
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache.verify_at(&auth, &long1, later).unwrap().subject(),
            "2"
        );
        assert_eq!(cache.len(), 2);
    }
}
