//! The simulated city: merchants with menus, riders, buyers, all placed in a square around
//! central Shanghai, drawn from the seed; and its seeding through the gRPC API (merchants open
//! and list and stock their dishes, riders go online).

use futures::StreamExt;
use orderflow_proto::v1 as pb;

use super::api::{money, Api, Caller};
use super::progress::Bar;
use super::rng::Rng;
use super::DemoError;

/// People's Square, Shanghai.
const CENTER: Point = Point {
    lat: 31.2304,
    lng: 121.4737,
};
/// Metres per degree of latitude.
const M_PER_DEG: f64 = 111_320.0;
/// A buyer orders from one of the merchants this close to home (falls back to the nearest).
pub const ORDER_RADIUS_M: f64 = 3_000.0;
/// Calls in flight while seeding.
const SEED_CONCURRENCY: usize = 64;

const CUISINES: [&str; 12] = [
    "Noodle Bar",
    "Dumpling House",
    "Hotpot",
    "Bao Kitchen",
    "Rice Bowl",
    "Tea & Toast",
    "Skewers",
    "Congee Corner",
    "Sushi Stop",
    "Burger Lab",
    "Curry Pot",
    "Salad Co",
];
const DISHES: [&str; 16] = [
    "Beef noodles",
    "Pork dumplings",
    "Mapo tofu",
    "Kung pao chicken",
    "Fried rice",
    "Wonton soup",
    "Scallion pancake",
    "Char siu bao",
    "Milk tea",
    "Spring rolls",
    "Sweet and sour pork",
    "Hot and sour soup",
    "Lamb skewers",
    "Egg tart",
    "Cold noodles",
    "Braised eggplant",
];

/// A point in the city (WGS84 degrees).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub lat: f64,
    pub lng: f64,
}

impl Point {
    /// Equirectangular distance in metres: exact enough inside one city.
    pub fn distance_m(self, other: Point) -> f64 {
        let dy = (self.lat - other.lat) * M_PER_DEG;
        let dx = (self.lng - other.lng) * M_PER_DEG * self.lat.to_radians().cos();
        (dx * dx + dy * dy).sqrt()
    }

    /// The point `metres` of the way from here towards `to` (`to` itself if closer).
    pub fn towards(self, to: Point, metres: f64) -> Point {
        let d = self.distance_m(to);
        if d <= metres || d == 0.0 {
            return to;
        }
        let f = metres / d;
        Point {
            lat: self.lat + (to.lat - self.lat) * f,
            lng: self.lng + (to.lng - self.lng) * f,
        }
    }

    /// A point within `radius_m` of this one.
    pub fn near(self, rng: &mut Rng, radius_m: f64) -> Point {
        let dy = rng.between(-radius_m, radius_m);
        let dx = rng.between(-radius_m, radius_m);
        Point {
            lat: self.lat + dy / M_PER_DEG,
            lng: self.lng + dx / (M_PER_DEG * self.lat.to_radians().cos()),
        }
    }

    pub fn proto(self) -> pb::GeoPoint {
        pb::GeoPoint {
            lat: self.lat,
            lng: self.lng,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Dish {
    pub sku: String,
    pub name: String,
    pub price: i64,
    pub stock: i64,
}

#[derive(Debug, Clone)]
pub struct Merchant {
    pub id: i64,
    pub name: String,
    pub location: Point,
    pub dishes: Vec<Dish>,
}

#[derive(Debug, Clone)]
pub struct Rider {
    pub id: i64,
    pub start: Point,
    pub capacity: i32,
}

#[derive(Debug, Clone)]
pub struct Buyer {
    pub id: i64,
    pub home: Point,
    /// Indexes into [`City::merchants`] within [`ORDER_RADIUS_M`], nearest first (at least one).
    pub nearby: Vec<usize>,
}

/// The flash-sale dish, on merchant 1.
#[derive(Debug, Clone)]
pub struct FlashDish {
    pub merchant: usize,
    pub dish: Dish,
}

pub struct City {
    pub merchants: Vec<Merchant>,
    pub riders: Vec<Rider>,
    pub buyers: Vec<Buyer>,
    pub flash: Option<FlashDish>,
    /// Half the side of the square the city fills, metres.
    pub half_side_m: f64,
}

/// How big a city to draw.
#[derive(Debug, Clone, Copy)]
pub struct CitySize {
    pub merchants: usize,
    pub riders: usize,
    pub buyers: usize,
    /// Units of the flash-sale dish (0: no flash sale).
    pub flash_units: i64,
}

impl City {
    /// Draws a city from `rng`. The square grows with the number of merchants, so that a
    /// buyer has a few within reach at any scale (about 14 km across for 200).
    pub fn generate(size: CitySize, rng: &mut Rng) -> City {
        let half_side_m = (size.merchants.max(1) as f64 * 250_000.0)
            .sqrt()
            .clamp(1_500.0, 25_000.0);
        let merchants: Vec<Merchant> = (1..=size.merchants as i64)
            .map(|id| {
                let dish_count = rng.range(6, 11) as usize;
                let first = rng.range(0, DISHES.len() as u64) as usize;
                Merchant {
                    id,
                    name: format!("{} #{id}", rng.pick(&CUISINES)),
                    location: CENTER.near(rng, half_side_m),
                    dishes: (0..dish_count)
                        .map(|j| Dish {
                            sku: format!("m{id}-d{j}"),
                            name: DISHES[(first + j) % DISHES.len()].to_owned(),
                            price: rng.range(12, 89) as i64 * 100,
                            stock: rng.range(40, 120) as i64,
                        })
                        .collect(),
                }
            })
            .collect();
        let riders = (1..=size.riders as i64)
            .map(|id| Rider {
                id,
                start: CENTER.near(rng, half_side_m),
                capacity: rng.range(2, 5) as i32,
            })
            .collect();
        let buyers = (1..=size.buyers as i64)
            .map(|id| {
                let home = CENTER.near(rng, half_side_m);
                Buyer {
                    id,
                    home,
                    nearby: nearby_merchants(&merchants, home),
                }
            })
            .collect();
        let flash = (size.flash_units > 0 && !merchants.is_empty()).then(|| FlashDish {
            merchant: 0,
            dish: Dish {
                sku: "flash-hotpot".into(),
                name: "Flash-sale hotpot for two".into(),
                price: 990,
                stock: size.flash_units,
            },
        });
        City {
            merchants,
            riders,
            buyers,
            flash,
            half_side_m,
        }
    }

    pub fn dish_count(&self) -> usize {
        self.merchants.iter().map(|m| m.dishes.len()).sum::<usize>()
            + usize::from(self.flash.is_some())
    }

    /// Every merchant opens, lists its dishes and stocks them; every rider goes online.
    pub async fn seed(&self, api: &Api, bar: &Bar) -> Result<(), DemoError> {
        bar.set_length((self.merchants.len() + self.riders.len()) as u64);
        let mut merchants = futures::stream::iter(self.merchants.iter().map(|m| async move {
            let extra = self
                .flash
                .as_ref()
                .filter(|f| self.merchants[f.merchant].id == m.id)
                .map(|f| &f.dish);
            let r = open_merchant(api, m, extra).await;
            bar.inc(1);
            r
        }))
        .buffer_unordered(SEED_CONCURRENCY);
        while let Some(r) = merchants.next().await {
            r?;
        }
        let mut riders = futures::stream::iter(self.riders.iter().map(|r| async move {
            let answer = api
                .go_online(
                    Caller::Rider(r.id),
                    pb::GoOnlineRequest {
                        request_id: api.request_id(),
                        rider_id: r.id,
                        location: Some(r.start.proto()),
                        capacity: r.capacity,
                    },
                )
                .await;
            bar.inc(1);
            answer.map_err(|s| DemoError::rpc("GoOnline", s))
        }))
        .buffer_unordered(SEED_CONCURRENCY);
        while let Some(r) = riders.next().await {
            r?;
        }
        Ok(())
    }
}

/// Merchants within reach of `home`, nearest first; the nearest one if none is.
fn nearby_merchants(merchants: &[Merchant], home: Point) -> Vec<usize> {
    let mut by_distance: Vec<(f64, usize)> = merchants
        .iter()
        .enumerate()
        .map(|(i, m)| (home.distance_m(m.location), i))
        .collect();
    by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
    let within: Vec<usize> = by_distance
        .iter()
        .take_while(|(d, _)| *d <= ORDER_RADIUS_M)
        .map(|(_, i)| *i)
        .collect();
    if within.is_empty() {
        by_distance
            .first()
            .map(|(_, i)| vec![*i])
            .unwrap_or_default()
    } else {
        within
    }
}

async fn open_merchant(api: &Api, m: &Merchant, extra: Option<&Dish>) -> Result<(), DemoError> {
    let caller = Caller::Merchant(m.id);
    api.open_merchant(
        caller,
        pb::OpenMerchantRequest {
            request_id: api.request_id(),
            merchant_id: m.id,
            name: m.name.clone(),
            location: Some(m.location.proto()),
        },
    )
    .await
    .map_err(|s| DemoError::rpc("OpenMerchant", s))?;
    for dish in m.dishes.iter().chain(extra) {
        api.list_dish(
            caller,
            pb::ListDishRequest {
                request_id: api.request_id(),
                merchant_id: m.id,
                sku_id: dish.sku.clone(),
                name: dish.name.clone(),
                price: Some(money(dish.price)),
            },
        )
        .await
        .map_err(|s| DemoError::rpc("ListDish", s))?;
        restock(api, m.id, &dish.sku, dish.stock).await?;
    }
    Ok(())
}

pub async fn restock(api: &Api, merchant: i64, sku: &str, quantity: i64) -> Result<(), DemoError> {
    api.restock(
        Caller::Merchant(merchant),
        pb::RestockRequest {
            request_id: api.request_id(),
            merchant_id: merchant,
            sku_id: sku.to_owned(),
            quantity,
        },
    )
    .await
    .map_err(|s| DemoError::rpc("Restock", s))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_the_same_city_and_every_buyer_has_a_merchant() {
        let size = CitySize {
            merchants: 20,
            riders: 50,
            buyers: 300,
            flash_units: 10,
        };
        let a = City::generate(size, &mut Rng::new(3));
        let b = City::generate(size, &mut Rng::new(3));
        assert_eq!(a.merchants[7].location, b.merchants[7].location);
        assert_eq!(a.buyers[99].nearby, b.buyers[99].nearby);
        assert!(a.buyers.iter().all(|buyer| !buyer.nearby.is_empty()));
        assert_eq!(a.flash.as_ref().map(|f| f.dish.stock), Some(10));
        let skus: std::collections::HashSet<_> = a
            .merchants
            .iter()
            .flat_map(|m| m.dishes.iter().map(|d| d.sku.clone()))
            .collect();
        assert_eq!(skus.len() + 1, a.dish_count(), "sku ids are unique");
    }

    #[test]
    fn towards_moves_at_most_the_distance_given() {
        let a = CENTER;
        let b = Point {
            lat: CENTER.lat + 0.01,
            lng: CENTER.lng,
        };
        let d = a.distance_m(b);
        let mid = a.towards(b, 300.0);
        assert!((a.distance_m(mid) - 300.0).abs() < 1.0);
        assert_eq!(a.towards(b, d + 1.0), b);
    }
}
