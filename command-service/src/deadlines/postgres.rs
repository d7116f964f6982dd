//! Deadlines in PostgreSQL: table `deadlines` (migration 0003), usually in the event store's
//! first database. Each operation is one statement, so each is atomic on its own; the batch
//! ones (`schedule_many`, `cancel_many`) pass their rows as arrays (`unnest`, `= ANY`).
//!
//! Times are stored as `timestamptz` for operators reading the table, and converted from and
//! to the domain's milliseconds in SQL (`epoch + n ms`, `extract(epoch) * 1000`), exactly.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use orderflow_domain::Timestamp;
use orderflow_infra::store::{CausationId, CorrelationId};
use tokio_postgres::Row;

use super::{
    Deadline, DeadlineCause, DeadlineKey, DeadlineKind, DeadlineStore, DeadlineStoreError,
};

/// A bigint of milliseconds as a timestamptz.
const AT_MS: &str = "(timestamptz 'epoch' + $1::bigint * interval '1 millisecond')";
/// A timestamptz column back to milliseconds.
fn ms_of(column: &str) -> String {
    format!("round(extract(epoch FROM {column}) * 1000)::bigint")
}

#[derive(Clone)]
pub struct PgDeadlineStore {
    pool: Pool,
}

impl PgDeadlineStore {
    /// The pool must point at a database migrated by `orderflow_infra::migrate::run`.
    pub fn new(pool: Pool) -> Self {
        PgDeadlineStore { pool }
    }
}

fn decode(row: &Row) -> Result<Deadline, DeadlineStoreError> {
    let key: String = row.get(0);
    let corrupt = |reason: String| DeadlineStoreError::Corrupt {
        key: key.clone(),
        reason,
    };
    let kind: serde_json::Value = row.get(1);
    let kind: DeadlineKind =
        serde_json::from_value(kind).map_err(|e| corrupt(format!("kind: {e}")))?;
    // The key is derived from the kind; a row where they disagree was not written by us.
    if kind.key().as_str() != key {
        return Err(corrupt(format!("kind is for {}", kind.key())));
    }
    let due_at = Timestamp::from_millis(row.get(2));
    let attempts = u32::try_from(row.get::<_, i32>(5)).unwrap_or(0);
    let correlation: Option<String> = row.get(3);
    let causation: Option<String> = row.get(4);
    let cause = match correlation {
        Some(c) => Some(DeadlineCause {
            correlation_id: CorrelationId::parse(c)
                .map_err(|e| corrupt(format!("correlation_id: {e}")))?,
            causation_id: causation
                .map(CausationId::parse)
                .transpose()
                .map_err(|e| corrupt(format!("causation_id: {e}")))?,
        }),
        None => None,
    };
    Ok(Deadline {
        key: kind.key(),
        kind,
        due_at,
        cause,
        attempts,
    })
}

/// A deadline's encoded columns besides key and due time.
struct Columns {
    kind: serde_json::Value,
    correlation: Option<String>,
    causation: Option<String>,
}

impl Columns {
    fn of(deadline: &Deadline) -> Result<Self, DeadlineStoreError> {
        let kind =
            serde_json::to_value(&deadline.kind).map_err(|e| DeadlineStoreError::Corrupt {
                key: deadline.key.to_string(),
                reason: format!("cannot encode kind: {e}"),
            })?;
        let cause = deadline.cause.as_ref();
        Ok(Columns {
            kind,
            correlation: cause.map(|c| c.correlation_id.as_str().to_owned()),
            causation: cause
                .and_then(|c| c.causation_id.as_ref())
                .map(|c| c.as_str().to_owned()),
        })
    }
}

/// An unreadable row would come back first on every look and block the queue: park it for an
/// operator, keeping the reason.
async fn park_unreadable(
    client: &tokio_postgres::Client,
    row: &Row,
    error: &DeadlineStoreError,
) -> Result<(), DeadlineStoreError> {
    let key: String = row.get(0);
    tracing::error!(%key, %error, "unreadable deadline parked");
    client
        .execute(
            "UPDATE deadlines SET closed_at = now(), outcome = 'parked', last_error = $2
             WHERE key = $1 AND closed_at IS NULL",
            &[&key, &error.to_string()],
        )
        .await?;
    Ok(())
}

#[async_trait]
impl DeadlineStore for PgDeadlineStore {
    async fn schedule(&self, deadline: Deadline) -> Result<bool, DeadlineStoreError> {
        let Columns {
            kind,
            correlation,
            causation,
        } = Columns::of(&deadline)?;
        let client = self.pool.get().await?;
        let stored = client
            .execute(
                &format!(
                    "INSERT INTO deadlines (key, kind, due_at, correlation_id, causation_id)
                     VALUES ($2, $3, {AT_MS}, $4, $5)
                     ON CONFLICT (key) DO NOTHING"
                ),
                &[
                    &deadline.due_at.as_millis(),
                    &deadline.key.as_str(),
                    &kind,
                    &correlation,
                    &causation,
                ],
            )
            .await?;
        Ok(stored == 1)
    }

    async fn cancel(&self, key: &DeadlineKey) -> Result<bool, DeadlineStoreError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE deadlines SET closed_at = now(), outcome = 'cancelled'
                 WHERE key = $1 AND closed_at IS NULL",
                &[&key.as_str()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn schedule_many(
        &self,
        deadlines: Vec<Deadline>,
    ) -> Result<Vec<bool>, DeadlineStoreError> {
        // The first of a key wins: later ones in the batch are answered `false` unsent. The
        // rest go sorted by key, so two batches insert (and lock) in the same order.
        let mut firsts: Vec<usize> = Vec::with_capacity(deadlines.len());
        let mut seen = HashSet::with_capacity(deadlines.len());
        for (i, d) in deadlines.iter().enumerate() {
            if seen.insert(d.key.as_str()) {
                firsts.push(i);
            }
        }
        firsts.sort_by(|&a, &b| deadlines[a].key.cmp(&deadlines[b].key));
        let mut keys = Vec::with_capacity(firsts.len());
        let (mut kinds, mut dues) = (Vec::with_capacity(firsts.len()), Vec::new());
        let (mut correlations, mut causations) = (Vec::new(), Vec::new());
        for &i in &firsts {
            let d = &deadlines[i];
            let columns = Columns::of(d)?;
            keys.push(d.key.as_str());
            kinds.push(columns.kind);
            dues.push(d.due_at.as_millis());
            correlations.push(columns.correlation);
            causations.push(columns.causation);
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "INSERT INTO deadlines (key, kind, due_at, correlation_id, causation_id)
                 SELECT key, kind, timestamptz 'epoch' + due_ms * interval '1 millisecond',
                        correlation_id, causation_id
                 FROM unnest($1::text[], $2::jsonb[], $3::bigint[], $4::text[], $5::text[])
                      AS b(key, kind, due_ms, correlation_id, causation_id)
                 ON CONFLICT (key) DO NOTHING
                 RETURNING key",
                &[&keys, &kinds, &dues, &correlations, &causations],
            )
            .await?;
        let stored: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
        let mut answers = vec![false; deadlines.len()];
        for i in firsts {
            answers[i] = stored.contains(deadlines[i].key.as_str());
        }
        Ok(answers)
    }

    async fn cancel_many(&self, keys: &[DeadlineKey]) -> Result<Vec<bool>, DeadlineStoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<&str> = keys.iter().map(DeadlineKey::as_str).collect();
        let client = self.pool.get().await?;
        // `= ANY` walks the primary key in key order (the array is sorted for the index
        // scan), so two batches lock their rows in the same order.
        let rows = client
            .query(
                "UPDATE deadlines SET closed_at = now(), outcome = 'cancelled'
                 WHERE key = ANY($1::text[]) AND closed_at IS NULL
                 RETURNING key",
                &[&wanted],
            )
            .await?;
        let mut closed: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
        // Each closed key answers `true` once: for its first occurrence.
        Ok(keys.iter().map(|k| closed.remove(k.as_str())).collect())
    }

    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<Deadline>, DeadlineStoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT key, kind, {}, correlation_id, causation_id, attempts FROM deadlines
                     WHERE closed_at IS NULL AND due_at <= {AT_MS}
                     ORDER BY due_at, key LIMIT $2",
                    ms_of("due_at")
                ),
                &[&now.as_millis(), &limit],
            )
            .await?;
        let mut due = Vec::with_capacity(rows.len());
        for row in &rows {
            match decode(row) {
                Ok(deadline) => due.push(deadline),
                Err(e) => park_unreadable(&client, row, &e).await?,
            }
        }
        Ok(due)
    }

    async fn claim(
        &self,
        now: Timestamp,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Deadline>, DeadlineStoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let until = now.plus(lease);
        let client = self.pool.get().await?;
        // SKIP LOCKED: a row another firer is claiming right now is left to it, so concurrent
        // claims take disjoint rows without waiting; the moved due_at keeps it from the next
        // claims until the lease runs out.
        let rows = client
            .query(
                &format!(
                    "UPDATE deadlines d SET due_at = {}
                     FROM (SELECT key, due_at FROM deadlines
                           WHERE closed_at IS NULL AND due_at <= {AT_MS}
                           ORDER BY due_at, key LIMIT $2
                           FOR UPDATE SKIP LOCKED) c
                     WHERE d.key = c.key
                     RETURNING d.key, d.kind, {}, d.correlation_id, d.causation_id, d.attempts",
                    AT_MS.replace("$1", "$3"),
                    ms_of("c.due_at")
                ),
                &[&now.as_millis(), &limit, &until.as_millis()],
            )
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            match decode(row) {
                Ok(deadline) => claimed.push(deadline),
                Err(e) => park_unreadable(&client, row, &e).await?,
            }
        }
        // RETURNING follows no order; the firer works oldest first.
        claimed.sort_by(|a, b| (a.due_at, &a.key).cmp(&(b.due_at, &b.key)));
        Ok(claimed)
    }

    async fn prune(
        &self,
        closed_before: Timestamp,
        limit: usize,
    ) -> Result<u64, DeadlineStoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.pool.get().await?;
        let n = client
            .execute(
                &format!(
                    "DELETE FROM deadlines WHERE key IN (
                         SELECT key FROM deadlines
                         WHERE closed_at IS NOT NULL AND closed_at < {AT_MS}
                         LIMIT $2)"
                ),
                &[&closed_before.as_millis(), &limit],
            )
            .await?;
        Ok(n)
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, DeadlineStoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &format!(
                    "SELECT {} FROM deadlines WHERE closed_at IS NULL",
                    ms_of("min(due_at)")
                ),
                &[],
            )
            .await?;
        Ok(row.get::<_, Option<i64>>(0).map(Timestamp::from_millis))
    }

    async fn complete(&self, key: &DeadlineKey) -> Result<bool, DeadlineStoreError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE deadlines SET closed_at = now(), outcome = 'fired'
                 WHERE key = $1 AND closed_at IS NULL",
                &[&key.as_str()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn postpone(
        &self,
        key: &DeadlineKey,
        due_at: Timestamp,
        failure: Option<&str>,
    ) -> Result<Option<u32>, DeadlineStoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE deadlines SET due_at = {AT_MS},
                        attempts = attempts + CASE WHEN $3::text IS NULL THEN 0 ELSE 1 END,
                        last_error = coalesce($3, last_error)
                     WHERE key = $2 AND closed_at IS NULL
                     RETURNING attempts"
                ),
                &[&due_at.as_millis(), &key.as_str(), &failure],
            )
            .await?;
        Ok(row.map(|r| u32::try_from(r.get::<_, i32>(0)).unwrap_or(0)))
    }

    async fn park(&self, key: &DeadlineKey, error: &str) -> Result<bool, DeadlineStoreError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE deadlines SET closed_at = now(), outcome = 'parked', last_error = $2
                 WHERE key = $1 AND closed_at IS NULL",
                &[&key.as_str(), &error],
            )
            .await?;
        Ok(n == 1)
    }

    async fn count_open(&self) -> Result<u64, DeadlineStoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM deadlines WHERE closed_at IS NULL",
                &[],
            )
            .await?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }
}
