//! Places on the WGS84 globe: where merchants are, where riders are, where food goes.

use serde::{Deserialize, Serialize};

use crate::refusal::{Refusal, RefusalKind};
use crate::text::{AddressText, TextError};

/// Mean Earth radius (IUGG), metres. Haversine on a sphere is within 0.5% of the ellipsoid,
/// far better than a rider's GPS.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeoError {
    #[error("lat must be a finite number in [-90, 90], got {0}")]
    Lat(f64),
    #[error("lng must be a finite number in [-180, 180], got {0}")]
    Lng(f64),
    #[error(transparent)]
    Text(#[from] TextError),
}

impl Refusal for GeoError {
    fn kind(&self) -> RefusalKind {
        RefusalKind::InvalidArgument
    }
}

/// A valid latitude/longitude in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawPoint", into = "RawPoint")]
pub struct GeoPoint {
    lat: f64,
    lng: f64,
}

#[derive(Serialize, Deserialize)]
struct RawPoint {
    lat: f64,
    lng: f64,
}

impl GeoPoint {
    pub fn new(lat: f64, lng: f64) -> Result<Self, GeoError> {
        // `contains` is false for NaN, and infinities are out of range.
        if !(-90.0..=90.0).contains(&lat) {
            return Err(GeoError::Lat(lat));
        }
        if !(-180.0..=180.0).contains(&lng) {
            return Err(GeoError::Lng(lng));
        }
        Ok(GeoPoint { lat, lng })
    }

    pub fn lat(&self) -> f64 {
        self.lat
    }

    pub fn lng(&self) -> f64 {
        self.lng
    }

    /// Great-circle distance in metres (haversine).
    pub fn distance_m(&self, other: &GeoPoint) -> f64 {
        let (phi1, phi2) = (self.lat.to_radians(), other.lat.to_radians());
        let d_phi = phi2 - phi1;
        let d_lambda = (other.lng - self.lng).to_radians();
        let a =
            (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
        // Rounding can push `a` a hair past 1 for antipodes.
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }
}

impl TryFrom<RawPoint> for GeoPoint {
    type Error = GeoError;
    fn try_from(p: RawPoint) -> Result<Self, GeoError> {
        GeoPoint::new(p.lat, p.lng)
    }
}

impl From<GeoPoint> for RawPoint {
    fn from(p: GeoPoint) -> RawPoint {
        RawPoint {
            lat: p.lat,
            lng: p.lng,
        }
    }
}

/// Where an order goes: the words the rider reads and the point the map shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    text: AddressText,
    location: GeoPoint,
}

impl Address {
    pub fn new(text: AddressText, location: GeoPoint) -> Self {
        Address { text, location }
    }

    pub fn parse(text: &str, lat: f64, lng: f64) -> Result<Self, GeoError> {
        Ok(Address::new(
            AddressText::parse(text)?,
            GeoPoint::new(lat, lng)?,
        ))
    }

    pub fn text(&self) -> &AddressText {
        &self.text
    }

    pub fn location(&self) -> GeoPoint {
        self.location
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_outside_the_globe_are_refused() {
        assert!(GeoPoint::new(90.0, -180.0).is_ok());
        assert_eq!(
            GeoPoint::new(90.5, 0.0).unwrap_err().to_string(),
            "lat must be a finite number in [-90, 90], got 90.5"
        );
        assert!(matches!(GeoPoint::new(0.0, 181.0), Err(GeoError::Lng(_))));
        assert!(GeoPoint::new(f64::NAN, 0.0).is_err());
        assert!(GeoPoint::new(0.0, f64::INFINITY).is_err());
        let bad = serde_json::json!({"lat": 91.0, "lng": 0.0});
        assert!(serde_json::from_value::<GeoPoint>(bad).is_err());
    }

    #[test]
    fn haversine_distance_matches_known_values() {
        let tiananmen = GeoPoint::new(39.9087, 116.3975).unwrap();
        let shanghai_bund = GeoPoint::new(31.2400, 121.4900).unwrap();
        let d = tiananmen.distance_m(&shanghai_bund);
        assert!((1_066_000.0..1_070_000.0).contains(&d), "{d}");
        assert_eq!(tiananmen.distance_m(&tiananmen), 0.0);
        // One degree of latitude is about 111.2 km.
        let a = GeoPoint::new(0.0, 0.0).unwrap();
        let b = GeoPoint::new(1.0, 0.0).unwrap();
        assert!((a.distance_m(&b) - 111_195.0).abs() < 10.0);
        let antipode = GeoPoint::new(0.0, 180.0).unwrap();
        assert!((a.distance_m(&antipode) - std::f64::consts::PI * EARTH_RADIUS_M).abs() < 1.0);
    }

    #[test]
    fn addresses_need_text_and_a_point() {
        assert!(Address::parse("1 Chang'an Ave", 39.9, 116.4).is_ok());
        assert!(matches!(
            Address::parse("", 0.0, 0.0),
            Err(GeoError::Text(_))
        ));
        assert!(Address::parse("x", 100.0, 0.0).is_err());
    }
}
