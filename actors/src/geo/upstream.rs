//! The external geolocation API, in either of the two shapes it comes in, mapped to one
//! [`Geo`] record.
//!
//! - `geoip-api` (the image the brief names): `GET {url}/info?ip=<ip>` -> `city`,
//!   `country {iso_code, name}`, `location {latitude, longitude, time_zone, ...}`; 429 with
//!   `period_remaining` (seconds) when over its rate.
//! - `freegeoip`: `GET {url}/json/<ip>` -> flat `country_code`, `country_name`, `city`,
//!   `latitude`, `longitude`, `time_zone`.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

use crate::protocol::geo::Geo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoApi {
    GeoipApi,
    Freegeoip,
}

impl std::str::FromStr for GeoApi {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "geoip-api" | "workivate" => Ok(Self::GeoipApi),
            "freegeoip" => Ok(Self::Freegeoip),
            other => Err(format!("unknown geo API {other:?}: geoip-api or freegeoip")),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamError {
    /// 429: wait this long before the next call.
    RateLimited(Duration),
    /// Worth another try: timeout, connection trouble, 5xx.
    Transient(String),
    /// Asking again will not help: 4xx, no location, an answer we cannot read.
    Definitive(String),
}

pub async fn lookup(
    client: &reqwest::Client,
    base: &str,
    api: GeoApi,
    ip: IpAddr,
) -> Result<Geo, UpstreamError> {
    let base = base.trim_end_matches('/');
    let url = match api {
        GeoApi::GeoipApi => format!("{base}/info?ip={ip}"),
        GeoApi::Freegeoip => format!("{base}/json/{ip}"),
    };
    let response = client.get(&url).send().await.map_err(|e| {
        UpstreamError::Transient(if e.is_timeout() {
            "the geolocation API did not answer in time".to_string()
        } else {
            format!("cannot reach the geolocation API: {e}")
        })
    })?;
    let status = response.status();
    let body: Value = match response.json().await {
        Ok(v) => v,
        Err(e) if status.is_success() => {
            return Err(UpstreamError::Definitive(format!("unreadable answer: {e}")))
        }
        Err(_) => Value::Null,
    };
    if status.as_u16() == 429 {
        let secs = body["period_remaining"]
            .as_f64()
            .unwrap_or(1.0)
            .clamp(0.0, 60.0);
        return Err(UpstreamError::RateLimited(Duration::from_secs_f64(secs)));
    }
    if status.is_server_error() {
        return Err(UpstreamError::Transient(format!(
            "the geolocation API answered {status}"
        )));
    }
    if !status.is_success() {
        return Err(UpstreamError::Definitive(format!(
            "the geolocation API refused {ip}: {status} {}",
            body.get("error").and_then(Value::as_str).unwrap_or("")
        )));
    }
    let geo = match api {
        GeoApi::GeoipApi => Geo {
            city: text(&body["city"]),
            country_name: text(&body["country"]["name"]),
            iso_code: text(&body["country"]["iso_code"]),
            latitude: body["location"]["latitude"].as_f64(),
            longitude: body["location"]["longitude"].as_f64(),
            time_zone: text(&body["location"]["time_zone"]),
        },
        GeoApi::Freegeoip => Geo {
            city: text(&body["city"]),
            country_name: text(&body["country_name"]),
            iso_code: text(&body["country_code"]),
            latitude: body["latitude"]
                .as_f64()
                .filter(|_| text(&body["country_code"]).is_some()),
            longitude: body["longitude"]
                .as_f64()
                .filter(|_| text(&body["country_code"]).is_some()),
            time_zone: text(&body["time_zone"]),
        },
    };
    if geo.iso_code.is_none() && geo.latitude.is_none() {
        return Err(UpstreamError::Definitive(format!(
            "the geolocation API knows no location for {ip}"
        )));
    }
    Ok(geo)
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// Addresses no geolocation API can place: private, loopback, link-local, reserved...
pub fn has_no_location(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() || (o[0] == 100 && (64..128).contains(&o[1])) {
                Some("a private address")
            } else if v4.is_link_local() {
                Some("a link-local address")
            } else if v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || o[0] >= 240
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
            {
                Some("a reserved address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return has_no_location(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("a loopback address")
            } else if (first & 0xfe00) == 0xfc00 {
                Some("a private address")
            } else if (first & 0xffc0) == 0xfe80 {
                Some("a link-local address")
            } else if v6.is_unspecified()
                || v6.is_multicast()
                || first == 0x2001 && v6.segments()[1] == 0x0db8
            {
                Some("a reserved address")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_without_a_location() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "100.64.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "240.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ] {
            assert!(has_no_location(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "81.2.69.160", "2a00:1450::1"] {
            assert!(has_no_location(ip.parse().unwrap()).is_none(), "{ip}");
        }
    }
}
