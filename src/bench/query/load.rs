//! The readers: `clients` gRPC clients over `clients / per_connection` HTTP/2 connections,
//! alternating `GetOrder` and `ListBuyerOrders` (first page, 20) on a random order of the data
//! set. Three clients in four act as that order's buyer, with the buyer's token (each buyer
//! has one, minted at its first call and kept for the run, as a buyer's app keeps its token
//! for its session); the fourth is ops, which may read any order.
//!
//! Two ways to load:
//! - **closed loop** (no `rate`): each client sends its next call when the last one
//!   answered — the most the service can take, but with `clients` calls always in flight the
//!   mean latency is `clients / throughput` by Little's law (256 clients at 5,000/s: 51 ms);
//! - **open loop** (`rate` queries/s in all): each client sends on a fixed schedule of
//!   `rate / clients` calls per second, whatever the answers, and a call's latency is counted
//!   from when it was *due*, so a stall is charged to every call it delays (no coordinated
//!   omission). This is how "5,000 queries/s with p99 ≤ 5 ms" is measured.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use orderflow_domain::Role;
use orderflow_infra::auth::JwtAuth;
use orderflow_proto::v1 as pb;
use orderflow_proto::v1::query_service_client::QueryServiceClient;
use tonic::transport::Channel;

use super::super::flash_sale::clients::authorized;
use super::super::report;
use super::seed::Dataset;

pub struct LoadPlan {
    pub clients: usize,
    pub per_connection: usize,
    pub duration: Duration,
    /// Queries per second over all clients (open loop); `None`: closed loop.
    pub rate: Option<f64>,
}

/// What one RPC did over the run.
pub struct RpcLoad {
    pub ok: u64,
    /// Failed calls by gRPC code.
    pub errors: BTreeMap<String, u64>,
    pub latency: Histogram<u64>,
}

impl RpcLoad {
    fn new() -> Self {
        RpcLoad {
            ok: 0,
            errors: BTreeMap::new(),
            latency: report::histogram(),
        }
    }

    fn add(&mut self, other: RpcLoad) {
        self.ok += other.ok;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        // Same bounds on both sides: cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    fn record(&mut self, started: Instant, result: Result<(), tonic::Status>) {
        match result {
            Ok(()) => {
                self.ok += 1;
                report::record(&mut self.latency, started.elapsed());
            }
            Err(status) => {
                *self
                    .errors
                    .entry(format!("{:?}", status.code()))
                    .or_default() += 1;
            }
        }
    }
}

pub struct LoadResult {
    pub get_order: RpcLoad,
    pub list_buyer: RpcLoad,
    pub elapsed: Duration,
    pub connections: usize,
}

pub async fn run(
    addr: SocketAddr,
    auth: &JwtAuth,
    dataset: Dataset,
    plan: LoadPlan,
) -> anyhow::Result<LoadResult> {
    let connections = plan.clients.div_ceil(plan.per_connection.max(1));
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(
            Channel::from_shared(format!("http://{addr}"))?
                .connect()
                .await
                .context("connecting to the bench server")?,
        );
    }
    let ops = mint(auth, Role::Ops, "bench-ops")?;
    let tokens = Arc::new(Tokens {
        auth: auth.clone(),
        buyers: (0..dataset.buyers()).map(|_| OnceLock::new()).collect(),
    });
    // Open loop: each client's gap between two calls, and a phase so they do not all fire at
    // the same instant.
    let gap = plan
        .rate
        .map(|rate| Duration::from_secs_f64(plan.clients as f64 / rate.max(0.001)));
    let start = Instant::now();
    let deadline = start + plan.duration;
    let tasks: Vec<_> = (0..plan.clients)
        .map(|c| {
            let client = QueryServiceClient::new(channels[c % connections].clone());
            let (tokens, ops) = (tokens.clone(), ops.clone());
            let as_ops = c % 4 == 3;
            let pace = gap.map(|gap| Pace {
                gap,
                next: start + gap.mul_f64(c as f64 / plan.clients as f64),
            });
            tokio::spawn(async move {
                let reader = Reader {
                    client,
                    tokens,
                    ops: as_ops.then_some(ops),
                    dataset,
                    pace,
                };
                reader.run(c as u64, deadline).await
            })
        })
        .collect();
    let (mut get_order, mut list_buyer) = (RpcLoad::new(), RpcLoad::new());
    for task in tasks {
        let (get, list) = task.await??;
        get_order.add(get);
        list_buyer.add(list);
    }
    Ok(LoadResult {
        get_order,
        list_buyer,
        elapsed: start.elapsed(),
        connections,
    })
}

/// Every buyer's token, minted at its first use and kept for the run.
struct Tokens {
    auth: JwtAuth,
    /// By buyer id - 1.
    buyers: Vec<OnceLock<String>>,
}

impl Tokens {
    fn buyer(&self, buyer: i64) -> anyhow::Result<&str> {
        let slot = &self.buyers[(buyer - 1) as usize];
        if let Some(token) = slot.get() {
            return Ok(token);
        }
        let token = mint(&self.auth, Role::Buyer, &buyer.to_string())?;
        Ok(slot.get_or_init(|| token))
    }
}

/// An open-loop client's schedule.
struct Pace {
    gap: Duration,
    next: Instant,
}

impl Pace {
    /// Waits until the next call is due and returns when it was due.
    async fn due(&mut self) -> Instant {
        let due = self.next;
        self.next += self.gap;
        tokio::time::sleep_until(due.into()).await;
        due
    }
}

struct Reader {
    client: QueryServiceClient<Channel>,
    tokens: Arc<Tokens>,
    ops: Option<String>,
    dataset: Dataset,
    pace: Option<Pace>,
}

impl Reader {
    /// When the next call starts, for its latency: now (closed loop) or when it was due.
    async fn start(&mut self) -> Instant {
        match &mut self.pace {
            Some(pace) => pace.due().await,
            None => Instant::now(),
        }
    }

    async fn run(mut self, seed: u64, deadline: Instant) -> anyhow::Result<(RpcLoad, RpcLoad)> {
        let (mut get, mut list) = (RpcLoad::new(), RpcLoad::new());
        let mut rng = SplitMix(seed.wrapping_mul(0x9e37_79b9) ^ 0x5eed);
        while Instant::now() < deadline {
            let i = rng.next() % self.dataset.orders;
            let buyer = self.dataset.buyer_of(i);
            let token = match &self.ops {
                Some(ops) => ops.clone(),
                None => self.tokens.buyer(buyer)?.to_owned(),
            };
            let request = pb::GetOrderRequest {
                order_no: self.dataset.order_no(i).as_str().to_owned(),
                consistency_token: String::new(),
            };
            let started = self.start().await;
            if started >= deadline {
                break;
            }
            let result = self
                .client
                .get_order(authorized(request, &token)?)
                .await
                .map(|_| ());
            get.record(started, result);

            let request = pb::ListBuyerOrdersRequest {
                buyer_id: buyer,
                page_size: 20,
                ..Default::default()
            };
            let started = self.start().await;
            if started >= deadline {
                break;
            }
            let result = self
                .client
                .list_buyer_orders(authorized(request, &token)?)
                .await
                .map(|_| ());
            list.record(started, result);
        }
        Ok((get, list))
    }
}

fn mint(auth: &JwtAuth, role: Role, subject: &str) -> anyhow::Result<String> {
    // Long enough for any bounded run.
    Ok(auth.mint(role, subject, Duration::from_secs(3600))?)
}

/// SplitMix64: a fast, well-spread sequence; no `rand` dependency for picking orders.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
