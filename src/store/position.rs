//! Positions in feed order, as the database stores them: the writing transaction's id
//! (`xid8`) and the row's sequence number.
//!
//! [`Xid8`] is an `sqlx` type over PostgreSQL's `xid8` (8 bytes, big-endian, in the binary
//! protocol), so positions are bound and read as numbers. Casting them through `text`
//! would invite comparing them as text, where "100" sorts before "99".

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

/// PostgreSQL's type OIDs for `xid8` and `xid8[]` (fixed in `pg_type.dat`).
const XID8_OID: u32 = 5069;
const XID8_ARRAY_OID: u32 = 271;

/// A full transaction id (`xid8`): epoch and xid, never wrapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Xid8(pub u64);

impl Type<Postgres> for Xid8 {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(XID8_OID))
    }
}

impl PgHasArrayType for Xid8 {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(XID8_ARRAY_OID))
    }
}

impl Encode<'_, Postgres> for Xid8 {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(&self.0.to_be_bytes());
        Ok(IsNull::No)
    }

    fn size_hint(&self) -> usize {
        8
    }
}

impl Decode<'_, Postgres> for Xid8 {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let bytes: [u8; 8] = value.as_bytes()?.try_into()?;
                Ok(Self(u64::from_be_bytes(bytes)))
            }
            PgValueFormat::Text => Ok(Self(value.as_str()?.parse()?)),
        }
    }
}

/// A point in feed order; "after this position" is what a cursor asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub tx_id: u64,
    pub seq: i64,
}

impl Position {
    /// Before every event.
    pub const START: Position = Position { tx_id: 0, seq: 0 };

    /// After every event of transactions older than `horizon` and before any other: the
    /// position that follows an empty feed without skipping what is still to commit.
    pub fn horizon(xmin: u64) -> Position {
        Position {
            tx_id: xmin.saturating_sub(1),
            seq: i64::MAX,
        }
    }

    pub fn new(tx_id: Xid8, seq: i64) -> Position {
        Position {
            tx_id: tx_id.0,
            seq,
        }
    }

    /// The transaction part, for binding.
    pub fn xid(self) -> Xid8 {
        Xid8(self.tx_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_transaction_then_sequence() {
        let a = Position { tx_id: 10, seq: 99 };
        let b = Position { tx_id: 11, seq: 1 };
        assert!(a < b);
        assert!(Position::horizon(11) > a && Position::horizon(11) < b);
        let (tx99, tx100) = (
            Position { tx_id: 99, seq: 5 },
            Position { tx_id: 100, seq: 1 },
        );
        assert!(tx99 < tx100, "numbers, not text");
    }
}
