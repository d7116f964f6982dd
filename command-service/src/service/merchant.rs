//! Merchants' RPCs: the shop on its `merchant-{id}` stream, its dishes and their stock on the
//! `sku-{id}` streams, which only [`crate::stock::StockWriters`] touches.

use orderflow_domain::merchant::{Merchant, MerchantCommand};
use orderflow_domain::sku::SkuCommand;
use orderflow_domain::MerchantId;
use orderflow_proto::convert::{DelistDish, ListDish, OpenMerchant, Restock};
use orderflow_proto::v1 as pb;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::{answer, reply, CommandHandler};
use crate::error::CommandError;

#[instrument(
    skip_all,
    fields(rpc = "OpenMerchant", request_id, correlation_id, actor)
)]
pub(super) async fn open_merchant(
    h: &CommandHandler,
    request: Request<pb::OpenMerchantRequest>,
) -> Result<Response<pb::CommandReply>, Status> {
    answer(
        async {
            let (ctx, r) = h.begin::<OpenMerchant, _>(&request)?;
            let command = MerchantCommand::Open {
                name: r.name,
                location: r.location,
                at: ctx.meta.at,
            };
            let done = h
                .executor
                .execute::<Merchant>(&r.merchant.stream_id(), &command, &ctx.meta)
                .await?;
            Ok(reply(&done))
        }
        .await,
    )
}

#[instrument(skip_all, fields(rpc = "ListDish", request_id, correlation_id, actor))]
pub(super) async fn list_dish(
    h: &CommandHandler,
    request: Request<pb::ListDishRequest>,
) -> Result<Response<pb::CommandReply>, Status> {
    answer(
        async {
            let (ctx, r) = h.begin::<ListDish, _>(&request)?;
            ensure_merchant_exists(h, r.merchant).await?;
            let command = SkuCommand::List {
                merchant: r.merchant,
                name: r.name,
                price: r.price,
                at: ctx.meta.at,
            };
            let done = h.stock.execute(&r.sku, command, &ctx.meta).await?;
            Ok(reply(&done))
        }
        .await,
    )
}

#[instrument(
    skip_all,
    fields(rpc = "DelistDish", request_id, correlation_id, actor)
)]
pub(super) async fn delist_dish(
    h: &CommandHandler,
    request: Request<pb::DelistDishRequest>,
) -> Result<Response<pb::CommandReply>, Status> {
    answer(
        async {
            let (ctx, r) = h.begin::<DelistDish, _>(&request)?;
            ensure_merchant_exists(h, r.merchant).await?;
            let command = SkuCommand::Delist {
                merchant: r.merchant,
                at: ctx.meta.at,
            };
            let done = h.stock.execute(&r.sku, command, &ctx.meta).await?;
            Ok(reply(&done))
        }
        .await,
    )
}

/// Adds stock: the domain has no command that sets a quantity.
#[instrument(skip_all, fields(rpc = "Restock", request_id, correlation_id, actor))]
pub(super) async fn restock(
    h: &CommandHandler,
    request: Request<pb::RestockRequest>,
) -> Result<Response<pb::CommandReply>, Status> {
    answer(
        async {
            let (ctx, r) = h.begin::<Restock, _>(&request)?;
            ensure_merchant_exists(h, r.merchant).await?;
            let command = SkuCommand::Restock {
                merchant: r.merchant,
                quantity: r.quantity,
                at: ctx.meta.at,
            };
            let done = h.stock.execute(&r.sku, command, &ctx.meta).await?;
            Ok(reply(&done))
        }
        .await,
    )
}

/// The sku streams do not read the merchant's (a reservation must not), so a dish of a shop
/// never opened would be accepted there: NOT_FOUND here instead.
async fn ensure_merchant_exists(
    h: &CommandHandler,
    merchant: MerchantId,
) -> Result<(), CommandError> {
    let loaded = h.executor.load::<Merchant>(&merchant.stream_id()).await?;
    match loaded.state.profile {
        Some(_) => Ok(()),
        None => Err(CommandError::NotFound(format!(
            "merchant {merchant} does not exist"
        ))),
    }
}
