//! Conformance cases of `EventStore::append_group` (re-exported by [`super::store`], whose
//! macro runs them): all or nothing, idempotent as a whole, one shard.

use std::sync::Arc;

use crate::store::{AppendOutcome, EventStore, ExpectedVersion, Position, StoreError};

use super::store::{metadata, request, stream_in, POISON_EVENT_TYPE};

/// Events in the shard (its head) and in each stream.
async fn counts(
    store: &dyn EventStore,
    streams: &[&orderflow_domain::StreamId],
) -> (Position, Vec<usize>) {
    let head = store.head(streams[0].shard()).await.expect("head");
    let mut lens = Vec::new();
    for s in streams {
        lens.push(store.read_stream(s, 1, 100).await.expect("read").len());
    }
    (head, lens)
}

/// Two streams of one shard in one group: both written, at consecutive positions, in the
/// order of the requests; a group with one request in conflict writes none of them.
pub async fn a_group_is_written_all_or_nothing(store: Arc<dyn EventStore>) {
    let a = stream_in(11, "ga");
    let b = stream_in(11, "gb");
    let outcomes = store
        .append_group(vec![
            request(&a, ExpectedVersion::NO_STREAM, 1),
            request(&b, ExpectedVersion::NO_STREAM, 2),
        ])
        .await
        .expect("group");
    assert_eq!(outcomes.len(), 2);
    assert_eq!(
        (outcomes[0].first_position, outcomes[0].last_version),
        (Position::new(1), 1)
    );
    assert_eq!(
        (outcomes[1].first_position, outcomes[1].last_position),
        (Position::new(2), Position::new(3))
    );
    assert!(outcomes.iter().all(|o| !o.deduplicated));

    // `c` is new, `a` is not at version 0 any more: nothing of the group is written.
    let c = stream_in(11, "gc");
    let err = store
        .append_group(vec![
            request(&c, ExpectedVersion::NO_STREAM, 1),
            request(&a, ExpectedVersion::NO_STREAM, 1),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { ref stream, expected: 0, actual: 1 } if *stream == a),
        "{err:?}"
    );
    assert_eq!(
        counts(&*store, &[&a, &b, &c]).await,
        (Position::new(3), vec![1, 2, 0])
    );

    // And the shard goes on gap-free after the refused group.
    let next = store
        .append(request(&c, ExpectedVersion::NO_STREAM, 1))
        .await
        .expect("append after");
    assert_eq!(next.first_position, Position::new(4));
}

/// The same group again is answered with the first outcomes and writes nothing; a group of
/// which only part is stored writes nothing either.
pub async fn a_retried_group_is_answered_and_a_partly_stored_one_refused(
    store: Arc<dyn EventStore>,
) {
    let a = stream_in(12, "ra");
    let b = stream_in(12, "rb");
    let mut first_a = request(&a, ExpectedVersion::NO_STREAM, 1);
    first_a.metadata = metadata("claim-1");
    let mut first_b = request(&b, ExpectedVersion::NO_STREAM, 1);
    first_b.metadata = metadata("claim-1");
    let first = store
        .append_group(vec![first_a.clone(), first_b.clone()])
        .await
        .expect("first");

    let again = store
        .append_group(vec![first_a.clone(), first_b])
        .await
        .expect("retry");
    let expected: Vec<AppendOutcome> = first
        .iter()
        .map(|o| AppendOutcome {
            deduplicated: true,
            ..*o
        })
        .collect();
    assert_eq!(again, expected);

    // `a` holds the command, `c` does not: neither new nor a retry.
    let c = stream_in(12, "rc");
    let mut new_c = request(&c, ExpectedVersion::NO_STREAM, 1);
    new_c.metadata = metadata("claim-1");
    let err = store.append_group(vec![first_a, new_c]).await.unwrap_err();
    assert!(
        matches!(err, StoreError::GroupPartlyStored { ref stream, .. } if *stream == a),
        "{err:?}"
    );
    assert_eq!(
        counts(&*store, &[&a, &b, &c]).await,
        (Position::new(2), vec![1, 1, 0])
    );
}

/// Empty groups, a stream twice, streams of two shards, and an append over the limits are
/// refused before anything is written.
pub async fn invalid_groups_are_refused(store: Arc<dyn EventStore>) {
    let a = stream_in(13, "ia");
    let other_shard = stream_in(14, "ib");
    let invalid = |r: Result<Vec<AppendOutcome>, StoreError>| {
        assert!(matches!(r, Err(StoreError::InvalidGroup(_))), "{r:?}");
    };
    invalid(store.append_group(Vec::new()).await);
    invalid(
        store
            .append_group(vec![
                request(&a, ExpectedVersion::NO_STREAM, 1),
                request(&a, ExpectedVersion::Exact(1), 1),
            ])
            .await,
    );
    invalid(
        store
            .append_group(vec![
                request(&a, ExpectedVersion::NO_STREAM, 1),
                request(&other_shard, ExpectedVersion::NO_STREAM, 1),
            ])
            .await,
    );
    let empty = request(&stream_in(13, "ic"), ExpectedVersion::NO_STREAM, 0);
    let err = store
        .append_group(vec![request(&a, ExpectedVersion::NO_STREAM, 1), empty])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::EmptyAppend), "{err:?}");
    assert_eq!(counts(&*store, &[&a]).await, (Position::ZERO, vec![0]));
    assert_eq!(
        store.head(other_shard.shard()).await.expect("head"),
        Position::ZERO
    );
}

/// Sixteen copies of one group race (as concurrent retries of one submit would): one writes,
/// the others get its outcomes; each stream holds one event.
pub async fn racing_copies_of_a_group_write_once(store: Arc<dyn EventStore>) {
    let a = stream_in(15, "xa");
    let b = stream_in(15, "xb");
    let tasks = (0..16).map(|_| {
        let store = Arc::clone(&store);
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            let mut ra = request(&a, ExpectedVersion::NO_STREAM, 1);
            ra.metadata = metadata("race-1");
            let mut rb = request(&b, ExpectedVersion::NO_STREAM, 1);
            rb.metadata = metadata("race-1");
            store.append_group(vec![ra, rb]).await
        })
    });
    let mut fresh = 0;
    let mut positions = Vec::new();
    for task in futures::future::join_all(tasks).await {
        let outcomes = task.expect("task").expect("group");
        fresh += usize::from(!outcomes[0].deduplicated);
        assert_eq!(outcomes[0].deduplicated, outcomes[1].deduplicated);
        positions.push((outcomes[0].first_position, outcomes[1].first_position));
    }
    assert_eq!(fresh, 1);
    positions.dedup();
    assert_eq!(positions.len(), 1, "{positions:?}");
    assert_eq!(counts(&*store, &[&a, &b]).await.1, vec![1, 1]);
}

/// A group the database refuses part-way (a trigger on the second append's event, where the
/// factory installs one) leaves nothing of the group; where nothing refuses it, all of it.
pub async fn a_group_refused_by_the_database_leaves_nothing(store: Arc<dyn EventStore>) {
    let a = stream_in(0, "pa");
    let b = stream_in(0, "pb");
    let mut poisoned = request(&b, ExpectedVersion::NO_STREAM, 1);
    poisoned.events[0].event_type = POISON_EVENT_TYPE.to_owned();
    let result = store
        .append_group(vec![request(&a, ExpectedVersion::NO_STREAM, 2), poisoned])
        .await;
    let (head, lens) = counts(&*store, &[&a, &b]).await;
    match result {
        Ok(_) => assert_eq!((head, lens), (Position::new(3), vec![2, 1])),
        Err(_) => assert_eq!((head, lens), (Position::ZERO, vec![0, 0])),
    }
}
