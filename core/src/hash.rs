//! FNV-1a (Fowler–Noll–Vo), the deterministic hash the word-count kernel partitions by and the
//! striped map spreads its keys with.

use std::hash::Hasher;

/// FNV-1a as a `Hasher`: deterministic (partitions and digests must not change between runs,
/// as they would with std's randomly keyed SipHash) and quick on short words.
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let start = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        self.0 = bytes.iter().fold(start, |h, byte| (h ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3));
    }
}
