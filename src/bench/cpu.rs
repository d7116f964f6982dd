//! CPU time per operation, the figure that holds on a busy machine.
//!
//! Throughput on two shared cores measures the scheduler's share as much as the code: the
//! same binary gave 1,300 and 3,200 submits/s back to back while other work ran. The CPU
//! each process spent per operation moves far less, so every bench run reports it, for
//! the three processes a run has:
//! - this process (the app *and* the bench's own gRPC clients, which share it);
//! - the run's PostgreSQL backends: the connections to the run's database, listed from
//!   `pg_stat_activity` at the start and at the end (a backend that ended in between is
//!   missed; the app's pools keep theirs open for the run);
//! - nats-server, when one runs on this machine: the whole server, so anything else using
//!   it is counted too (an upper bound).
//!
//! Read from `/proc/{pid}/stat` (user + system time), so Linux only; elsewhere, or when a
//! process cannot be read, that figure is absent rather than wrong.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

/// Clock ticks per second of `/proc/{pid}/stat`: `USER_HZ`, 100 on every Linux architecture
/// this runs on (the kernel converts to it for user space whatever its own tick rate).
const USER_HZ: u64 = 100;

/// CPU time of one process so far, if it can be read.
fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// The pid of a running nats-server on this machine, if any.
fn nats_server_pid() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        (comm.trim_end() == "nats-server").then_some(pid)
    })
}

/// The backends serving the current database (other than the asking connection's own).
async fn backends(client: &tokio_postgres::Client) -> Vec<u32> {
    let rows = client
        .query(
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap_or_default();
    rows.iter()
        .filter_map(|row| u32::try_from(row.get::<_, i32>(0)).ok())
        .collect()
}

/// CPU times at the start of a measured phase.
pub struct CpuMark {
    ours: Option<Duration>,
    postgres: Option<HashMap<u32, Duration>>,
    nats: Option<(u32, Duration)>,
}

/// CPU spent during a phase, per process.
#[derive(Debug, Clone, Default)]
pub struct CpuUse {
    pub ours: Option<Duration>,
    pub postgres: Option<Duration>,
    pub nats: Option<Duration>,
}

impl CpuMark {
    /// `database`: a connection to the run's database (PostgreSQL runs), used to list its
    /// backends; `nats`: whether the run uses a nats-server (on this machine, if at all).
    pub async fn start(database: Option<&tokio_postgres::Client>, nats: bool) -> Self {
        let postgres = match database {
            Some(client) => Some(
                backends(client)
                    .await
                    .into_iter()
                    .filter_map(|pid| Some((pid, cpu_of(pid)?)))
                    .collect(),
            ),
            None => None,
        };
        CpuMark {
            ours: cpu_of(std::process::id()),
            postgres,
            nats: nats
                .then(nats_server_pid)
                .flatten()
                .and_then(|pid| Some((pid, cpu_of(pid)?))),
        }
    }

    /// What each process spent since `start`. A backend seen only now started during the
    /// phase: all of its time counts.
    pub async fn finish(self, database: Option<&tokio_postgres::Client>) -> CpuUse {
        let postgres = match (database, &self.postgres) {
            (Some(client), Some(before)) => {
                let mut spent = Duration::ZERO;
                for pid in backends(client).await {
                    if let Some(now) = cpu_of(pid) {
                        let then = before.get(&pid).copied().unwrap_or(Duration::ZERO);
                        spent += now.saturating_sub(then);
                    }
                }
                Some(spent)
            }
            _ => None,
        };
        CpuUse {
            ours: self
                .ours
                .zip(cpu_of(std::process::id()))
                .map(|(then, now)| now.saturating_sub(then)),
            postgres,
            nats: self
                .nats
                .and_then(|(pid, then)| Some(cpu_of(pid)?.saturating_sub(then))),
        }
    }
}

impl CpuUse {
    fn per_op(d: Option<Duration>, operations: u64) -> Option<f64> {
        (operations > 0).then_some(())?;
        Some(d?.as_secs_f64() * 1e6 / operations as f64)
    }

    /// `{"ours_s", "postgres_s", "nats_s", "per_op_us": {"ours", "postgres", "nats", "all"}}`;
    /// `all` only when every part was read.
    pub fn to_json(&self, operations: u64) -> Value {
        let all = match (self.ours, self.postgres, self.nats) {
            (Some(a), Some(b), Some(c)) => Some(a + b + c),
            _ => None,
        };
        json!({
            "ours_s": self.ours.map(|d| d.as_secs_f64()),
            "postgres_s": self.postgres.map(|d| d.as_secs_f64()),
            "nats_s": self.nats.map(|d| d.as_secs_f64()),
            "per_op_us": {
                "ours": Self::per_op(self.ours, operations),
                "postgres": Self::per_op(self.postgres, operations),
                "nats": Self::per_op(self.nats, operations),
                "all": Self::per_op(all, operations),
            },
        })
    }

    /// One line: `CPU per <what>: ours 312 µs, PostgreSQL 280 µs, nats-server 110 µs (...)`.
    pub fn line(&self, operations: u64, what: &str) -> String {
        let part = |name: &str, d: Option<Duration>| match Self::per_op(d, operations) {
            Some(us) => format!("{name} {us:.0} µs"),
            None => format!("{name} -"),
        };
        format!(
            "CPU per {what}: {}, {}, {} (this process holds the bench's clients too; \
             nats-server is the whole server's)",
            part("ours", self.ours),
            part("PostgreSQL backends", self.postgres),
            part("nats-server", self.nats),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_cpu_is_read_and_grows_with_work() {
        let Some(before) = cpu_of(std::process::id()) else {
            return; // not Linux: nothing to read
        };
        // Burn about 100 ms of CPU (two ticks are 20 ms).
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = cpu_of(std::process::id()).expect("read once, read again");
        assert!(after > before, "{before:?} -> {after:?}");
    }

    #[test]
    fn per_operation_figures_and_their_absence() {
        let used = CpuUse {
            ours: Some(Duration::from_millis(300)),
            postgres: Some(Duration::from_millis(200)),
            nats: None,
        };
        let v = used.to_json(1_000);
        assert_eq!(v["per_op_us"]["ours"], 300.0);
        assert_eq!(v["per_op_us"]["postgres"], 200.0);
        assert!(v["per_op_us"]["nats"].is_null());
        assert!(v["per_op_us"]["all"].is_null());
        assert!(used.line(1_000, "submit").contains("ours 300 µs"));
        assert!(used.to_json(0)["per_op_us"]["ours"].is_null());
    }

    #[test]
    fn a_missing_process_reads_as_nothing() {
        assert_eq!(cpu_of(u32::MAX), None);
    }
}
