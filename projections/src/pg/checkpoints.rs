//! A projection's checkpoint rows (`projection:{name}`, one per shard, in the `checkpoints`
//! table): read at start, locked and moved inside the transaction that writes the rows
//! ([`lock_checkpoints`]), or moved alone past a batch that writes none ([`skip_batch`]).
//!
//! **Lock order.** Every transaction that locks checkpoint rows takes them in ascending
//! `(name, shard)` order, names compared bytewise (`COLLATE "C"`, Rust's `str` order): a
//! batch locks its members' rows of its one shard sorted by name ([`lock_checkpoints`],
//! [`skip_batch`]), a rebuild's hold locks one name's rows sorted by shard. So no two of them
//! can wait for each other crosswise on these rows (docs/read-side.md, "Lock order").

use std::collections::HashMap;

use deadpool_postgres::{Pool, Transaction};
use orderflow_domain::Shard;
use orderflow_infra::store::{Position, RecordedEvent};
use tokio_postgres::types::ToSql;

use crate::error::ProjectionError;

/// The checkpoint name of a projection.
pub fn checkpoint_name(projection: &str) -> String {
    format!("projection:{projection}")
}

/// Every saved shard position of a projection.
pub async fn load_checkpoints(
    pool: &Pool,
    projection: &str,
) -> Result<HashMap<Shard, Position>, ProjectionError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT shard, position FROM checkpoints WHERE name = $1",
            &[&checkpoint_name(projection)],
        )
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let shard: i16 = row.get(0);
        let position: i64 = row.get(1);
        let corrupt = |reason: &str| ProjectionError::Corrupt {
            view: "checkpoints",
            reason: format!("{projection}: {reason}"),
        };
        let shard = Shard::try_from(i64::from(shard)).map_err(|_| corrupt("shard"))?;
        let position = u64::try_from(position).map_err(|_| corrupt("position"))?;
        out.insert(shard, Position::new(position));
    }
    Ok(out)
}

/// The checkpoint names of `projections`, sorted (the lock order) and without repeats.
fn sorted_names(projections: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = projections.iter().map(|p| checkpoint_name(p)).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Locks the checkpoint rows of `projections` for the shards of `moves` in this transaction
/// (creating those that do not exist yet), returns their positions before the batch (per
/// entry of `moves`, in the order of `projections`), and moves each to its shard's position
/// in `moves` (never back: `GREATEST`), all in one round trip. `moves` names each shard once.
///
/// Two projectors of one model (a zombie and its replacement, a group and a rebuild's hold)
/// take turns on the row locks, and the second sees what the first committed, so it skips
/// those events. The rows are locked sorted by name, then shard (the module's lock order).
///
/// The move is sent with the lock, before the batch's rows are written: the transaction
/// commits rows and checkpoints together or neither, so where in it the rows move changes
/// nothing, and sending it here saves a round trip and leaves the commit as the only
/// statement after the last rows are written (a member sharing rows across shards would keep
/// them locked the shortest time). A projection whose saved position
/// is at or past the move keeps it.
///
/// Also makes the transaction's commit asynchronous (why: below).
pub async fn lock_checkpoints(
    tx: &Transaction<'_>,
    projections: &[&str],
    moves: &[(Shard, Position)],
) -> Result<Vec<Vec<Position>>, ProjectionError> {
    let names = sorted_names(projections);
    let shards: Vec<i16> = moves.iter().map(|(s, _)| i16::from(s.index())).collect();
    let to: Vec<i64> = moves
        .iter()
        .map(|(_, p)| i64::try_from(p.get()).unwrap_or(i64::MAX))
        .collect();
    // Prepared once per connection, and all sent together (pipelined): one round trip per
    // batch instead of a parse and an execute for each.
    let (insert, select, update) = futures::try_join!(
        // Missing rows are created in the lock order too.
        tx.prepare_cached(
            "INSERT INTO checkpoints (name, shard, position)
             SELECT n, s, 0 FROM unnest($1::text[]) AS n, unnest($2::smallint[]) AS s
             ORDER BY n COLLATE \"C\", s
             ON CONFLICT (name, shard) DO NOTHING",
        ),
        // The sort sits below the row locks in the plan, so the rows are locked in this order.
        tx.prepare_cached(
            "SELECT name, shard, position FROM checkpoints
             WHERE name = ANY($1) AND shard = ANY($2::smallint[])
             ORDER BY name COLLATE \"C\", shard FOR UPDATE"
        ),
        tx.prepare_cached(
            "UPDATE checkpoints c SET position = GREATEST(c.position, m.position),
                                      updated_at = now()
             FROM unnest($2::smallint[], $3::bigint[]) AS m(shard, position)
             WHERE c.name = ANY($1) AND c.shard = m.shard"
        ),
    )?;
    let params: [&(dyn ToSql + Sync); 2] = [&names, &shards];
    let moved: [&(dyn ToSql + Sync); 3] = [&names, &shards, &to];
    // The batch's commit does not wait for the WAL flush: a read model is rebuilt from the
    // log, and its rows and checkpoint are lost (or kept) together, so a commit lost to a
    // database crash only means those events are projected again. Visibility is unchanged:
    // readers see the rows as soon as the commit returns. Projectors commit a small
    // transaction per shard and batch, and the flush waits were most of their lag under load.
    let (_, _, rows, _) = futures::try_join!(
        tx.batch_execute("SET LOCAL synchronous_commit TO off"),
        tx.execute(&insert, &params),
        tx.query(&select, &params),
        tx.execute(&update, &moved),
    )?;
    let locked: HashMap<(String, i16), i64> = rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    moves
        .iter()
        .map(|(shard, _)| {
            projections
                .iter()
                .map(|p| {
                    let key = (checkpoint_name(p), i16::from(shard.index()));
                    let position = locked.get(&key).ok_or_else(|| ProjectionError::Corrupt {
                        view: "checkpoints",
                        reason: format!("{p}: no row for shard {}", shard.index()),
                    })?;
                    Ok(Position::new(u64::try_from(*position).unwrap_or(0)))
                })
                .collect()
        })
        .collect()
}

/// Whether a batch holds an event of a stream in one of `categories` (the streams a
/// projection reads): a batch with none changes no row.
pub fn touches<'a>(
    events: impl IntoIterator<Item = &'a RecordedEvent>,
    categories: &[&str],
) -> bool {
    events
        .into_iter()
        .any(|e| categories.contains(&e.stream.category()))
}

/// Moves the checkpoints of `projections` past batches that change none of their rows (see
/// [`touches`]), each shard of `moves` to its position: one statement in one round trip, no
/// row lock held across round trips, and no wait for the WAL flush. Losing this commit in a
/// crash loses no row, only makes a restart re-read events that change nothing; the next
/// batch that does change rows moves the checkpoint past them anyway. `GREATEST`, so a
/// checkpoint never moves back (a zombie projector, or a rebuild that swapped in a later
/// one: this waits on the rebuild's lock of the row and then keeps the later position). The
/// rows are written, hence locked, in name then shard order.
pub async fn skip_batch(
    pool: &Pool,
    projections: &[&str],
    moves: &[(Shard, Position)],
) -> Result<(), ProjectionError> {
    if projections.is_empty() || moves.is_empty() {
        return Ok(());
    }
    let mut moves = moves.to_vec();
    moves.sort_by_key(|(shard, _)| *shard);
    // A simple-query string, so the three statements travel together. The values are
    // projection names (constants of the code, quoted anyway) and integers.
    let mut rows: Vec<String> = Vec::with_capacity(projections.len() * moves.len());
    for name in sorted_names(projections) {
        for (shard, position) in &moves {
            rows.push(format!(
                "('{}', {}, {})",
                name.replace('\'', "''"),
                shard.index(),
                position.get()
            ));
        }
    }
    let client = pool.get().await?;
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL synchronous_commit TO off;
             INSERT INTO checkpoints (name, shard, position) VALUES {}
             ON CONFLICT (name, shard) DO UPDATE
                SET position = GREATEST(checkpoints.position, EXCLUDED.position), updated_at = now();
             COMMIT",
            rows.join(", ")
        ))
        .await?;
    Ok(())
}
