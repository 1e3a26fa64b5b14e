//! The byte ranges of an open file changed since its last commit, so a
//! small change can be committed as a patch of those ranges (the router's
//! `bucketfs-patch` extension) instead of re-uploading its 8 MiB part.

/// Ranges are aligned out to this before a patch: page-sized writes (a
/// database's) stay one range each, and neighbours merge.
pub const BLOCK: u64 = 4096;

/// Disjoint, ascending `(start, end)` ranges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dirty(Vec<(u64, u64)>);

impl Dirty {
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Marks `start..end` changed.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // The first range that ends at or after `start` (touching merges).
        let first = self.0.partition_point(|r| r.1 < start);
        let mut last = first;
        let (mut lo, mut hi) = (start, end);
        while last < self.0.len() && self.0[last].0 <= end {
            lo = lo.min(self.0[last].0);
            hi = hi.max(self.0[last].1);
            last += 1;
        }
        self.0.splice(first..last, [(lo, hi)]);
    }

    /// Whether every byte of `start..end` is marked.
    pub fn covers(&self, start: u64, end: u64) -> bool {
        let i = self.0.partition_point(|r| r.1 <= start);
        self.0.get(i).is_some_and(|r| r.0 <= start && r.1 >= end)
    }

    /// Forgets everything at or past `size` (the file was cut).
    pub fn truncate(&mut self, size: u64) {
        self.0.retain(|r| r.0 < size);
        if let Some(last) = self.0.last_mut() {
            last.1 = last.1.min(size);
        }
    }

    /// The ranges a patch of a file of `size` bytes sends, as (offset,
    /// length): aligned out to `BLOCK` (cut at `size`), then the closest
    /// neighbours joined until at most `max` remain.
    pub fn patch_ranges(&self, size: u64, max: usize) -> Vec<(u64, u64)> {
        let mut aligned = Dirty::default();
        for &(start, end) in &self.0 {
            let start = start / BLOCK * BLOCK;
            let end = end.div_ceil(BLOCK).saturating_mul(BLOCK).min(size);
            aligned.insert(start, end);
        }
        let mut ranges = aligned.0;
        while ranges.len() > max.max(1) {
            let closest = (1..ranges.len())
                .min_by_key(|&i| ranges[i].0 - ranges[i - 1].1)
                .expect("two ranges or more");
            ranges[closest - 1].1 = ranges[closest].1;
            ranges.remove(closest);
        }
        ranges.into_iter().map(|(s, e)| (s, e - s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_merge_and_truncation_cuts() {
        let mut d = Dirty::default();
        d.insert(10, 20);
        d.insert(30, 40);
        d.insert(20, 25);
        assert_eq!(d.0, [(10, 25), (30, 40)]);
        d.insert(5, 35);
        assert_eq!(d.0, [(5, 40)]);
        d.insert(50, 50);
        d.insert(60, 70);
        d.truncate(65);
        assert_eq!(d.0, [(5, 40), (60, 65)]);
        d.truncate(40);
        assert_eq!(d.0, [(5, 40)]);
        assert!(d.covers(5, 40) && d.covers(10, 20));
        assert!(!d.covers(4, 10) && !d.covers(30, 41) && !d.covers(40, 41));
    }

    #[test]
    fn patch_ranges_align_and_stay_under_the_limit() {
        let mut d = Dirty::default();
        d.insert(100, 200);
        d.insert(5000, 5001);
        d.insert(3 * BLOCK + 1, 3 * BLOCK + 2);
        assert_eq!(d.patch_ranges(1 << 20, 10), [(0, 2 * BLOCK), (3 * BLOCK, BLOCK)]);
        assert_eq!(d.patch_ranges(1 << 20, 1), [(0, 4 * BLOCK)]);
        // Cut at the file's end.
        assert_eq!(d.patch_ranges(5001, 10), [(0, 5001)]);
    }

    #[test]
    fn random_inserts_agree_with_a_bitmap() {
        let mut rng = bucketfs_common::testing::Xorshift::new(0x2545_f491_4f6c_dd1du64);
        let mut next = |n: u64| rng.below(n);
        for _ in 0..200 {
            let mut d = Dirty::default();
            let mut bits = vec![false; 1000];
            for _ in 0..30 {
                let (a, b) = (next(1000), next(1000));
                let (s, e) = (a.min(b), a.max(b));
                d.insert(s, e);
                bits[s as usize..e as usize].iter_mut().for_each(|x| *x = true);
                if next(10) == 0 {
                    let cut = next(1000);
                    d.truncate(cut);
                    bits[cut as usize..].iter_mut().for_each(|x| *x = false);
                }
            }
            let mut from_ranges = vec![false; 1000];
            for &(s, e) in &d.0 {
                from_ranges[s as usize..e as usize]
                    .iter_mut()
                    .for_each(|x| *x = true);
            }
            assert_eq!(from_ranges, bits);
            assert!(d.0.windows(2).all(|w| w[0].1 < w[1].0), "{:?}", d.0);
        }
    }
}
