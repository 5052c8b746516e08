//! Whole numbers in settings, however the JSON number is written (`1`, `1.0`, `1e1`): JSON
//! Schema's integers are numbers with no fraction, and the contract says integer.

use serde::Deserialize;

/// A whole number in `min..=max`; anything else is the error `what`.
fn whole<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    min: u64,
    max: u64,
    what: &str,
) -> Result<u64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    let value: rust_decimal::Decimal = number
        .as_str()
        .parse()
        .or_else(|_| rust_decimal::Decimal::from_scientific(number.as_str()))
        .map_err(|_| serde::de::Error::custom(what))?;
    let value = value.normalize();
    match u64::try_from(value.mantissa()) {
        Ok(whole) if value.fract().is_zero() && value.scale() == 0 => {
            if (min..=max).contains(&whole) {
                Ok(whole)
            } else {
                Err(serde::de::Error::custom(what))
            }
        }
        _ => Err(serde::de::Error::custom(what)),
    }
}

/// MQTT QoS: 0, 1 or 2.
pub fn qos<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u8, D::Error> {
    whole(deserializer, 0, 2, "must be 0, 1 or 2").map(|q| q as u8)
}

/// Most sends in flight to one webhook endpoint.
pub const MAX_IN_FLIGHT: u64 = 1024;
/// Highest per-endpoint rate limit (requests per second).
pub const MAX_RATE_LIMIT: u64 = 100_000;
/// Longest per-endpoint request timeout (seconds).
pub const MAX_TIMEOUT_SECS: u64 = 300;

pub fn max_in_flight<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u16>, D::Error> {
    whole(
        deserializer,
        1,
        MAX_IN_FLIGHT,
        "must be a whole number 1-1024",
    )
    .map(|n| Some(n as u16))
}

pub fn rate_limit<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    whole(
        deserializer,
        1,
        MAX_RATE_LIMIT,
        "must be a whole number 1-100000",
    )
    .map(|n| Some(n as u32))
}

pub fn timeout<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u16>, D::Error> {
    whole(
        deserializer,
        1,
        MAX_TIMEOUT_SECS,
        "must be a whole number of seconds 1-300",
    )
    .map(|n| Some(n as u16))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<u8, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        qos(&mut deserializer)
    }

    #[test]
    fn whole_numbers_in_any_notation() {
        assert_eq!(parse("1").unwrap(), 1);
        assert_eq!(parse("1.0").unwrap(), 1);
        assert_eq!(parse("2e0").unwrap(), 2);
        assert!(parse("1.5").is_err());
        assert!(parse("3").is_err());
        assert!(parse("-1").is_err());
        assert!(parse("1e100").is_err());
    }
}
