//! The crowd: `concurrency` gRPC clients, each awaiting its `SubmitOrder` before sending
//! the next, spread over several HTTP/2 connections (one per `per_connection` clients) so
//! that one connection's stream limit and single socket task are not what is measured.
//! Every submit comes from a distinct buyer with its own token.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use orderflow_domain::Role;
use orderflow_proto::v1 as pb;
use orderflow_proto::v1::command_service_client::CommandServiceClient;
use tonic::metadata::MetadataValue;
use tonic::Request;

use super::super::report;
use super::lag::Probe;
use super::target::{Target, MERCHANT, PRICE, SKU};

pub struct LoadPlan {
    pub submits: u64,
    pub concurrency: usize,
    pub per_connection: usize,
    /// No submit starts after this.
    pub deadline: Instant,
    /// Told of every answer's consistency token, to measure projection lag.
    pub probe: Option<Probe>,
}

pub struct LoadResult {
    pub ok: u64,
    /// Failed submits by gRPC code.
    pub errors: BTreeMap<String, u64>,
    /// Per submit, as the client sees it (answer received − request sent).
    pub latency: Histogram<u64>,
    /// From the first submit sent to the last answer received.
    pub elapsed: Duration,
    /// Wall clock of the last answer, in Unix milliseconds, to compare with the store's
    /// `recorded_at` of the outcomes.
    pub last_answer_ms: i64,
    pub connections: usize,
}

/// `message` with `authorization: Bearer <token>`.
pub fn authorized<T>(message: T, token: &str) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

pub fn money(minor_units: i64) -> pb::Money {
    pb::Money {
        currency_code: "CNY".into(),
        minor_units,
    }
}

/// Buyer `n` (1-based) of the crowd: one latte to one address.
fn submit_request(n: u64) -> pb::SubmitOrderRequest {
    pb::SubmitOrderRequest {
        request_id: format!("flash-{n}"),
        buyer_id: n as i64,
        merchant_id: MERCHANT,
        lines: vec![pb::OrderLine {
            sku_id: SKU.into(),
            quantity: 1,
            unit_price: Some(money(PRICE)),
        }],
        delivery_address: Some(pb::Address {
            text: "88 Century Avenue, Pudong".into(),
            location: Some(pb::GeoPoint {
                lat: 31.2397,
                lng: 121.4998,
            }),
        }),
    }
}

/// One bearer header per buyer, built before the clock starts: token signing is the
/// client's cost, not the server's.
fn headers(
    target: &Target,
    submits: u64,
) -> anyhow::Result<Arc<Vec<MetadataValue<tonic::metadata::Ascii>>>> {
    let mut out = Vec::with_capacity(submits as usize);
    for n in 1..=submits {
        let token = target.token(Role::Buyer, &n.to_string())?;
        out.push(format!("Bearer {token}").parse()?);
    }
    Ok(Arc::new(out))
}

pub async fn run(target: &Target, plan: LoadPlan) -> anyhow::Result<LoadResult> {
    let headers = headers(target, plan.submits)?;
    let connections = plan.concurrency.div_ceil(plan.per_connection.max(1));
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(target.channel().await?);
    }

    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..plan.concurrency)
        .map(|c| {
            let mut client = CommandServiceClient::new(channels[c % connections].clone());
            let (next, headers) = (next.clone(), headers.clone());
            let (submits, deadline, probe) = (plan.submits, plan.deadline, plan.probe.clone());
            tokio::spawn(async move {
                let mut latency = report::histogram();
                let mut errors: BTreeMap<String, u64> = BTreeMap::new();
                let (mut ok, mut last) = (0u64, None);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= submits || Instant::now() >= deadline {
                        break;
                    }
                    let mut request = Request::new(submit_request(i + 1));
                    request
                        .metadata_mut()
                        .insert("authorization", headers[i as usize].clone());
                    let began = Instant::now();
                    let answer = client.submit_order(request).await;
                    let answered = Instant::now();
                    report::record(&mut latency, answered - began);
                    last = Some((answered, chrono::Utc::now().timestamp_millis()));
                    match answer {
                        Ok(reply) => {
                            ok += 1;
                            if let Some(probe) = &probe {
                                probe.answered(&reply.get_ref().consistency_token);
                            }
                        }
                        Err(status) => {
                            *errors.entry(format!("{:?}", status.code())).or_default() += 1;
                            tracing::debug!(%status, "submit failed");
                        }
                    }
                }
                (ok, errors, latency, last)
            })
        })
        .collect();
    // The tasks hold the only probes left: the probe sees the load end with the last of them.
    drop(plan.probe);

    let mut result = LoadResult {
        ok: 0,
        errors: BTreeMap::new(),
        latency: report::histogram(),
        elapsed: Duration::ZERO,
        last_answer_ms: chrono::Utc::now().timestamp_millis(),
        connections,
    };
    let mut last_answer: Option<(Instant, i64)> = None;
    for task in tasks {
        let (ok, errors, latency, last) = task.await?;
        result.ok += ok;
        for (code, n) in errors {
            *result.errors.entry(code).or_default() += n;
        }
        result.latency.add(&latency)?;
        last_answer = last_answer.max(last);
    }
    if let Some((at, ms)) = last_answer {
        result.elapsed = at - started;
        result.last_answer_ms = ms;
    }
    Ok(result)
}
