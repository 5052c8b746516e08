//! Property tests of the inputs eventgate parses by hand from client text: Idempotency-Key
//! header values, feed cursors, amounts and type filters. Whatever a client sends, parsing
//! answers (Ok or a typed error) and never panics; what it accepts meets the documented rules.

use std::str::FromStr;

use eventgate::catalogue::event_type::TypePattern;
use eventgate::catalogue::money::{Amount, DivestAmount};
use eventgate::feed::cursor::{CURSOR_PATTERN, Position};
use eventgate::idempotency::{IdempotencyKey, MAX_KEY_LEN};
use proptest::prelude::*;
use rust_decimal::Decimal;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn idempotency_keys_accepted_are_1_to_255_printable_ascii(value in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(key) = IdempotencyKey::parse(&value) {
            let key = key.as_str();
            prop_assert!(!key.is_empty() && key.len() <= MAX_KEY_LEN);
            prop_assert!(key.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        }
    }

    #[test]
    fn a_quoted_key_names_the_same_key_as_the_bare_one(key in "[A-Za-z0-9_.:-]{1,255}") {
        let bare = IdempotencyKey::parse(key.as_bytes());
        let quoted = IdempotencyKey::parse(format!("\"{key}\"").as_bytes());
        prop_assert_eq!(bare.as_ref().map(IdempotencyKey::as_str).ok(), Some(key.as_str()));
        prop_assert_eq!(quoted.map(|k| k.as_str().to_owned()).ok(), Some(key));
    }

    #[test]
    fn cursors_round_trip_and_arbitrary_text_never_panics(tx_id in any::<u64>(), seq in any::<i64>(), junk in ".{0,80}") {
        let position = Position { tx_id, seq };
        prop_assert_eq!(Position::decode(&position.encode()), Some(position));
        let _ = Position::decode(&junk);
    }

    #[test]
    fn every_string_of_the_documented_shape_is_a_cursor(cursor in &CURSOR_PATTERN[1..CURSOR_PATTERN.len() - 1]) {
        let position = Position::decode(&cursor);
        prop_assert!(position.is_some(), "{}", cursor);
        prop_assert_eq!(position.map(Position::encode), Some(cursor));
    }

    #[test]
    fn text_of_another_shape_is_no_cursor(junk in ".{0,40}|[A-Za-z0-9_-]{20,30}") {
        let documented = regex_lite::Regex::new(CURSOR_PATTERN).unwrap();
        if Position::decode(&junk).is_some() {
            prop_assert!(documented.is_match(&junk), "{} decoded but is not of the documented shape", junk);
        }
    }

    #[test]
    fn amounts_accepted_are_exactly_their_text(text in "[0-9.eE+-]{0,40}|.{0,40}") {
        if let Ok(amount) = Amount::parse(&text) {
            prop_assert_eq!(Some(amount.0), Decimal::from_str(&text).ok());
        }
        let _ = DivestAmount::parse(&text);
    }

    #[test]
    fn decimal_strings_within_the_limits_are_accepted(integer in "[1-9][0-9]{0,11}", fraction in "[0-9]{1,6}") {
        let text = format!("{integer}.{fraction}");
        let amount = Amount::parse(&text);
        prop_assert_eq!(amount.map(|a| a.0).ok(), Decimal::from_str(&text).ok());
    }

    #[test]
    fn type_filters_never_panic(pattern in ".{0,60}") {
        let _ = TypePattern::parse(&pattern);
    }
}
