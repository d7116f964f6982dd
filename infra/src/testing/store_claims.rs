//! Conformance cases of `EventStore::append_claimed` and `claimed` (re-exported by
//! [`super::store`], whose macro runs them): a claim commits with its append or not at all,
//! points to one stream forever, and racing claimants write once.

use std::sync::Arc;

use orderflow_domain::Shard;

use crate::store::{ClaimKey, EventStore, ExpectedVersion, Position, StoreError};

use super::store::{request, stream_in};

fn claim(shard: u8, key: &str) -> ClaimKey {
    ClaimKey::parse(Shard::new(shard).expect("shard"), key).expect("claim key")
}

/// The first claimed append writes and records the claim; another append with the same
/// claim (a retry that drew a new stream) is refused with the first stream, writing nothing;
/// a repeat of the first append itself is answered as a repeat.
pub async fn a_claim_points_to_its_first_stream(store: Arc<dyn EventStore>) {
    let key = claim(5, "request-1");
    let first = stream_in(5, "claimed1");
    assert_eq!(store.claimed(&key).await.expect("lookup"), None);

    let request = request(&first, ExpectedVersion::NO_STREAM, 2);
    let outcome = store
        .append_claimed(key.clone(), request.clone())
        .await
        .expect("claimed append");
    assert_eq!(outcome.first_position, Position::new(1));
    assert!(!outcome.deduplicated);
    assert_eq!(
        store.claimed(&key).await.expect("lookup"),
        Some(first.clone())
    );

    let second = stream_in(5, "claimed2");
    let err = store
        .append_claimed(
            key.clone(),
            super::store::request(&second, ExpectedVersion::NO_STREAM, 1),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyClaimed { ref stream, .. } if *stream == first),
        "{err:?}"
    );
    assert!(store
        .read_stream(&second, 1, 10)
        .await
        .expect("read")
        .is_empty());

    let repeat = store
        .append_claimed(key.clone(), request)
        .await
        .expect("repeat");
    assert!(repeat.deduplicated);
    assert_eq!(repeat.first_position, outcome.first_position);
    assert_eq!(
        store.head(first.shard()).await.expect("head"),
        Position::new(2)
    );

    // Claims are per shard: the same key elsewhere is another claim.
    let elsewhere = claim(6, "request-1");
    assert_eq!(store.claimed(&elsewhere).await.expect("lookup"), None);
}

/// An append the store refuses records no claim: the next attempt may take it.
pub async fn a_refused_append_records_no_claim(store: Arc<dyn EventStore>) {
    let key = claim(7, "request-2");
    let taken = stream_in(7, "taken");
    store
        .append(request(&taken, ExpectedVersion::NO_STREAM, 1))
        .await
        .expect("plain append");
    let err = store
        .append_claimed(key.clone(), request(&taken, ExpectedVersion::NO_STREAM, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(store.claimed(&key).await.expect("lookup"), None);

    let fresh = stream_in(7, "fresh");
    store
        .append_claimed(key.clone(), request(&fresh, ExpectedVersion::NO_STREAM, 1))
        .await
        .expect("claim after the refusal");
    assert_eq!(store.claimed(&key).await.expect("lookup"), Some(fresh));
}

/// A claim outside its stream's shard is refused before anything is written.
pub async fn a_claim_in_another_shard_is_refused(store: Arc<dyn EventStore>) {
    let stream = stream_in(3, "wrongshard");
    let err = store
        .append_claimed(
            claim(4, "request-3"),
            request(&stream, ExpectedVersion::NO_STREAM, 1),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ClaimShard { .. }), "{err:?}");
    assert_eq!(
        store.head(stream.shard()).await.expect("head"),
        Position::ZERO
    );
}

/// Concurrent attempts with one claim, each on its own new stream (a client retrying a submit
/// while the first is in flight): exactly one writes; every other is told that one's stream.
pub async fn racing_claimants_write_once(store: Arc<dyn EventStore>) {
    let key = claim(9, "request-race");
    let attempts: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            let key = key.clone();
            tokio::spawn(async move {
                let stream = stream_in(9, &format!("race{i}"));
                let result = store
                    .append_claimed(key, request(&stream, ExpectedVersion::NO_STREAM, 1))
                    .await;
                (stream, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut told = Vec::new();
    for attempt in attempts {
        let (stream, result) = attempt.await.expect("task");
        match result {
            Ok(_) => winners.push(stream),
            Err(StoreError::AlreadyClaimed { stream, .. }) => told.push(stream),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "one attempt writes");
    assert_eq!(told.len(), 15);
    assert!(told.iter().all(|s| *s == winners[0]), "all told the winner");
    assert_eq!(
        store.head(winners[0].shard()).await.expect("head"),
        Position::new(1)
    );
    assert_eq!(
        store.claimed(&key).await.expect("lookup"),
        Some(winners[0].clone())
    );
}
