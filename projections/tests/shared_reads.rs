//! The shared, pipelined read connections (`SharedReads`) on a real PostgreSQL: answers are
//! not mixed up under concurrency, a broken connection is replaced, `close` ends them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use orderflow_infra::migrate;
use orderflow_infra::testing::TestDatabase;
use orderflow_projections::error::ProjectionError;
use orderflow_projections::orders::{OrderDetailReader, PgOrderDetail};
use orderflow_projections::pg::SharedReads;
use orderflow_projections::testing::fixtures::{order_no, submitted, Log};
use orderflow_projections::ProjectionModel;

const PID: &str = "SELECT pg_backend_pid()";

async fn backend_pid(shared: &SharedReads) -> Result<i32, ProjectionError> {
    let row = shared.query_opt(PID, &[]).await?.expect("one row");
    Ok(row.get(0))
}

/// Many requests at once on one connection: each gets the answer to its own query (the
/// responses come back in request order and are matched to their requests), all on the one
/// backend, and each statement is prepared once on it however many requests wanted it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_queries_on_one_connection_each_get_their_own_answer() {
    let database = TestDatabase::create().await;
    let shared = SharedReads::new(&database.url, 1).expect("a valid url");
    let tasks: Vec<_> = (0..600i64)
        .map(|i| {
            let shared = shared.clone();
            tokio::spawn(async move {
                // Two statements interleaved, one of them returning several rows.
                if i % 2 == 0 {
                    let row = shared
                        .query_opt("SELECT $1::bigint * 2, pg_backend_pid()", &[&i])
                        .await
                        .expect("answered")
                        .expect("one row");
                    (i, vec![row.get::<_, i64>(0)], row.get::<_, i32>(1))
                } else {
                    let rows = shared
                        .query(
                            "SELECT $1::bigint + n, pg_backend_pid() FROM generate_series(1, 3) AS n",
                            &[&i],
                        )
                        .await
                        .expect("answered");
                    let values = rows.iter().map(|r| r.get::<_, i64>(0)).collect();
                    (i, values, rows[0].get::<_, i32>(1))
                }
            })
        })
        .collect();
    let mut pids = HashSet::new();
    for task in tasks {
        let (i, values, pid) = task.await.expect("no panic");
        let expected = if i % 2 == 0 {
            vec![i * 2]
        } else {
            vec![i + 1, i + 2, i + 3]
        };
        assert_eq!(values, expected, "query {i} got another query's answer");
        pids.insert(pid);
    }
    assert_eq!(pids.len(), 1, "one connection, one backend: {pids:?}");
    let prepared: i64 = shared
        .query_opt("SELECT count(*) FROM pg_prepared_statements", &[])
        .await
        .expect("answered")
        .expect("one row")
        .get(0);
    // The two statements above and this one.
    assert_eq!(
        prepared, 3,
        "each statement prepared once on the connection"
    );
}

/// A shared connection whose backend is terminated (a server restart, an operator's
/// `pg_terminate_backend`) is replaced: a query that was sent on it fails as unavailable,
/// and the next query runs on a new connection. Readers built on it answer again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_shared_connection_is_replaced_and_the_next_query_succeeds() {
    let database = TestDatabase::create().await;
    let pool = database.pool(2);
    migrate::run(&pool, migrate::MIGRATIONS)
        .await
        .expect("migrations apply");
    let shared = SharedReads::new(&database.url, 1).expect("a valid url");
    let detail = Arc::new(PgOrderDetail::new(pool.clone()).with_shared_reads(shared.clone()));
    let no = order_no(0, 42);
    let mut log = Log::new();
    log.order(
        &no,
        submitted(&no, 42, 7, "Beef noodles", "88 Century Ave", 0),
    );
    detail
        .apply(no.shard(), &log.shard(no.shard()))
        .await
        .expect("applied");
    assert!(detail.get(&no).await.expect("read").is_some());
    let first = backend_pid(&shared).await.expect("connected");

    // When its backend is terminated (and has exited: the 5 s wait)
    let terminated: bool = pool
        .get()
        .await
        .expect("a connection")
        .query_one("SELECT pg_terminate_backend($1, 5000)", &[&first])
        .await
        .expect("terminated")
        .get(0);
    assert!(terminated);

    // Then a query may still be sent on the dead connection before its task has seen the
    // end: that one fails as unavailable, with the reason.
    match backend_pid(&shared).await {
        Ok(pid) => assert_ne!(pid, first, "answered by a terminated backend"),
        Err(ProjectionError::Unavailable(reason)) => assert!(!reason.is_empty()),
        Err(other) => panic!("expected unavailable, got {other}"),
    }
    // And the next one runs on a new connection, prepared again there.
    let second = backend_pid(&shared).await.expect("reconnected");
    assert_ne!(second, first);
    let view = detail
        .get(&no)
        .await
        .expect("read on the new connection")
        .expect("the order");
    assert_eq!(view.order_no, no);
}

/// `close` ends every connection (their backends exit) and later requests fail as
/// unavailable instead of opening new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_connections_and_later_queries_fail() {
    let database = TestDatabase::create().await;
    let pool = database.pool(1);
    let shared = SharedReads::new(&database.url, 2).expect("a valid url");
    assert_eq!(shared.clients(), 2);
    // Two requests at once open both connections (the least busy slot takes the second).
    let (a, b) = tokio::join!(
        shared.query_opt("SELECT pg_backend_pid() FROM pg_sleep(0.2)", &[]),
        shared.query_opt("SELECT pg_backend_pid() FROM pg_sleep(0.2)", &[])
    );
    let pids: Vec<i32> = [a, b]
        .into_iter()
        .map(|r| r.expect("answered").expect("one row").get(0))
        .collect();
    assert_ne!(
        pids[0], pids[1],
        "two requests at once use both connections"
    );

    shared.close().await;
    match backend_pid(&shared).await {
        Err(ProjectionError::Unavailable(reason)) => assert!(reason.contains("closed"), "{reason}"),
        other => panic!("expected unavailable after close, got {other:?}"),
    }
    let client = pool.get().await.expect("a connection");
    let mut left = i64::MAX;
    for _ in 0..50 {
        left = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)",
                &[&pids],
            )
            .await
            .expect("counted")
            .get(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "the shared connections' backends exited");
}
