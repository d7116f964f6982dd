//! The RPCs of the contract this build does not serve yet: stock ledger, reservations,
//! rider-geo, offers, merchant catalog. Each answers UNIMPLEMENTED (after authenticating, so
//! a client without a token still learns that first). The second part of the read side
//! replaces these one by one with modules beside [`super::orders`].

use orderflow_proto::v1 as pb;
use tonic::Request;

use super::{QueryHandler, ResponseStream};
use crate::error::QueryError;

macro_rules! pending {
    ($($method:ident($request:ty) -> $reply:ty = $rpc:literal;)*) => {
        impl QueryHandler {
            $(
                pub(crate) async fn $method(
                    &self,
                    request: Request<$request>,
                ) -> Result<$reply, QueryError> {
                    self.caller(&request)?;
                    Err(QueryError::Unimplemented($rpc))
                }
            )*
        }
    };
}

pending! {
    get_stock(pb::GetStockRequest) -> pb::StockLevel = "GetStock";
    list_reservations(pb::ListReservationsRequest) -> pb::ListReservationsReply = "ListReservations";
    nearby_riders(pb::NearbyRidersRequest) -> pb::NearbyRidersReply = "NearbyRiders";
    list_offers(pb::ListOffersRequest) -> pb::ListOffersReply = "ListOffers";
    watch_offers(pb::ListOffersRequest) -> ResponseStream<pb::Offer> = "WatchOffers";
    list_merchants_nearby(pb::ListMerchantsNearbyRequest) -> pb::ListMerchantsNearbyReply = "ListMerchantsNearby";
    get_menu(pb::GetMenuRequest) -> pb::Menu = "GetMenu";
}
