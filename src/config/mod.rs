//! `orderflow serve`'s configuration: typed, layered, validated, printable.
//!
//! Every key has a name (as written in the `--config` TOML file), an `ORDERFLOW_*`
//! environment variable and, for the contract's keys, a flag. Layers override in this
//! order: defaults < file < environment < flags ([`layers`]). The merged raw strings are
//! then parsed once ([`ServeConfig::from_layers`]); an error names the key, the value and
//! where it came from. The business timings are parsed by the command side's own
//! [`CommandConfig::from_lookup`], fed from the merged layers, so their names, defaults and
//! rules live in one place.

mod layers;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Args;
use orderflow_command_service::CommandConfig;
use orderflow_infra::auth::JwtSecret;
use orderflow_infra::bus::Subjects;
use orderflow_infra::duration::format_duration;
use orderflow_infra::store::ShardMap;

pub use layers::{Layers, Source};

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Its name in the config file.
    pub name: &'static str,
    pub env: &'static str,
    pub flag: Option<&'static str>,
    pub default: Option<&'static str>,
}

const fn key(
    name: &'static str,
    env: &'static str,
    flag: Option<&'static str>,
    default: Option<&'static str>,
) -> Key {
    Key {
        name,
        env,
        flag,
        default,
    }
}

/// Every key `serve` reads. The defaults of the business timings are written here for the
/// file/help/docs only: [`CommandConfig::default`] is what applies when a key is unset.
pub const KEYS: &[Key] = &[
    key("role", "ORDERFLOW_ROLE", Some("--role"), Some("all")),
    key(
        "listen",
        "ORDERFLOW_LISTEN",
        Some("--listen"),
        Some("127.0.0.1:50051"),
    ),
    key(
        "database_url",
        "ORDERFLOW_DATABASE_URL",
        Some("--database-url"),
        None,
    ),
    key(
        "shard_map",
        "ORDERFLOW_SHARD_MAP",
        Some("--shard-map"),
        None,
    ),
    key("nats_url", "ORDERFLOW_NATS_URL", Some("--nats-url"), None),
    key(
        "nats_prefix",
        "ORDERFLOW_NATS_PREFIX",
        Some("--nats-prefix"),
        Some("orderflow"),
    ),
    key(
        "jwt_secret",
        "ORDERFLOW_JWT_SECRET",
        Some("--jwt-secret"),
        None,
    ),
    key(
        "metrics_listen",
        "ORDERFLOW_METRICS_LISTEN",
        Some("--metrics-listen"),
        Some("127.0.0.1:9464"),
    ),
    key("query_pool_size", "ORDERFLOW_QUERY_POOL_SIZE", None, None),
    key(
        "query_connections",
        "ORDERFLOW_QUERY_CONNECTIONS",
        None,
        None,
    ),
    key(
        "payment_window",
        "ORDERFLOW_PAYMENT_WINDOW",
        None,
        Some("15m"),
    ),
    key(
        "reservation_ttl",
        "ORDERFLOW_RESERVATION_TTL",
        None,
        Some("20m"),
    ),
    key("offer_window", "ORDERFLOW_OFFER_WINDOW", None, Some("30s")),
    key(
        "offer_radius_m",
        "ORDERFLOW_OFFER_RADIUS_M",
        None,
        Some("3000"),
    ),
    key("offer_fanout", "ORDERFLOW_OFFER_FANOUT", None, Some("5")),
    key("delivery_sla", "ORDERFLOW_DELIVERY_SLA", None, Some("30m")),
    key("close_after", "ORDERFLOW_CLOSE_AFTER", None, Some("10m")),
    key(
        "offer_max_rounds",
        "ORDERFLOW_OFFER_MAX_ROUNDS",
        None,
        Some("10"),
    ),
    key(
        "deadline_retention",
        "ORDERFLOW_DEADLINE_RETENTION",
        None,
        Some("168h"),
    ),
];

/// Keys whose defaults [`CommandConfig`] owns (not applied by the layers, so that
/// `from_lookup` sees "unset" and keeps its own default).
const BUSINESS_KEYS: &[&str] = &[
    "payment_window",
    "reservation_ttl",
    "offer_window",
    "offer_radius_m",
    "offer_fanout",
    "delivery_sla",
    "close_after",
    "offer_max_rounds",
    "deadline_retention",
];

pub fn key_named(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The flags of `serve` (and the `--config` file they layer over). Every value is a string
/// here and parsed with the other layers' values, so a bad flag and a bad environment
/// variable fail the same way, naming the key.
#[derive(Debug, Default, Clone, Args)]
pub struct ServeFlags {
    /// TOML file with any of the keys of docs/operations.md (`listen = "0.0.0.0:50051"`).
    #[arg(long, env = "ORDERFLOW_CONFIG")]
    pub config: Option<PathBuf>,
    /// Which services this process runs: all, command, projections or query.
    /// [env: ORDERFLOW_ROLE] [default: all]
    #[arg(long)]
    pub role: Option<String>,
    /// gRPC address. [env: ORDERFLOW_LISTEN] [default: 127.0.0.1:50051]
    #[arg(long)]
    pub listen: Option<String>,
    /// PostgreSQL (event store + read models); none = embedded, in memory.
    /// [env: ORDERFLOW_DATABASE_URL]
    #[arg(long)]
    pub database_url: Option<String>,
    /// Shards spread over several databases: `0-15=postgres://…/a;16-31=postgres://…/b`.
    /// [env: ORDERFLOW_SHARD_MAP]
    #[arg(long)]
    pub shard_map: Option<String>,
    /// NATS with JetStream; none = embedded, in-process bus. [env: ORDERFLOW_NATS_URL]
    #[arg(long)]
    pub nats_url: Option<String>,
    /// Prefix of every subject and stream name. [env: ORDERFLOW_NATS_PREFIX] [default: orderflow]
    #[arg(long)]
    pub nats_prefix: Option<String>,
    /// HS256 secret of the bearer tokens (at least 32 bytes); embedded mode generates one
    /// when absent and prints it. [env: ORDERFLOW_JWT_SECRET]
    #[arg(long)]
    pub jwt_secret: Option<String>,
    /// Prometheus `/metrics` address. [env: ORDERFLOW_METRICS_LISTEN] [default: 127.0.0.1:9464]
    #[arg(long)]
    pub metrics_listen: Option<String>,
}

impl ServeFlags {
    /// The flags given, by key name.
    pub fn values(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("role", self.role.clone()),
            ("listen", self.listen.clone()),
            ("database_url", self.database_url.clone()),
            ("shard_map", self.shard_map.clone()),
            ("nats_url", self.nats_url.clone()),
            ("nats_prefix", self.nats_prefix.clone()),
            ("jwt_secret", self.jwt_secret.clone()),
            ("metrics_listen", self.metrics_listen.clone()),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    All,
    Command,
    Projections,
    Query,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Command => "command",
            Role::Projections => "projections",
            Role::Query => "query",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "all" => Ok(Role::All),
            "command" => Ok(Role::Command),
            "projections" => Ok(Role::Projections),
            "query" => Ok(Role::Query),
            other => Err(format!(
                "must be all, command, projections or query, got {other:?}"
            )),
        }
    }
}

/// Where the events live.
#[derive(Debug, Clone)]
pub enum Backend {
    /// In-memory store, in-process bus and read models: nothing survives the process.
    Embedded,
    /// Boxed: a shard map is large and the other variant is empty.
    Durable {
        shard_map: Box<ShardMap>,
        nats_url: String,
    },
}

/// The validated configuration of `orderflow serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub role: Role,
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub backend: Backend,
    pub nats_prefix: String,
    /// `None` only when embedded: `serve` then generates one for the run.
    pub jwt_secret: Option<JwtSecret>,
    pub business: CommandConfig,
    /// Connections of the queries' own pool to the read models' database (roles `all` and
    /// `query`); the projectors keep theirs. Default: eight per core.
    pub query_pool_size: usize,
    /// Shared, pipelined connections for the hot queries (`GetOrder`, the order lists' pages
    /// of up to 50), beside the pool (roles `all` and `query`); 0 = every query on the pool.
    /// Default: one per core.
    pub query_connections: usize,
    /// The raw layers, kept to print each value with where it came from.
    layers: Layers,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{key} = {value} (from {origin}): {reason}")]
    Invalid {
        key: &'static str,
        /// The value as given, or `(hidden)` for a secret.
        value: String,
        origin: Source,
        reason: String,
    },
    #[error("{0}")]
    Inconsistent(String),
}

impl ServeConfig {
    /// Loads every layer and validates the result (`env` is `std::env::var` in the binary).
    pub fn load(
        flags: &ServeFlags,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let layers = Layers::load(flags.config.as_deref(), env, &flags.values())?;
        Self::from_layers(layers)
    }

    pub fn from_layers(layers: Layers) -> Result<Self, ConfigError> {
        let role = layers.parse("role", Role::from_str)?.unwrap_or(Role::All);
        let listen = layers.parse("listen", parse_addr)?.expect("has a default");
        let metrics_listen = layers
            .parse("metrics_listen", parse_addr)?
            .expect("has a default");
        let nats_prefix = layers
            .parse("nats_prefix", |s| {
                Subjects::new(s)
                    .map(|_| s.to_owned())
                    .map_err(|e| e.to_string())
            })?
            .expect("has a default");
        let database_url = layers.parse("database_url", parse_postgres_url)?;
        let shard_map = layers.parse("shard_map", |s| {
            ShardMap::parse(s).map_err(|e| e.to_string())
        })?;
        let nats_url = layers.parse("nats_url", parse_nonempty)?;
        let jwt_secret = layers.parse("jwt_secret", |s| {
            JwtSecret::from_str(s).map_err(|e| e.to_string())
        })?;
        let query_pool_size = layers
            .parse("query_pool_size", parse_pool_size)?
            .unwrap_or_else(default_query_pool_size);
        let query_connections = layers
            .parse("query_connections", parse_connections)?
            .unwrap_or_else(default_query_connections);
        let business = CommandConfig::from_lookup(|env| {
            KEYS.iter()
                .find(|k| k.env == env)
                .and_then(|k| layers.get(k.name))
                .map(|(value, _)| value.to_owned())
        })
        .map_err(|e| layers.business_error(e))?;

        let shard_map = shard_map.or(database_url.map(ShardMap::single));
        let backend = match (shard_map, nats_url) {
            (Some(shard_map), Some(nats_url)) => Backend::Durable {
                shard_map: Box::new(shard_map),
                nats_url,
            },
            (None, None) => Backend::Embedded,
            (Some(_), None) => {
                return Err(ConfigError::Inconsistent(
                    "database_url is set but nats_url is not: give both (durable) or neither (embedded)"
                        .into(),
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::Inconsistent(
                    "nats_url is set but database_url is not: give both (durable) or neither (embedded)"
                        .into(),
                ))
            }
        };
        if matches!(backend, Backend::Durable { .. }) && jwt_secret.is_none() {
            return Err(ConfigError::Inconsistent(
                "jwt_secret (--jwt-secret, ORDERFLOW_JWT_SECRET) is required with a database and NATS"
                    .into(),
            ));
        }
        if listen == metrics_listen && listen.port() != 0 {
            return Err(ConfigError::Inconsistent(format!(
                "listen and metrics_listen are both {listen}"
            )));
        }
        Ok(ServeConfig {
            role,
            listen,
            metrics_listen,
            backend,
            nats_prefix,
            jwt_secret,
            business,
            query_pool_size,
            query_connections,
            layers,
        })
    }

    pub fn embedded(&self) -> bool {
        matches!(self.backend, Backend::Embedded)
    }

    /// One line per key: the effective value (secrets and passwords hidden) and its source.
    pub fn describe(&self) -> Vec<(&'static str, String, Source)> {
        let b = &self.business;
        let mut values: BTreeMap<&'static str, String> = BTreeMap::new();
        values.insert("role", self.role.as_str().to_owned());
        values.insert("listen", self.listen.to_string());
        values.insert("metrics_listen", self.metrics_listen.to_string());
        values.insert("nats_prefix", self.nats_prefix.clone());
        let (database, nats) = match &self.backend {
            Backend::Embedded => ("(embedded, in memory)".to_owned(), "(embedded)".to_owned()),
            Backend::Durable {
                shard_map,
                nats_url,
            } => (
                shard_map
                    .databases()
                    .iter()
                    .map(|u| orderflow::redact::redact(u))
                    .collect::<Vec<_>>()
                    .join(", "),
                orderflow::redact::redact(nats_url),
            ),
        };
        values.insert("database_url", database);
        values.insert("nats_url", nats);
        values.insert(
            "jwt_secret",
            match (&self.jwt_secret, self.embedded()) {
                (Some(_), _) => "(set, hidden)".to_owned(),
                (None, true) => "(generated for this run)".to_owned(),
                (None, false) => "(missing)".to_owned(),
            },
        );
        values.insert("query_pool_size", self.query_pool_size.to_string());
        values.insert("query_connections", self.query_connections.to_string());
        values.insert("payment_window", format_duration(b.payment_window));
        values.insert("reservation_ttl", format_duration(b.reservation_ttl));
        values.insert("offer_window", format_duration(b.offer_window));
        values.insert("offer_radius_m", b.offer_radius_m.to_string());
        values.insert("offer_fanout", b.offer_fanout.to_string());
        values.insert("delivery_sla", format_duration(b.delivery_sla));
        values.insert("close_after", format_duration(b.close_after));
        values.insert("offer_max_rounds", b.offer_max_rounds.to_string());
        values.insert("deadline_retention", format_duration(b.deadline_retention));
        KEYS.iter()
            .filter(|k| k.name != "shard_map")
            .map(|k| {
                let source = match (k.name, self.layers.get("shard_map")) {
                    ("database_url", Some((_, source))) => source.clone(),
                    (name, _) => self
                        .layers
                        .get(name)
                        .map_or(Source::Default, |(_, s)| s.clone()),
                };
                (k.name, values.remove(k.name).unwrap_or_default(), source)
            })
            .collect()
    }
}

impl fmt::Display for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "configuration:")?;
        for (name, value, source) in self.describe() {
            writeln!(f, "  {name:<16} {value}  ({source})")?;
        }
        Ok(())
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| "must be an ip:port address such as 127.0.0.1:50051".to_owned())
}

fn parse_postgres_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok(s.to_owned())
    } else {
        Err("must be a postgres:// or postgresql:// url".to_owned())
    }
}

fn parse_pool_size(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n @ 1..=256) => Ok(n),
        _ => Err("must be a whole number in 1..=256".to_owned()),
    }
}

/// Eight connections per core. A connection serves one query at a time and is held for the
/// whole round trip, including the wait for this process to be scheduled again to read the
/// answer, so under load a connection is mostly idle from PostgreSQL's side: with two per
/// core the queries queued for a connection while PostgreSQL had cores to spare
/// (`bench query`, 2 cores: 916 q/s with 4 connections, about 1,800 with 16, 2,250 with 32).
/// Connections are opened only as the load needs them.
pub fn default_query_pool_size() -> usize {
    8 * std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn parse_connections(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n @ 0..=64) => Ok(n),
        _ => Err("must be a whole number in 0..=64 (0: every query on the pool)".to_owned()),
    }
}

/// One shared connection per core. Each is kept busy by many queries at once (pipelined),
/// so PostgreSQL needs about one backend per core it can run, not one per query in flight.
/// Measured in docs/BENCHMARKS.md (session 8).
pub fn default_query_connections() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn parse_nonempty(s: &str) -> Result<String, String> {
    match s.trim() {
        "" => Err("must not be empty".to_owned()),
        s => Ok(s.to_owned()),
    }
}

/// The key names of the business timings, for `Layers` (their defaults are not layered).
fn is_business_key(name: &str) -> bool {
    BUSINESS_KEYS.contains(&name)
}
