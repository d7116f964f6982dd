//! The group-commit writer: one task per (database, `shard % W`), committing everything
//! queued for its shards in one transaction. A job is one append or one append group (all
//! in one shard, so in this writer's).
//!
//! A transaction is two round trips, each a pipeline of statements sent together:
//! 1. `BEGIN`; lock the heads of the batch's shards (`FOR UPDATE`, in shard order, so two
//!    processes writing overlapping shards cannot deadlock); the current version of every
//!    stream of the batch.
//! 2. insert every accepted event (one `unnest` statement) and claim; move the heads;
//!    `COMMIT`.
//!
//! Between the two the batch is decided in memory (`batch::decide`), as if none of its
//! command ids and claims were stored: the unique indexes on `(stream_id, command_id)` and
//! on the claim key check that at the insert. When one was (a retry, a racing claimant),
//! the insert breaks a unique index, and the transaction rolls back and is done again as it
//! was before this shortcut: with the stored outcome of every command id of the batch and
//! its claims looked up in round trip 1. When an append is refused or
//! repeated within the batch, they are looked up before round trip 2, under the same locks:
//! a stored command wins over a stale expected version. Either way the decision is the one
//! the lookups would have given, and the common case (nothing stored) sends two statements
//! and an index probe per append less. Callers are answered
//! only after `COMMIT` returned: an acknowledged append is durable. Then the events go to
//! this process's tail cache (its subscribers then need not read them back), the new heads
//! to this process's subscribers (directly) and to other processes (through `notify`).
//!
//! The head locks are held until commit, so a transaction that takes later positions of a
//! shard cannot commit before one holding earlier positions, and a transaction that rolls
//! back never advanced the head: positions are gap-free in commit order, also across
//! processes sharing the database.

use std::sync::Arc;

use deadpool_postgres::{Object, Pool};
use orderflow_domain::{Shard, Timestamp};
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_util::sync::CancellationToken;

use super::batch::{self, Decision, Job, Known};
use super::codec::{from_datetime, BatchColumns, INSERT_BATCH};
use crate::store::follow::Heads;
use crate::store::tail::TailCache;
use crate::store::{ExpectedVersion, Position, RecordedEvent, StoreError};

/// With the transaction's start, which is every written event's `recorded_at` (its default).
const LOCK_HEADS: &str = "SELECT shard, position, now() FROM shard_heads \
     WHERE shard = ANY($1::smallint[]) ORDER BY shard FOR UPDATE";

/// One index probe per stream (the newest version), not a scan of its events.
const STREAM_VERSIONS: &str = "SELECT s.stream_id, \
     (SELECT max(e.stream_version) FROM events e WHERE e.stream_id = s.stream_id) \
     FROM unnest($1::text[]) AS s(stream_id)";

const STORED_COMMANDS: &str = "SELECT e.stream_id, e.command_id, e.position, \
     e.stream_version, e.command_events \
     FROM unnest($1::text[], $2::text[]) AS c(stream_id, command_id) \
     JOIN events e ON e.stream_id = c.stream_id AND e.command_id = c.command_id \
     WHERE e.command_events IS NOT NULL";

/// The recorded claims among the batch's (only sent when the batch has claimed appends).
const STORED_CLAIMS: &str = "SELECT c.shard, c.claim_key, c.stream_id \
     FROM unnest($1::smallint[], $2::text[]) AS k(shard, claim_key) \
     JOIN stream_claims c ON c.shard = k.shard AND c.claim_key = k.claim_key";

const INSERT_CLAIMS: &str = "INSERT INTO stream_claims (shard, claim_key, stream_id) \
     SELECT * FROM unnest($1::smallint[], $2::text[], $3::text[])";

/// For the rest of the transaction: its writes, not its lookups (see round trip 2).
const GENERIC_PLANS: &str = "SET LOCAL plan_cache_mode TO force_generic_plan";

const MOVE_HEADS: &str = "UPDATE shard_heads h SET position = n.position \
     FROM unnest($1::smallint[], $2::bigint[]) AS n(shard, position) \
     WHERE h.shard = n.shard";

/// Why a transaction did not commit.
enum Failure {
    /// The database refused a statement: one of the appends is to blame, or none.
    Refused(tokio_postgres::Error),
    /// No connection, or it broke: nothing can be said about any append.
    Unavailable(String),
}

pub(super) struct Writer {
    pub pool: Pool,
    pub jobs: mpsc::UnboundedReceiver<Job>,
    pub max_batch_events: usize,
    pub heads: Arc<Heads>,
    /// This process's recent events per shard, which the committed events extend.
    pub tail: Arc<TailCache>,
    /// New heads for the notifier, which tells other processes.
    pub notify: mpsc::UnboundedSender<(Shard, Position)>,
    pub shutdown: CancellationToken,
    /// The writer's own connection, kept between batches (its prepared statements too).
    pub client: Option<Object>,
}

impl Writer {
    /// Runs until shutdown; then commits what is still queued and returns.
    pub async fn run(mut self) {
        let mut carry: Option<Job> = None;
        let mut closing = false;
        loop {
            let first = match carry.take() {
                Some(job) => job,
                None => tokio::select! {
                    biased;
                    job = self.jobs.recv() => match job {
                        Some(job) => job,
                        // Closed and drained: every queued append was answered.
                        None => break,
                    },
                    _ = self.shutdown.cancelled(), if !closing => {
                        // New appends now fail with ShuttingDown; the queue still drains.
                        self.jobs.close();
                        closing = true;
                        continue;
                    }
                },
            };
            let mut events = first.events();
            let mut batch = vec![first];
            while events < self.max_batch_events {
                let Ok(job) = self.jobs.try_recv() else { break };
                if events + job.events() > self.max_batch_events {
                    carry = Some(job);
                    break;
                }
                events += job.events();
                batch.push(job);
            }
            self.commit_batch(batch).await;
        }
    }

    async fn commit_batch(&mut self, batch: Vec<Job>) {
        match self.commit(&batch).await {
            Ok(decisions) => answer(batch, decisions),
            Err(Failure::Refused(_)) if batch.len() > 1 => {
                // One append made the database refuse the whole transaction (a trigger, a
                // constraint): retry each alone, in order, so only the bad one fails.
                tracing::debug!(jobs = batch.len(), "batch refused, retrying one by one");
                for job in batch {
                    let result = match self.commit(std::slice::from_ref(&job)).await {
                        Ok(mut decisions) => match decisions.pop() {
                            Some(Decision::Write(outcomes)) => Ok(outcomes),
                            Some(Decision::Answer(result)) => result,
                            None => Err(StoreError::Unavailable("no decision".into())),
                        },
                        Err(failure) => Err(self.explain(&job, failure).await),
                    };
                    job.answer(result);
                }
            }
            Err(failure) if batch.len() == 1 => {
                let error = self.explain(&batch[0], failure).await;
                if let Some(job) = batch.into_iter().next() {
                    job.answer(Err(error));
                }
            }
            Err(failure) => {
                // Nothing is known of any append: each caller may retry with its command id.
                let msg = match failure {
                    Failure::Unavailable(msg) => msg,
                    Failure::Refused(e) => e.to_string(),
                };
                for job in batch {
                    job.answer(Err(StoreError::Unavailable(msg.clone())));
                }
            }
        }
    }

    /// One transaction for `jobs`; rolls back on any failure.
    async fn commit(&mut self, jobs: &[Job]) -> Result<Vec<Decision>, Failure> {
        if self.client.is_none() {
            let client = self
                .pool
                .get()
                .await
                .map_err(|e| Failure::Unavailable(e.to_string()))?;
            self.client = Some(client);
        }
        let client = self.client.as_ref().expect("just set");
        let mut result = transaction(client, jobs, Lookups::WhenNeeded).await;
        if matches!(&result, Err(e) if unique_violation(e)) {
            // Decided without the lookups, and the insert found something stored: nothing
            // was written; decide again, knowing the batch's stored commands and claims.
            result = match client.batch_execute("ROLLBACK").await {
                Ok(()) => transaction(client, jobs, Lookups::Always).await,
                Err(e) => Err(e),
            };
        }
        match &result {
            Ok((decisions, known)) => {
                if let Some(recorded_at) = known.recorded_at {
                    self.remember(jobs, decisions, recorded_at);
                }
                for shard in Shard::all() {
                    if let Some(head) = known.heads[usize::from(shard.index())] {
                        self.heads.bump(shard, Position::new(head));
                        // The notifier outlives the writers; a send can only fail while
                        // the process is going down.
                        let _ = self.notify.send((shard, Position::new(head)));
                    }
                }
            }
            Err(e) => {
                if e.as_db_error().is_none() || client.batch_execute("ROLLBACK").await.is_err() {
                    // A broken connection: take a fresh one next time.
                    self.client = None;
                }
            }
        }
        result
            .map(|(decisions, _)| decisions)
            .map_err(|e| match e.as_db_error() {
                Some(_) => Failure::Refused(e),
                None => Failure::Unavailable(e.to_string()),
            })
    }

    /// Hands the committed events to the tail cache, per shard in position order, so the
    /// subscribers woken by the heads find them there instead of reading them back.
    fn remember(&self, jobs: &[Job], decisions: &[Decision], recorded_at: Timestamp) {
        let mut shards: Vec<Vec<RecordedEvent>> = Shard::all().map(|_| Vec::new()).collect();
        for (job, decision) in jobs.iter().zip(decisions) {
            let Decision::Write(outcomes) = decision else {
                continue;
            };
            for (append, outcome) in job.appends.iter().zip(outcomes) {
                // Appends of a shard were decided in order: their positions ascend.
                shards[usize::from(outcome.shard.index())]
                    .extend(append.recorded(outcome, recorded_at));
            }
        }
        for (shard, events) in Shard::all().zip(&shards) {
            if !events.is_empty() {
                self.tail.committed(shard, events);
            }
        }
    }

    /// The typed error of one append the database refused alone.
    async fn explain(&mut self, job: &Job, failure: Failure) -> StoreError {
        let e = match failure {
            Failure::Unavailable(msg) => return StoreError::Unavailable(msg),
            Failure::Refused(e) => e,
        };
        let Some(db) = e.as_db_error() else {
            return StoreError::Unavailable(e.to_string());
        };
        if *db.code() != SqlState::UNIQUE_VIOLATION {
            // A trigger or a check refused it; retrying the same append will not help, but
            // the store has no narrower error for "the database refused".
            return StoreError::Unavailable(format!("database refused the append: {db}"));
        }
        if db.constraint() == Some("stream_claims_pkey") {
            // Only possible if a claim was written without its shard's head lock.
            if let (Some(claim), Some(client)) = (&job.claim, &self.client) {
                if let Ok(Some(stream)) = super::read::claimed_on(client, claim).await {
                    return StoreError::AlreadyClaimed {
                        key: claim.as_str().to_owned(),
                        stream,
                    };
                }
            }
            return StoreError::Unavailable(format!("database refused the claim: {db}"));
        }
        if db.constraint() == Some("events_event_id_key") {
            let ids: Vec<uuid::Uuid> = job
                .appends
                .iter()
                .flat_map(|a| &a.events)
                .map(|e| e.event_id)
                .collect();
            let stored = match &self.client {
                Some(c) => c
                    .query_opt(
                        "SELECT event_id FROM events WHERE event_id = ANY($1) LIMIT 1",
                        &[&ids],
                    )
                    .await
                    .ok()
                    .flatten()
                    .map(|row| row.get(0)),
                None => None,
            };
            return StoreError::DuplicateEventId(stored.unwrap_or(ids[0]));
        }
        // The stream moved under us: only possible if something wrote the table without
        // taking the head lock. Report it as the conflict it is (of a group's first stream:
        // which one moved is not worth a query per stream on a path that should not happen).
        let Some(append) = job.appends.first() else {
            return StoreError::Unavailable(format!("database refused the append: {db}"));
        };
        let actual = match &self.client {
            Some(c) => c
                .query_one(
                    "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1",
                    &[&append.stream.as_str()],
                )
                .await
                .map(|row| row.get::<_, i64>(0) as u64)
                .unwrap_or(0),
            None => 0,
        };
        StoreError::Conflict {
            stream: append.stream.clone(),
            expected: match append.expected {
                ExpectedVersion::Exact(v) => v,
                ExpectedVersion::Any => actual,
            },
            actual,
        }
    }
}

fn answer(batch: Vec<Job>, decisions: Vec<Decision>) {
    for (job, decision) in batch.into_iter().zip(decisions) {
        job.answer(match decision {
            Decision::Write(outcome) => Ok(outcome),
            Decision::Answer(result) => result,
        });
    }
}

/// Whether the first round trip looks up the batch's stored commands and claims.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Lookups {
    /// Only if the decision needs them (an append refused or repeated within the batch).
    /// Otherwise the unique indexes of the insert check that none is stored: two statements
    /// and an index probe per append less in the common case, where none is.
    WhenNeeded,
    /// Up front, with the lock: after the insert found a stored one.
    Always,
}

/// The insert broke a unique index. Decided without the lookups, that is most likely a
/// command or claim of the batch already stored (a retry, whose event ids are stored too;
/// a racing claimant that committed first), not an error of any append: the batch is
/// decided again with them, and whatever that still refuses is handled as before.
fn unique_violation(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| *db.code() == SqlState::UNIQUE_VIOLATION)
}

/// What the lookups found: the first outcome of each stored command, the stream of each
/// recorded claim.
fn know_stored(
    known: &mut Known,
    jobs: &[Job],
    commands: Vec<tokio_postgres::Row>,
    claims: Vec<tokio_postgres::Row>,
) {
    for row in commands {
        let stream: String = row.get(0);
        let shard = jobs
            .iter()
            .flat_map(|j| &j.appends)
            .find(|a| a.stream.as_str() == stream)
            .map(|a| a.stream.shard())
            .expect("a stored command of a stream of the batch");
        let outcome = batch::outcome(
            shard,
            row.get::<_, i64>(2) as u64,
            row.get::<_, i64>(3) as u64,
            row.get::<_, i32>(4) as u64,
        );
        known.commands.insert((stream, row.get(1)), outcome);
    }
    for row in claims {
        known
            .claims
            .insert((row.get(0), row.get(1)), row.get::<_, String>(2));
    }
}

/// The two pipelined round trips of the module doc (three when the decision needs the
/// stored commands, see [`Lookups`]). Errors leave the transaction open (or aborted) for
/// the caller to roll back.
async fn transaction(
    client: &Object,
    jobs: &[Job],
    lookups: Lookups,
) -> Result<(Vec<Decision>, Known), tokio_postgres::Error> {
    let appends = || jobs.iter().flat_map(|j| &j.appends);
    let mut shards: Vec<i16> = appends()
        .map(|a| i16::from(a.stream.shard().index()))
        .collect();
    shards.sort_unstable();
    shards.dedup();
    let mut streams: Vec<&str> = appends().map(|a| a.stream.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    let command_streams: Vec<&str> = appends().map(|a| a.stream.as_str()).collect();
    let command_ids: Vec<&str> = appends().map(|a| a.metadata.command_id.as_str()).collect();
    let (claim_shards, claim_keys): (Vec<i16>, Vec<&str>) = jobs
        .iter()
        .filter_map(|j| j.claim.as_ref())
        .map(|c| (i16::from(c.shard().index()), c.as_str()))
        .unzip();

    let lock = client.prepare_cached(LOCK_HEADS).await?;
    let versions = client.prepare_cached(STREAM_VERSIONS).await?;
    let commands = client.prepare_cached(STORED_COMMANDS).await?;
    let insert = client.prepare_cached(INSERT_BATCH).await?;
    let move_heads = client.prepare_cached(MOVE_HEADS).await?;
    // Prepared here, not inside the pipelines below: a statement prepared there would be
    // sent a round trip late, after the `COMMIT` it must precede.
    let claim_statements = if claim_keys.is_empty() {
        None
    } else {
        Some((
            client.prepare_cached(STORED_CLAIMS).await?,
            client.prepare_cached(INSERT_CLAIMS).await?,
        ))
    };

    // Round trip 1. Statements of one session run in order, so the lookups run after the
    // lock is granted and (read committed) see everything committed before it.
    let lock_params: [&(dyn ToSql + Sync); 1] = [&shards];
    let version_params: [&(dyn ToSql + Sync); 1] = [&streams];
    let command_params: [&(dyn ToSql + Sync); 2] = [&command_streams, &command_ids];
    let claim_params: [&(dyn ToSql + Sync); 2] = [&claim_shards, &claim_keys];
    let stored = || async {
        // Most batches claim nothing: they send no claim lookup at all.
        let claims = async {
            match &claim_statements {
                Some((stored, _)) => client.query(stored, &claim_params).await,
                None => Ok(Vec::new()),
            }
        };
        let (commands, claims) = futures::join!(client.query(&commands, &command_params), claims);
        Ok::<_, tokio_postgres::Error>((commands?, claims?))
    };
    let up_front = async {
        match lookups {
            Lookups::Always => stored().await.map(Some),
            Lookups::WhenNeeded => Ok(None),
        }
    };
    let (begun, head_rows, version_rows, stored_rows) = futures::join!(
        client.batch_execute("BEGIN"),
        client.query(&lock, &lock_params),
        client.query(&versions, &version_params),
        up_front,
    );
    begun?;
    let mut known = Known::default();
    for row in head_rows? {
        let shard: i16 = row.get(0);
        let position: i64 = row.get(1);
        known.heads[shard as usize] = Some(position as u64);
        known.recorded_at = Some(from_datetime(row.get(2)));
    }
    for row in version_rows? {
        if let Some(version) = row.get::<_, Option<i64>>(1) {
            known.versions.insert(row.get(0), version as u64);
        }
    }
    let locked = shards.clone();
    let before = known.heads;
    let decisions = match stored_rows? {
        Some((commands, claims)) => {
            know_stored(&mut known, jobs, commands, claims);
            batch::decide(jobs, &mut known)
        }
        None => {
            // Decided as if no command or claim of the batch were stored; the unique
            // indexes check that at the insert. Unless an append is refused or repeated
            // within the batch: that one may be the repeat of a stored command, which wins
            // over a stale expected version, so look them up (one more round trip under
            // the same locks) and decide again from what the database said.
            let (heads, versions) = (known.heads, known.versions.clone());
            let decisions = batch::decide(jobs, &mut known);
            if decisions.iter().all(|d| matches!(d, Decision::Write(_))) {
                decisions
            } else {
                let (commands, claims) = stored().await?;
                known.heads = heads;
                known.versions = versions;
                known.commands.clear();
                known.claims.clear();
                know_stored(&mut known, jobs, commands, claims);
                batch::decide(jobs, &mut known)
            }
        }
    };

    let mut columns = BatchColumns::default();
    let mut claims: (Vec<i16>, Vec<&str>, Vec<&str>) = Default::default();
    for (job, decision) in jobs.iter().zip(&decisions) {
        if let Decision::Write(outcomes) = decision {
            for (append, o) in job.appends.iter().zip(outcomes) {
                columns.push(append, o.first_position.get(), o.first_version);
            }
            if let (Some(claim), Some(append)) = (&job.claim, job.appends.first()) {
                claims.0.push(i16::from(claim.shard().index()));
                claims.1.push(claim.as_str());
                claims.2.push(append.stream.as_str());
            }
        }
    }
    if columns.len() == 0 {
        // Nothing to write (all conflicts or repeats): release the locks.
        client.batch_execute("ROLLBACK").await?;
        known.heads = Default::default();
        return Ok((decisions, known));
    }
    let (moved_shards, moved_heads): (Vec<i16>, Vec<i64>) = locked
        .iter()
        .filter_map(|&s| {
            let i = s as usize;
            (known.heads[i] != before[i]).then(|| (s, known.heads[i].unwrap_or(0) as i64))
        })
        .unzip();

    // Round trip 2. Answered only after COMMIT returned.
    let insert_params = columns.params();
    let move_params: [&(dyn ToSql + Sync); 2] = [&moved_shards, &moved_heads];
    let claim_params: [&(dyn ToSql + Sync); 3] = [&claims.0, &claims.1, &claims.2];
    let insert_claims = async {
        match &claim_statements {
            Some((_, insert)) if !claims.0.is_empty() => {
                client.execute(insert, &claim_params).await
            }
            _ => Ok(0),
        }
    };
    let (generic, inserted, claimed, moved, committed) = futures::join!(
        // The writes have one plan whatever the table holds (an insert from `unnest`, an
        // update of the 32 head rows), so they keep the plan made at their first run
        // instead of being planned on every batch like the lookups: the three plans were
        // about a third of the writer's planning time (`pg_stat_statements`, flash sale).
        // `SET LOCAL`: the connection is back to custom plans after COMMIT.
        client.batch_execute(GENERIC_PLANS),
        client.execute(&insert, &insert_params),
        insert_claims,
        client.execute(&move_heads, &move_params),
        client.batch_execute("COMMIT"),
    );
    // The first statement that failed is the one to blame (the later ones then fail with
    // "transaction aborted", and COMMIT turns into ROLLBACK).
    generic?;
    inserted?;
    claimed?;
    moved?;
    committed?;
    // Only shards that moved are reported to the subscribers' heads.
    for (i, head) in known.heads.iter_mut().enumerate() {
        if *head == before[i] {
            *head = None;
        }
    }
    Ok((decisions, known))
}
