//! Configuration of the PostgreSQL store: which database holds which logical shard, and how
//! many connections and writers each database gets.

use std::time::Duration;

use orderflow_domain::{Shard, SHARD_COUNT};

use crate::store::{StoreError, StoreLimits};

/// Which physical database holds each of the 32 logical shards.
///
/// The default puts every shard in one database; scaling out is a configuration change
/// (`0-15=postgres://…/a;16-31=postgres://…/b`), not a code change, because a stream's shard
/// is decided by its name and every query of the store is scoped to one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    /// The distinct database URLs, in order of first appearance.
    databases: Vec<String>,
    /// For each shard, the index of its database in `databases`.
    shard_db: [usize; SHARD_COUNT as usize],
}

impl ShardMap {
    /// Every shard in one database.
    pub fn single(url: impl Into<String>) -> Self {
        ShardMap {
            databases: vec![url.into()],
            shard_db: [0; SHARD_COUNT as usize],
        }
    }

    /// Parses `RANGE=URL;RANGE=URL;…` where a range is `a-b` or `a` (inclusive), e.g.
    /// `0-15=postgres://db1/orders;16-31=postgres://db2/orders`. A string without `=` is one
    /// URL for every shard. Every shard must be mapped exactly once.
    pub fn parse(spec: &str) -> Result<Self, StoreError> {
        let spec = spec.trim();
        if !spec.contains('=') || spec.starts_with("postgres") {
            if spec.is_empty() {
                return Err(config_error("shard map is empty"));
            }
            return Ok(ShardMap::single(spec));
        }
        let mut databases: Vec<String> = Vec::new();
        let mut shard_db: [Option<usize>; SHARD_COUNT as usize] = [None; SHARD_COUNT as usize];
        for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (range, url) = entry
                .split_once('=')
                .ok_or_else(|| config_error(format!("shard map entry without `=`: {entry:?}")))?;
            let url = url.trim();
            if url.is_empty() {
                return Err(config_error(format!(
                    "shard map entry without url: {entry:?}"
                )));
            }
            let (low, high) = parse_range(range.trim())?;
            let db = match databases.iter().position(|d| d == url) {
                Some(i) => i,
                None => {
                    databases.push(url.to_owned());
                    databases.len() - 1
                }
            };
            for shard in low..=high {
                let slot = &mut shard_db[usize::from(shard)];
                if slot.is_some() {
                    return Err(config_error(format!("shard {shard} is mapped twice")));
                }
                *slot = Some(db);
            }
        }
        let mut mapped = [0; SHARD_COUNT as usize];
        for (shard, db) in shard_db.iter().enumerate() {
            mapped[shard] =
                db.ok_or_else(|| config_error(format!("shard {shard} is not mapped")))?;
        }
        Ok(ShardMap {
            databases,
            shard_db: mapped,
        })
    }

    /// The distinct databases; a shard's database is `databases()[database_of(shard)]`.
    pub fn databases(&self) -> &[String] {
        &self.databases
    }

    pub fn database_of(&self, shard: Shard) -> usize {
        self.shard_db[usize::from(shard.index())]
    }

    /// The shards held by database `db`, in order.
    pub fn shards_of(&self, db: usize) -> impl Iterator<Item = Shard> + '_ {
        Shard::all().filter(move |s| self.database_of(*s) == db)
    }
}

fn parse_range(range: &str) -> Result<(u8, u8), StoreError> {
    let shard = |s: &str| -> Result<u8, StoreError> {
        s.trim()
            .parse::<u8>()
            .ok()
            .filter(|n| *n < SHARD_COUNT)
            .ok_or_else(|| config_error(format!("shard must be 0..{SHARD_COUNT}, got {s:?}")))
    };
    let (low, high) = match range.split_once('-') {
        Some((low, high)) => (shard(low)?, shard(high)?),
        None => (shard(range)?, shard(range)?),
    };
    if low > high {
        return Err(config_error(format!("empty shard range {range:?}")));
    }
    Ok((low, high))
}

fn config_error(msg: impl Into<String>) -> StoreError {
    StoreError::Config(msg.into())
}

/// Everything [`PgEventStore::connect`](super::PgEventStore::connect) needs.
#[derive(Debug, Clone)]
pub struct PgStoreConfig {
    pub shard_map: ShardMap,
    /// Connections per database. Each writer and the notifier keep one for themselves;
    /// shard reads (subscriptions, the relay, catch-up), heads and the pool's other users
    /// (checkpoints, read models) share the rest.
    pub pool_size: usize,
    /// Connections per database for stream reads only (`read_stream`: a command loading
    /// its aggregate), so that a command never queues behind the subscriptions' page reads
    /// (measured in a flash sale: 81 ms of waiting for a 10 ms merchant read at the shared
    /// pool). 0: stream reads share `pool_size`.
    pub stream_pool_size: usize,
    /// Group-commit writers per database; writer `w` owns the shards with `shard % W == w`,
    /// so appends to one shard always go through the same writer, in order. Default: the
    /// number of cores, 2..=8 (`orderflow bench append --writers` on a 2-core machine: 1 →
    /// 15.8k events/s, 2 → 21.0k, 4 → 19.1k at 256 appenders; more writers than cores only
    /// adds transactions competing for the same CPU).
    pub writers_per_database: usize,
    /// Most events committed in one transaction (a single append larger than this still
    /// goes through, alone).
    pub max_batch_events: usize,
    pub limits: StoreLimits,
    /// How often a live subscription re-reads even without a notification (a lost NOTIFY,
    /// a reconnecting listener).
    pub fallback_poll: Duration,
}

impl PgStoreConfig {
    pub fn new(shard_map: ShardMap) -> Self {
        PgStoreConfig {
            shard_map,
            pool_size: 16,
            stream_pool_size: 4,
            writers_per_database: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(2, 8),
            max_batch_events: 512,
            limits: StoreLimits::default(),
            fallback_poll: Duration::from_secs(1),
        }
    }

    /// Every shard in the database at `url`, default sizes.
    pub fn single(url: impl Into<String>) -> Self {
        Self::new(ShardMap::single(url))
    }

    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        if self.writers_per_database == 0 || self.writers_per_database > usize::from(SHARD_COUNT) {
            return Err(config_error("writers_per_database must be 1..=32"));
        }
        if self.pool_size < self.writers_per_database + 2 {
            return Err(config_error(
                "pool_size must be at least writers_per_database + 2 (writers and the \
                 notifier keep a connection each; reads need one more)",
            ));
        }
        if self.max_batch_events == 0 || self.max_batch_events > 10_000 {
            return Err(config_error("max_batch_events must be 1..=10000"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_url_maps_every_shard_to_it() {
        let map = ShardMap::parse("postgres://h/db").unwrap();
        assert_eq!(map.databases(), ["postgres://h/db"]);
        assert!(Shard::all().all(|s| map.database_of(s) == 0));
    }

    #[test]
    fn ranges_map_to_their_databases() {
        let map =
            ShardMap::parse("0-15=postgres://h/a; 16-30=postgres://h/b;31=postgres://h/a").unwrap();
        assert_eq!(map.databases(), ["postgres://h/a", "postgres://h/b"]);
        assert_eq!(map.database_of(Shard::new(15).unwrap()), 0);
        assert_eq!(map.database_of(Shard::new(16).unwrap()), 1);
        assert_eq!(map.database_of(Shard::new(31).unwrap()), 0);
        assert_eq!(map.shards_of(1).count(), 15);
    }

    #[test]
    fn every_shard_exactly_once() {
        for bad in [
            "0-15=postgres://h/a",
            "0-16=postgres://h/a;16-31=postgres://h/b",
            "0-32=postgres://h/a",
            "5-3=postgres://h/a",
            "x=postgres://h/a",
            "0-31=",
            "",
        ] {
            assert!(
                matches!(ShardMap::parse(bad), Err(StoreError::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn defaults_are_valid() {
        PgStoreConfig::single("postgres://h/db").validate().unwrap();
    }
}
