//! Rendezvous (highest random weight) placement of chunks on nodes.
//!
//! Every node gets a score from a hash of (chunk id, node id); the chunk's
//! preferred nodes are the highest scores. A node joining or leaving moves only
//! the chunks it gains or loses. Pure: no I/O, so it is tested on its own.

use crate::ChunkId;

/// Node ids ordered from most to least preferred for `chunk`.
pub fn rank<'a>(chunk: &ChunkId, nodes: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut scored: Vec<(u64, &str)> = nodes.into_iter().map(|n| (score(chunk, n), n)).collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().map(|(_, n)| n).collect()
}

fn score(chunk: &ChunkId, node: &str) -> u64 {
    // FNV-1a over both ids, then a splitmix64 finaliser for avalanche.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in chunk
        .as_bytes()
        .iter()
        .chain([0xffu8].iter())
        .chain(node.as_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const NODES: [&str; 5] = ["n1", "n2", "n3", "n4", "n5"];

    #[test]
    fn ranking_is_a_permutation_and_deterministic() {
        let id = ChunkId::random();
        let a = rank(&id, NODES);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, NODES);
        assert_eq!(a, rank(&id, NODES.iter().rev().copied()));
    }

    #[test]
    fn removing_a_node_keeps_the_others_in_order() {
        for _ in 0..200 {
            let id = ChunkId::random();
            let all = rank(&id, NODES);
            let without: Vec<&str> = rank(&id, NODES.iter().copied().filter(|n| *n != "n3"));
            let expected: Vec<&str> = all.into_iter().filter(|n| *n != "n3").collect();
            assert_eq!(without, expected);
        }
    }

    #[test]
    fn first_choices_spread_evenly() {
        let mut firsts: HashMap<&str, usize> = HashMap::new();
        for _ in 0..10_000 {
            *firsts.entry(rank(&ChunkId::random(), NODES)[0]).or_default() += 1;
        }
        for n in NODES {
            let share = firsts[n];
            assert!((1_600..2_400).contains(&share), "{n} got {share} of 10000");
        }
    }

    /// The reference: every pair compared by its score, highest first, the
    /// node id breaking ties; no sort_by, no tuple ordering.
    fn naive_rank<'a>(chunk: &ChunkId, nodes: &[&'a str]) -> Vec<&'a str> {
        let mut left: Vec<&str> = nodes.to_vec();
        let mut out = Vec::new();
        while !left.is_empty() {
            let mut best = 0;
            for i in 1..left.len() {
                let (si, sb) = (score(chunk, left[i]), score(chunk, left[best]));
                if si > sb || (si == sb && left[i] < left[best]) {
                    best = i;
                }
            }
            out.push(left.remove(best));
        }
        out
    }

    #[test]
    fn ranking_agrees_with_a_naive_selection_for_random_node_sets() {
        let names: Vec<String> = (0..12).map(|i| format!("storage-node-{i}")).collect();
        for round in 0..2_000usize {
            let id = ChunkId::random();
            let count = 1 + round % names.len();
            let start = (round * 7) % names.len();
            let nodes: Vec<&str> = (0..count)
                .map(|i| names[(start + i) % names.len()].as_str())
                .collect();
            assert_eq!(rank(&id, nodes.iter().copied()), naive_rank(&id, &nodes));
        }
    }
}
