//! Feed positions and their opaque cursors.
//!
//! A position is the pair (transaction id, sequence) that orders the outbox. A cursor is
//! `base64url(version, xid, seq, checksum)`: opaque to clients, and any edit or truncation
//! is caught by the checksum and answered 400. Forging a valid cursor gains nothing: every
//! read is filtered by the caller's tenant.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const CHECKSUM_LEN: usize = 4;
const ENCODED_LEN: usize = 1 + 8 + 8 + CHECKSUM_LEN;

pub use crate::store::position::Position;

impl Position {
    pub fn encode(self) -> String {
        let mut bytes = Vec::with_capacity(ENCODED_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.tx_id.to_be_bytes());
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        let checksum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&checksum[..CHECKSUM_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(cursor: &str) -> Option<Position> {
        if cursor.len() > 64 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        if bytes.len() != ENCODED_LEN || bytes[0] != VERSION {
            return None;
        }
        let (body, checksum) = bytes.split_at(ENCODED_LEN - CHECKSUM_LEN);
        if Sha256::digest(body)[..CHECKSUM_LEN] != *checksum {
            return None;
        }
        let tx_id = u64::from_be_bytes(body[1..9].try_into().ok()?);
        let seq = i64::from_be_bytes(body[9..17].try_into().ok()?);
        Some(Position { tx_id, seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_edits() {
        let position = Position {
            tx_id: 123_456,
            seq: 789,
        };
        let cursor = position.encode();
        assert_eq!(Position::decode(&cursor), Some(position));
        assert!(cursor.parse::<u64>().is_err(), "not a bare number");
        let mut edited = cursor.clone().into_bytes();
        edited[5] = if edited[5] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            Position::decode(std::str::from_utf8(&edited).unwrap()),
            None
        );
        for bad in ["", "abc", "12345", &cursor[..cursor.len() - 1], "!!!!"] {
            assert_eq!(Position::decode(bad), None, "{bad}");
        }
    }
}
