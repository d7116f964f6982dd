//! The read ceiling of this PostgreSQL in the same run: the adapters' own two queries
//! (`order_detail` by key; a buyer's first page of `buyer_order`), issued raw from as many
//! connections as the app's pool, each awaiting its answer, on random orders of the data set.
//! No gRPC, no tokens, no JSON decoding: what the service could reach if it cost nothing.

use std::time::{Duration, Instant};

use orderflow_domain::BuyerId;
use orderflow_projections::orders::Owner;

use super::super::report::{self, ScenarioResult};
use super::load::SplitMix;
use super::seed::Dataset;
use orderflow::scratch::ScratchDatabase;

#[derive(Debug, Clone, Copy)]
pub enum Query {
    Detail,
    BuyerList,
}

pub async fn raw_reads(
    db: &ScratchDatabase,
    query: Query,
    connections: usize,
    duration: Duration,
    dataset: Dataset,
) -> anyhow::Result<ScenarioResult> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let client = db.client().await?;
        tasks.push(tokio::spawn(async move {
            let sql = match query {
                Query::Detail => "SELECT doc FROM order_detail WHERE order_no = $1",
                Query::BuyerList => {
                    "SELECT doc FROM buyer_order
                     WHERE part = $1 AND owner_id = $2
                       AND (cardinality($3::text[]) = 0 OR status = ANY($3))
                       AND (NOT $4 OR (created_ms, order_no) < ($5, $6))
                     ORDER BY created_ms DESC, order_no DESC
                     LIMIT $7"
                }
            };
            let statement = client.prepare(sql).await?;
            let mut latency = report::histogram();
            let mut rng = SplitMix(c as u64 ^ 0xce11);
            let no_statuses: Vec<&str> = Vec::new();
            while Instant::now() < deadline {
                let i = rng.next() % dataset.orders;
                let started = Instant::now();
                match query {
                    Query::Detail => {
                        let no = dataset.order_no(i);
                        client.query_opt(&statement, &[&no.as_str()]).await?;
                    }
                    Query::BuyerList => {
                        let buyer = dataset.buyer_of(i);
                        let part = owner_partition(buyer);
                        client
                            .query(
                                &statement,
                                &[&part, &buyer, &no_statuses, &false, &0_i64, &"", &21_i64],
                            )
                            .await?;
                    }
                }
                report::record(&mut latency, started.elapsed());
            }
            anyhow::Ok(latency)
        }));
    }
    let mut latency = report::histogram();
    for task in tasks {
        // Same bounds on both sides: cannot fail.
        let _ = latency.add(&task.await??);
    }
    let name = match query {
        Query::Detail => "ceiling: raw order_detail by key",
        Query::BuyerList => "ceiling: raw buyer_order page",
    };
    Ok(ScenarioResult {
        name: name.to_owned(),
        concurrency: connections,
        operations: latency.len(),
        errors: 0,
        elapsed: start.elapsed(),
        latency: Some(latency),
    })
}

fn owner_partition(buyer: i64) -> i16 {
    Owner::Buyer(BuyerId::new(buyer).expect("positive buyer id")).partition()
}
