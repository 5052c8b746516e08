//! Which partition a record goes to: Kafka's default partitioner for keyed records
//! (murmur2 of the key, made positive, modulo the partition count), so eventgate places
//! an entity's records where any Kafka producer of the same key would.

/// The seed Kafka's `Utils.murmur2` uses.
const KAFKA_SEED: u32 = 0x9747_b28c;

/// The partition index (0-based, of `partitions`) for `key`.
pub fn partition_for(key: &[u8], partitions: usize) -> usize {
    let hash = murmur2::murmur2(key, KAFKA_SEED) & 0x7fff_ffff;
    (hash as usize) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_land_where_kafkas_own_partitioner_puts_them() {
        // Kafka's UtilsTest: murmur2("21") == -973932308, and toPositive of that is
        // 1173551340; with 3 partitions that is partition 0.
        assert_eq!(
            murmur2::murmur2(b"21", KAFKA_SEED) as i32,
            -973_932_308,
            "Kafka's murmur2"
        );
        assert_eq!(partition_for(b"21", 3), 1_173_551_340 % 3);
        assert_eq!(partition_for(b"anything", 1), 0);
    }
}
