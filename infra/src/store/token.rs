//! Consistency tokens: "the read side has applied at least this much of that shard".
//!
//! Every command answer carries one (the position of what it appended); a query may pass it
//! back to read its own write. Opaque to clients: `v1.{shard}.{position}`.

use orderflow_domain::Shard;

use super::Position;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConsistencyToken {
    pub shard: Shard,
    pub position: Position,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("consistency_token is not one this service issued: {0:?}")]
pub struct InvalidToken(pub String);

impl ConsistencyToken {
    pub fn new(shard: Shard, position: Position) -> Self {
        ConsistencyToken { shard, position }
    }

    pub fn parse(s: &str) -> Result<Self, InvalidToken> {
        let invalid = || InvalidToken(s.chars().take(64).collect());
        let mut parts = s.split('.');
        let (Some("v1"), Some(shard), Some(position), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let shard = shard
            .parse::<u8>()
            .ok()
            .and_then(|n| Shard::new(n).ok())
            .ok_or_else(invalid)?;
        let position = position.parse::<u64>().map_err(|_| invalid())?;
        Ok(ConsistencyToken {
            shard,
            position: Position::new(position),
        })
    }

    /// Parses an optional token: the empty string (proto3's default) means none.
    pub fn parse_optional(s: &str) -> Result<Option<Self>, InvalidToken> {
        if s.is_empty() {
            Ok(None)
        } else {
            Self::parse(s).map(Some)
        }
    }
}

impl std::fmt::Display for ConsistencyToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v1.{}.{}", self.shard.index(), self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let token = ConsistencyToken::new(Shard::new(7).unwrap(), Position::new(1234));
        assert_eq!(token.to_string(), "v1.7.1234");
        assert_eq!(ConsistencyToken::parse(&token.to_string()).unwrap(), token);
    }

    #[test]
    fn foreign_tokens_are_refused() {
        for bad in [
            "", "v1.7", "v1.32.1", "v2.1.1", "v1.1.-3", "v1.1.1.1", "v1.a.1",
        ] {
            assert!(ConsistencyToken::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ConsistencyToken::parse_optional("").unwrap(), None);
    }
}
