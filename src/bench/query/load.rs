//! The readers: `clients` gRPC clients over `clients / per_connection` HTTP/2 connections,
//! each awaiting its answer before the next call, alternating `GetOrder` and
//! `ListBuyerOrders` (first page, 20) on a random order of the data set. Three clients in
//! four are that order's buyer (a buyer token, reading its own orders); the fourth is ops,
//! which may read any order.

use std::collections::BTreeMap;
use std::net::SocketAddr;
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
    let start = Instant::now();
    let deadline = start + plan.duration;
    let tasks: Vec<_> = (0..plan.clients)
        .map(|c| {
            let client = QueryServiceClient::new(channels[c % connections].clone());
            let (auth, ops) = (auth.clone(), ops.clone());
            let as_ops = c % 4 == 3;
            tokio::spawn(async move {
                reader(
                    client,
                    auth,
                    as_ops.then_some(ops),
                    dataset,
                    c as u64,
                    deadline,
                )
                .await
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

async fn reader(
    mut client: QueryServiceClient<Channel>,
    auth: JwtAuth,
    ops: Option<String>,
    dataset: Dataset,
    seed: u64,
    deadline: Instant,
) -> anyhow::Result<(RpcLoad, RpcLoad)> {
    let (mut get, mut list) = (RpcLoad::new(), RpcLoad::new());
    let mut rng = SplitMix(seed.wrapping_mul(0x9e37_79b9) ^ 0x5eed);
    while Instant::now() < deadline {
        let i = rng.next() % dataset.orders;
        let buyer = dataset.buyer_of(i);
        // Minted per call, as a buyer population would hold one each: microseconds.
        let token = match &ops {
            Some(ops) => ops.clone(),
            None => mint(&auth, Role::Buyer, &buyer.to_string())?,
        };
        let started = Instant::now();
        let request = pb::GetOrderRequest {
            order_no: dataset.order_no(i).as_str().to_owned(),
            consistency_token: String::new(),
        };
        let result = client
            .get_order(authorized(request, &token)?)
            .await
            .map(|_| ());
        get.record(started, result);

        let started = Instant::now();
        let request = pb::ListBuyerOrdersRequest {
            buyer_id: buyer,
            page_size: 20,
            ..Default::default()
        };
        let result = client
            .list_buyer_orders(authorized(request, &token)?)
            .await
            .map(|_| ());
        list.record(started, result);
    }
    Ok((get, list))
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
