//! One LISTEN connection per database, feeding the shards' head watches with the heads that
//! other processes commit (this process's own commits bump them directly).
//!
//! Notifications can be lost while the connection is down, so after every (re)connect the
//! listener reads `shard_heads` once; subscribers also re-read on a slow timer.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orderflow_domain::Shard;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use crate::store::follow::Heads;
use crate::store::Position;

/// The channel writers notify on; the payload is `shard:position,shard:position,…`.
pub(super) const NOTIFY_CHANNEL: &str = "orderflow_heads";

const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// Listens until `shutdown`, reconnecting as needed.
pub(super) async fn run(url: String, heads: Arc<Heads>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = listen_once(&url, &heads) => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "event store listener lost its connection");
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RECONNECT_DELAY) => {}
        }
    }
}

/// One connection's life: LISTEN, catch up on the heads, then follow notifications.
async fn listen_once(url: &str, heads: &Heads) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await?;
    let (notified_tx, mut notified) = tokio::sync::mpsc::unbounded_channel();
    // The connection must be polled for anything to happen, notifications included.
    let driver = async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            if let AsyncMessage::Notification(n) = message? {
                let _ = notified_tx.send(n.payload().to_owned());
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    };
    let follow = async {
        client
            .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
            .await?;
        for row in client
            .query("SELECT shard, position FROM shard_heads", &[])
            .await?
        {
            bump(heads, row.get::<_, i16>(0).into(), row.get(1));
        }
        while let Some(payload) = notified.recv().await {
            for (shard, position) in parse(&payload) {
                bump(heads, shard, position);
            }
        }
        Ok(())
    };
    tokio::select! {
        result = driver => result,
        result = follow => result,
    }
}

fn bump(heads: &Heads, shard: i64, position: i64) {
    if let (Ok(shard), Ok(position)) = (Shard::try_from(shard), u64::try_from(position)) {
        heads.bump(shard, Position::new(position));
    }
}

/// `shard:position` pairs of a payload; anything malformed is skipped (the fallback poll
/// covers it).
fn parse(payload: &str) -> impl Iterator<Item = (i64, i64)> + '_ {
    payload.split(',').filter_map(|pair| {
        let (shard, position) = pair.split_once(':')?;
        Some((shard.parse().ok()?, position.parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn payloads_parse_and_skip_garbage() {
        let pairs: Vec<_> = super::parse("3:10,x:1,31:7,4").collect();
        assert_eq!(pairs, vec![(3, 10), (31, 7)]);
    }
}
