//! Request idempotency: a client's `request_id` becomes the [`CommandId`] of what the RPC
//! appends, scoped so that two callers' ids never meet.
//!
//! The store deduplicates by command id per stream and answers a repeat with the first
//! append's outcome ([`crate::Executor`] turns that into the first answer). So the only
//! thing decided here is the id:
//!
//! - **scope**: `{role}:{sub}:{rpc}:{request_id}`. The role and subject come from the
//!   verified token, so a buyer cannot replay (or collide with) another buyer's ids; the RPC
//!   name keeps a reused id on a different RPC (`GoOnline` then `GoOffline` with `r-1`, both
//!   on the rider's stream) from being answered with the other RPC's result;
//! - **readable when it fits**: the scope itself is the command id when it is at most
//!   [`MAX_ID_LEN`] (128) bytes and the subject holds no `:` (ops/service subjects are free
//!   text; a `:` in one would make two scopes spell the same string);
//! - **hashed otherwise**: a subject may be 128 characters and a request id 64 (up to 256
//!   bytes of UTF-8), so the scope can exceed the store's limit. Then the id is
//!   `{role}:sha256:{hex}`, the SHA-256 of the four parts joined by NUL (no part may hold a
//!   control character, so the joining is unambiguous). A hashed id has exactly two `:`, a
//!   readable one at least three, so the two forms never collide either.
//!
//! `SubmitOrder` needs more than this, because its answer holds a number generated on the
//! first attempt: see [`super::submit`].

use orderflow_infra::auth::Caller;
use orderflow_infra::store::{CommandId, MAX_ID_LEN};
use orderflow_proto::convert::RequestId;
use sha2::{Digest, Sha256};

use crate::error::CommandError;

/// The command id of `rpc` sent by `caller` with the client's `request_id`.
pub fn command_id(
    caller: &Caller,
    rpc: &str,
    request_id: &RequestId,
) -> Result<CommandId, CommandError> {
    let role = caller.role().as_str();
    let sub = caller.subject();
    let readable = format!("{role}:{sub}:{rpc}:{}", request_id.as_str());
    let id = if readable.len() <= MAX_ID_LEN && !sub.contains(':') {
        readable
    } else {
        format!(
            "{role}:sha256:{}",
            hex_sha256(&[role, sub, rpc, request_id.as_str()])
        )
    };
    Ok(CommandId::parse(id)?)
}

/// The id of a follow-up command one RPC sends on the same stream as its main one (the
/// compensation of a lost grab): `{first}/{step}`, hashed when that would be too long. A
/// distinct id is needed because the store would answer the follow-up with the first
/// command's outcome.
pub fn follow_up(first: &CommandId, step: &str) -> Result<CommandId, CommandError> {
    let id = format!("{first}/{step}");
    let id = if id.len() <= MAX_ID_LEN {
        id
    } else {
        format!("follow-up:sha256:{}", hex_sha256(&[first.as_str(), step]))
    };
    Ok(CommandId::parse(id)?)
}

/// SHA-256 of `parts` joined by NUL, in lowercase hex (64 characters).
pub fn hex_sha256(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update([0u8]);
        }
        hasher.update(part.as_bytes());
    }
    // On every submit (its claim stream): one allocation, not one `format!` per byte.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(digest.len() * 2);
    for b in digest.iter() {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use orderflow_domain::Role;

    use super::*;

    fn rid(s: &str) -> RequestId {
        RequestId::parse(s).unwrap()
    }

    #[test]
    fn short_scopes_stay_readable() {
        let buyer = Caller::new(Role::Buyer, "17").unwrap();
        let id = command_id(&buyer, "SubmitOrder", &rid("r-1")).unwrap();
        assert_eq!(id.as_str(), "buyer:17:SubmitOrder:r-1");
    }

    #[test]
    fn callers_and_rpcs_never_share_an_id() {
        let a = Caller::new(Role::Buyer, "17").unwrap();
        let b = Caller::new(Role::Buyer, "18").unwrap();
        let r = rid("r-1");
        assert_ne!(
            command_id(&a, "SubmitOrder", &r).unwrap(),
            command_id(&b, "SubmitOrder", &r).unwrap()
        );
        assert_ne!(
            command_id(&a, "SubmitOrder", &r).unwrap(),
            command_id(&a, "CancelOrder", &r).unwrap()
        );
    }

    #[test]
    fn long_or_ambiguous_scopes_are_hashed_within_the_limit() {
        let ops = Caller::new(Role::Ops, "o".repeat(128)).unwrap();
        let id = command_id(&ops, "CloseOrder", &rid(&"订".repeat(64))).unwrap();
        assert!(id.as_str().starts_with("ops:sha256:"));
        assert!(id.as_str().len() <= MAX_ID_LEN);

        // Without hashing these two would both read `ops:x:CloseOrder:y:CloseOrder:z`.
        let x = Caller::new(Role::Ops, "x").unwrap();
        let tricky = Caller::new(Role::Ops, "x:CloseOrder:y").unwrap();
        assert_ne!(
            command_id(&x, "CloseOrder", &rid("y:CloseOrder:z")).unwrap(),
            command_id(&tricky, "CloseOrder", &rid("z")).unwrap()
        );
    }

    #[test]
    fn sha256_is_lowercase_hex_of_the_nul_joined_parts() {
        // sha256("abc"), the FIPS 180-2 example.
        assert_eq!(
            hex_sha256(&["abc"]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(hex_sha256(&["a", "bc"]), hex_sha256(&["ab", "c"]));
    }

    #[test]
    fn follow_ups_differ_from_their_command_and_fit() {
        let first = CommandId::parse("rider:42:GrabOrder:g-1").unwrap();
        assert_eq!(
            follow_up(&first, "unassign").unwrap().as_str(),
            "rider:42:GrabOrder:g-1/unassign"
        );
        let long = CommandId::parse("x".repeat(128)).unwrap();
        assert!(follow_up(&long, "unassign").unwrap().as_str().len() <= MAX_ID_LEN);
    }
}
