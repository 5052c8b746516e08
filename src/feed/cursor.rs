//! Feed positions and their cursors.
//!
//! A position is the pair (transaction id, sequence) that orders the outbox. A cursor is
//! `base64url(2, xid, seq)`: 23 characters, opaque to clients. Every string of that shape
//! (the [`CURSOR_PATTERN`] the contract documents) is a position, so the document and the
//! server agree exactly on what a cursor is. Forging one gains nothing: every read is
//! filtered by the caller's tenant, and a position ahead of the feed just reads nothing.
//!
//! Cursors of version 1 (28 characters, with a checksum) are still read, for clients that
//! hold one from an older release.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use sha2::{Digest, Sha256};

pub use crate::store::position::Position;

const VERSION: u8 = 2;
const BODY_LEN: usize = 1 + 8 + 8;

const V1: u8 = 1;
const V1_CHECKSUM_LEN: usize = 4;

/// A version 2 cursor: the version byte 2 makes it start with `A` and a letter `g`-`v`; 17
/// bytes end on a character that carries 4 bits (its index a multiple of 4).
pub const CURSOR_PATTERN: &str = "^A[g-v][A-Za-z0-9_-]{20}[AEIMQUYcgkosw048]$";

impl Position {
    pub fn encode(self) -> String {
        let mut bytes = Vec::with_capacity(BODY_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.tx_id.to_be_bytes());
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(cursor: &str) -> Option<Position> {
        if cursor.len() > 64 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let body = match *bytes.first()? {
            VERSION if bytes.len() == BODY_LEN => &bytes[..],
            V1 if bytes.len() == BODY_LEN + V1_CHECKSUM_LEN => {
                let (body, checksum) = bytes.split_at(BODY_LEN);
                (Sha256::digest(body)[..V1_CHECKSUM_LEN] == *checksum).then_some(body)?
            }
            _ => return None,
        };
        let tx_id = u64::from_be_bytes(body[1..9].try_into().ok()?);
        let seq = i64::from_be_bytes(body[9..17].try_into().ok()?);
        Some(Position { tx_id, seq })
    }
}

/// A feed cursor as the contract documents it.
pub struct Cursor;

impl JsonSchema for Cursor {
    fn schema_name() -> Cow<'static, str> {
        "Cursor".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A feed position, opaque: pass back what the server gave.",
            "type": "string",
            "pattern": CURSOR_PATTERN,
            "examples": [Position { tx_id: 1234, seq: 56 }.encode()]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_match_the_documented_pattern() {
        for position in [
            Position::START,
            Position {
                tx_id: 123_456,
                seq: 789,
            },
            Position::horizon(u64::MAX),
            Position {
                tx_id: 0,
                seq: i64::MIN,
            },
        ] {
            let cursor = position.encode();
            assert_eq!(Position::decode(&cursor), Some(position));
            assert_eq!(cursor.len(), 23);
            let bytes = cursor.as_bytes();
            assert_eq!(bytes[0], b'A');
            assert!((b'g'..=b'v').contains(&bytes[1]), "{cursor}");
            assert!(b"AEIMQUYcgkosw048".contains(&bytes[22]), "{cursor}");
        }
        assert!(
            Position::START.encode().parse::<u64>().is_err(),
            "not a bare number"
        );
        for bad in ["", "abc", "12345", "!!!!", &Position::START.encode()[..22]] {
            assert_eq!(Position::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn version_1_cursors_are_still_read_and_checked() {
        let position = Position { tx_id: 99, seq: 7 };
        let mut bytes = vec![V1];
        bytes.extend_from_slice(&position.tx_id.to_be_bytes());
        bytes.extend_from_slice(&position.seq.to_be_bytes());
        let checksum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&checksum[..V1_CHECKSUM_LEN]);
        let v1 = URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(Position::decode(&v1), Some(position));
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(Position::decode(&URL_SAFE_NO_PAD.encode(&bytes)), None);
    }
}
