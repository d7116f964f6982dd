//! The one door to Sku streams: every listing, restock and reservation goes through here.
//!
//! Today each command is executed optimistically (load, decide, append with the expected
//! version, retry on conflict): correct, but a flash sale on one SKU turns into a retry
//! storm. The per-SKU single writer (issue 3 §3) replaces the inside of this type, keeping
//! its interface, so callers never change.

use orderflow_domain::sku::{Sku, SkuCommand, SkuEvent, SkuState};
use orderflow_domain::SkuId;

use crate::error::CommandError;
use crate::execute::{CommandMeta, Executed, Executor};

#[derive(Clone)]
pub struct StockWriters {
    executor: Executor,
}

impl StockWriters {
    pub fn new(executor: Executor) -> Self {
        StockWriters { executor }
    }

    /// Decides and appends one command on one SKU.
    pub async fn execute(
        &self,
        sku: &SkuId,
        command: SkuCommand,
        meta: &CommandMeta,
    ) -> Result<Executed<SkuEvent>, CommandError> {
        self.executor
            .execute::<Sku>(&sku.stream_id(), &command, meta)
            .await
    }

    /// The SKU's current state (listing, price, stock), for handlers that need it.
    pub async fn state(&self, sku: &SkuId) -> Result<SkuState, CommandError> {
        Ok(self.executor.load::<Sku>(&sku.stream_id()).await?.state)
    }
}
