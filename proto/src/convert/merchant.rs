//! Merchant requests: open a shop, list and delist dishes, restock.

use orderflow_domain::{GeoPoint, MerchantId, Money, Name, RestockQuantity, SkuId};

use super::field::{FieldError, FieldResult};
use super::request_id::RequestId;
use super::values::{positive_money, request_id, required_geo_point};
use crate::v1 as pb;

#[derive(Debug, Clone, PartialEq)]
pub struct OpenMerchant {
    pub request_id: RequestId,
    pub merchant: MerchantId,
    pub name: Name,
    pub location: GeoPoint,
}

impl TryFrom<&pb::OpenMerchantRequest> for OpenMerchant {
    type Error = FieldError;
    fn try_from(r: &pb::OpenMerchantRequest) -> Result<Self, FieldError> {
        Ok(OpenMerchant {
            request_id: request_id(&r.request_id)?,
            merchant: MerchantId::new(r.merchant_id).field("merchant_id")?,
            name: Name::parse(r.name.as_str()).field("name")?,
            location: required_geo_point(&r.location, "location")?,
        })
    }
}

/// Lists a dish, or changes the name and price of a listed one.
#[derive(Debug, Clone, PartialEq)]
pub struct ListDish {
    pub request_id: RequestId,
    pub merchant: MerchantId,
    pub sku: SkuId,
    pub name: Name,
    /// > 0.
    pub price: Money,
}

impl TryFrom<&pb::ListDishRequest> for ListDish {
    type Error = FieldError;
    fn try_from(r: &pb::ListDishRequest) -> Result<Self, FieldError> {
        Ok(ListDish {
            request_id: request_id(&r.request_id)?,
            merchant: MerchantId::new(r.merchant_id).field("merchant_id")?,
            sku: SkuId::parse(r.sku_id.as_str()).field("sku_id")?,
            name: Name::parse(r.name.as_str()).field("name")?,
            price: positive_money(&r.price, "price")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelistDish {
    pub request_id: RequestId,
    pub merchant: MerchantId,
    pub sku: SkuId,
}

impl TryFrom<&pb::DelistDishRequest> for DelistDish {
    type Error = FieldError;
    fn try_from(r: &pb::DelistDishRequest) -> Result<Self, FieldError> {
        Ok(DelistDish {
            request_id: request_id(&r.request_id)?,
            merchant: MerchantId::new(r.merchant_id).field("merchant_id")?,
            sku: SkuId::parse(r.sku_id.as_str()).field("sku_id")?,
        })
    }
}

/// Adds 1..=1,000,000 units; stock is only ever added to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restock {
    pub request_id: RequestId,
    pub merchant: MerchantId,
    pub sku: SkuId,
    pub quantity: RestockQuantity,
}

impl TryFrom<&pb::RestockRequest> for Restock {
    type Error = FieldError;
    fn try_from(r: &pb::RestockRequest) -> Result<Self, FieldError> {
        Ok(Restock {
            request_id: request_id(&r.request_id)?,
            merchant: MerchantId::new(r.merchant_id).field("merchant_id")?,
            sku: SkuId::parse(r.sku_id.as_str()).field("sku_id")?,
            quantity: RestockQuantity::new(r.quantity).field("quantity")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> pb::OpenMerchantRequest {
        pb::OpenMerchantRequest {
            request_id: "r-1".into(),
            merchant_id: 7,
            name: "老王面馆".into(),
            location: Some(pb::GeoPoint {
                lat: 39.9,
                lng: 116.4,
            }),
        }
    }

    fn list() -> pb::ListDishRequest {
        pb::ListDishRequest {
            request_id: "r-2".into(),
            merchant_id: 7,
            sku_id: "noodles-L".into(),
            name: "牛肉面".into(),
            price: Some(pb::Money {
                currency_code: "CNY".into(),
                minor_units: 2_800,
            }),
        }
    }

    fn delist() -> pb::DelistDishRequest {
        pb::DelistDishRequest {
            request_id: "r-3".into(),
            merchant_id: 7,
            sku_id: "noodles-L".into(),
        }
    }

    fn restock() -> pb::RestockRequest {
        pb::RestockRequest {
            request_id: "r-4".into(),
            merchant_id: 7,
            sku_id: "noodles-L".into(),
            quantity: 1_000_000,
        }
    }

    fn field_of<T, R>(r: &R) -> String
    where
        T: for<'a> TryFrom<&'a R, Error = FieldError> + std::fmt::Debug,
    {
        T::try_from(r).unwrap_err().field
    }

    #[test]
    fn open_merchant_happy_path_keeps_every_field() {
        let m = OpenMerchant::try_from(&open()).unwrap();
        assert_eq!(m.request_id.as_str(), "r-1");
        assert_eq!(m.merchant.get(), 7);
        assert_eq!(m.name.as_str(), "老王面馆");
        assert_eq!(
            pb::GeoPoint::from(m.location),
            pb::GeoPoint {
                lat: 39.9,
                lng: 116.4
            }
        );
    }

    #[test]
    fn open_merchant_names_each_bad_field() {
        let mut r = open();
        r.request_id.clear();
        assert_eq!(field_of::<OpenMerchant, _>(&r), "request_id");
        let mut r = open();
        r.merchant_id = 0;
        assert_eq!(field_of::<OpenMerchant, _>(&r), "merchant_id");
        let mut r = open();
        r.name = "x".repeat(101);
        assert_eq!(field_of::<OpenMerchant, _>(&r), "name");
        let mut r = open();
        r.location = None;
        assert_eq!(field_of::<OpenMerchant, _>(&r), "location");
        let mut r = open();
        r.location = Some(pb::GeoPoint {
            lat: -91.0,
            lng: 0.0,
        });
        assert_eq!(field_of::<OpenMerchant, _>(&r), "location.lat");
    }

    #[test]
    fn list_dish_happy_path_keeps_every_field() {
        let d = ListDish::try_from(&list()).unwrap();
        assert_eq!((d.merchant.get(), d.sku.as_str()), (7, "noodles-L"));
        assert_eq!(d.name.as_str(), "牛肉面");
        assert_eq!(pb::Money::from(d.price), list().price.unwrap());
    }

    #[test]
    fn list_dish_names_each_bad_field() {
        let mut r = list();
        r.sku_id = "noodles L".into();
        assert_eq!(field_of::<ListDish, _>(&r), "sku_id");
        let mut r = list();
        r.name = "  ".into();
        assert_eq!(field_of::<ListDish, _>(&r), "name");
        let mut r = list();
        r.price = None;
        assert_eq!(
            ListDish::try_from(&r).unwrap_err().to_string(),
            "price: is required"
        );
        let mut r = list();
        r.price = Some(pb::Money {
            currency_code: "CNY".into(),
            minor_units: 0,
        });
        assert_eq!(field_of::<ListDish, _>(&r), "price.minor_units");
        let mut r = list();
        r.price = Some(pb::Money {
            currency_code: "RMB1".into(),
            minor_units: 1,
        });
        assert_eq!(field_of::<ListDish, _>(&r), "price.currency_code");
    }

    #[test]
    fn delist_dish_round_trip_and_bad_fields() {
        let d = DelistDish::try_from(&delist()).unwrap();
        assert_eq!(
            (d.request_id.as_str(), d.merchant.get(), d.sku.as_str()),
            ("r-3", 7, "noodles-L")
        );
        let mut r = delist();
        r.sku_id.clear();
        assert_eq!(field_of::<DelistDish, _>(&r), "sku_id");
        let mut r = delist();
        r.merchant_id = -1;
        assert_eq!(field_of::<DelistDish, _>(&r), "merchant_id");
    }

    #[test]
    fn restock_round_trip_and_quantity_bounds() {
        let s = Restock::try_from(&restock()).unwrap();
        assert_eq!((s.sku.as_str(), s.quantity.get()), ("noodles-L", 1_000_000));
        for bad in [0, -1, 1_000_001] {
            let mut r = restock();
            r.quantity = bad;
            let e = Restock::try_from(&r).unwrap_err();
            assert_eq!(e.field, "quantity");
            assert_eq!(e.reason, format!("quantity must be 1..=1000000, got {bad}"));
        }
    }
}
