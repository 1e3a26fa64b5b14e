//! Helpers for tests (feature `testing`): a forger of checksums for tests
//! that play an attacker, and a seeded random source for randomized tests.

/// `prefix` followed by four bytes chosen so that the whole has the crc32c
/// `want`: crc32c is no defence against a forger, which is why chunks also
/// carry a cryptographic hash.
pub fn forge_crc32c(prefix: &[u8], want: u32) -> Vec<u8> {
    // Appending 4 bytes maps the tail linearly (over GF(2)) onto the crc:
    // find the map's columns, then solve for the tail.
    let start = crc32c::crc32c(prefix);
    let base = crc32c::crc32c_append(start, &[0; 4]);
    let columns: Vec<u32> = (0..32)
        .map(|bit| crc32c::crc32c_append(start, &(1u32 << bit).to_le_bytes()) ^ base)
        .collect();
    let tail = solve_gf2(&columns, want ^ base).expect("crc32c's 4-byte append is invertible");
    let mut out = prefix.to_vec();
    out.extend_from_slice(&tail.to_le_bytes());
    out
}

/// The `x` for which the XOR of `columns[i]` over the set bits `i` of `x`
/// is `target`.
fn solve_gf2(columns: &[u32], target: u32) -> Option<u32> {
    // Rows are (value, the input bits that make it); eliminate from the
    // highest bit down, so each pivot's highest bit is its own.
    let mut rows: Vec<(u32, u32)> = columns.iter().enumerate().map(|(i, c)| (*c, 1u32 << i)).collect();
    let mut pivots = Vec::new();
    for bit in (0..32).rev() {
        let Some(p) = rows.iter().position(|(v, _)| v >> bit & 1 == 1) else {
            continue;
        };
        let pivot = rows.swap_remove(p);
        for row in rows.iter_mut().filter(|r| r.0 >> bit & 1 == 1) {
            row.0 ^= pivot.0;
            row.1 ^= pivot.1;
        }
        pivots.push((bit, pivot));
    }
    let (mut value, mut input) = (target, 0);
    for (bit, (v, x)) in &pivots {
        if value >> bit & 1 == 1 {
            value ^= v;
            input ^= x;
        }
    }
    (value == 0).then_some(input)
}

/// A seeded xorshift64 generator: randomized tests that replay exactly.
pub struct Xorshift(u64);

impl Xorshift {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn forged_bytes_have_the_wanted_crc32c() {
        for want in [0, 1, 0xdead_beef, u32::MAX] {
            let forged = super::forge_crc32c(b"some other text", want);
            assert_eq!(crc32c::crc32c(&forged), want);
            assert!(forged.starts_with(b"some other text"));
        }
    }
}
