//! Great-circle distance.

use crate::config::zone::GeoPoint;

/// Mean Earth radius, km.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Haversine distance in km. Correct across the antimeridian and at the poles.
pub fn great_circle_km(a: GeoPoint, b: GeoPoint) -> f64 {
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint { lat, lon }
    }

    #[test]
    fn known_distances() {
        // Dublin – Tokyo ≈ 9,600 km; London – New York ≈ 5,570 km.
        let d = great_circle_km(p(53.35, -6.26), p(35.68, 139.69));
        assert!((d - 9600.0).abs() < 100.0, "{d}");
        let d = great_circle_km(p(51.5, -0.12), p(40.71, -74.0));
        assert!((d - 5570.0).abs() < 30.0, "{d}");
    }

    #[test]
    fn across_the_antimeridian() {
        // Fiji (178°E) to Samoa (172°W) is about 1,150 km, not 38,000.
        let d = great_circle_km(p(-18.1, 178.4), p(-13.8, -171.8));
        assert!(d < 1300.0, "{d}");
        assert_eq!(great_circle_km(p(0.0, 180.0), p(0.0, -180.0)).round(), 0.0);
    }
}
