//! Chunk maps as values: a version's bytes are its pieces back to back
//! (`meta::Piece`: a range of one chunk), so slicing a map and composing a
//! patched one are pure functions, tested here against plain byte arrays.

use crate::meta::Piece;

/// The pieces covering bytes `start..end` of the object `map` describes,
/// cut at both ends; fewer bytes if the map is shorter.
pub fn slice(map: &[Piece], start: u64, end: u64) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for piece in map {
        let len = piece.length as u64;
        let (from, to) = (start.max(at), end.min(at + len));
        if from < to {
            out.push(Piece {
                chunk_id: piece.chunk_id.clone(),
                chunk_offset: piece.chunk_offset + (from - at) as i64,
                length: (to - from) as i64,
            });
        }
        at += len;
        if at >= end {
            break;
        }
    }
    out
}

/// Bytes a map describes.
pub fn len(map: &[Piece]) -> u64 {
    map.iter().map(|p| p.length as u64).sum()
}

/// Joins neighbours that are consecutive ranges of the same chunk.
pub fn coalesce(map: Vec<Piece>) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::with_capacity(map.len());
    for piece in map {
        match out.last_mut() {
            Some(last)
                if last.chunk_id == piece.chunk_id
                    && last.chunk_offset + last.length == piece.chunk_offset =>
            {
                last.length += piece.length;
            }
            _ => out.push(piece),
        }
    }
    out
}

/// Whether `ranges` (ascending, disjoint) can patch an object of
/// `base_len` bytes into one of `size`: each inside the new size, and every
/// byte past the old end covered. Checked before a patch's body is stored.
pub fn fits(base_len: u64, ranges: &[(u64, u64)], size: u64) -> bool {
    let mut covered = base_len.min(size);
    for &(offset, length) in ranges {
        match offset.checked_add(length) {
            Some(end) if end <= size && offset <= covered => covered = covered.max(end),
            _ => return false,
        }
    }
    covered >= size
}

/// The map of `base` with `ranges` (object offset, length; ascending and
/// disjoint) replaced by consecutive bytes of `body` (a map of the ranges'
/// new bytes back to back), cut or extended to `size`. `None` when the
/// ranges leave a byte past the base's end uncovered, or the body does not
/// hold exactly the ranges' bytes.
pub fn patch(base: &[Piece], ranges: &[(u64, u64)], body: &[Piece], size: u64) -> Option<Vec<Piece>> {
    let base_len = len(base);
    if ranges.iter().map(|r| r.1).sum::<u64>() != len(body) {
        return None;
    }
    let mut out = Vec::new();
    let (mut at, mut body_at) = (0u64, 0u64);
    for &(offset, length) in ranges {
        let end = offset.checked_add(length)?;
        if offset < at || end > size {
            return None;
        }
        if offset > at {
            if offset > base_len {
                return None;
            }
            out.extend(slice(base, at, offset));
        }
        out.extend(slice(body, body_at, body_at + length));
        body_at += length;
        at = end;
    }
    if at < size {
        if size > base_len {
            return None;
        }
        out.extend(slice(base, at, size));
    }
    Some(coalesce(out))
}

/// Pieces per whole or partial `part` of the object: how fragmented patches
/// have left a map (compaction brings it back to one or two).
pub fn most_pieces_per_part(map: &[Piece], part: u64) -> usize {
    let mut counts = std::collections::HashMap::<u64, usize>::new();
    let mut at = 0u64;
    for piece in map {
        let end = at + piece.length as u64;
        for p in at / part..=(end.max(1) - 1) / part {
            *counts.entry(p).or_default() += 1;
        }
        at = end;
    }
    counts.into_values().max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Chunks as byte arrays, to read a map back.
    fn read(map: &[Piece], chunks: &HashMap<String, Vec<u8>>) -> Vec<u8> {
        map.iter()
            .flat_map(|p| {
                let c = &chunks[&p.chunk_id];
                c[p.chunk_offset as usize..(p.chunk_offset + p.length) as usize].to_vec()
            })
            .collect()
    }

    fn chunk(chunks: &mut HashMap<String, Vec<u8>>, bytes: Vec<u8>) -> Piece {
        let id = format!("c{}", chunks.len());
        let piece = Piece {
            chunk_id: id.clone(),
            chunk_offset: 0,
            length: bytes.len() as i64,
        };
        chunks.insert(id, bytes);
        piece
    }

    #[test]
    fn a_patch_reads_as_the_bytes_it_describes() {
        let mut rng = bucketfs_common::testing::Xorshift::new(0x9e37_79b9_7f4a_7c15u64);
        let mut next = |n: u64| rng.below(n);
        let mut chunks = HashMap::new();
        let mut map: Vec<Piece> = Vec::new();
        let mut model: Vec<u8> = Vec::new();
        for round in 0..3_000 {
            // Random ranges over (and sometimes past) the current bytes.
            let size = match next(8) {
                0 => next(model.len() as u64 + 1),
                1 => model.len() as u64 + next(300),
                _ => model.len() as u64,
            };
            let mut ranges = Vec::new();
            let mut at = 0;
            // Drawn within the old bytes; past them, one range covers the rest.
            let limit = size.min(model.len() as u64);
            while at < limit {
                let offset = at + next(200);
                let length = 1 + next(100);
                if offset + length > limit {
                    break;
                }
                ranges.push((offset, length));
                at = offset + length + next(2);
            }
            if size > limit {
                ranges.push((limit, size - limit));
            }
            let mut new_bytes = Vec::new();
            for &(_, l) in &ranges {
                new_bytes.extend((0..l).map(|i| (round as u64 * 7 + i) as u8));
            }
            // The body in one or two chunks.
            let cut = next(new_bytes.len() as u64 + 1) as usize;
            let mut body = Vec::new();
            for part in [new_bytes[..cut].to_vec(), new_bytes[cut..].to_vec()] {
                if !part.is_empty() {
                    body.push(chunk(&mut chunks, part));
                }
            }
            assert!(fits(model.len() as u64, &ranges, size), "round {round}");
            let patched = patch(&map, &ranges, &body, size).expect("a valid patch");
            model.resize(size as usize, 0);
            let mut body_at = 0;
            for &(o, l) in &ranges {
                model[o as usize..(o + l) as usize]
                    .copy_from_slice(&new_bytes[body_at..body_at + l as usize]);
                body_at += l as usize;
            }
            assert_eq!(read(&patched, &chunks), model, "round {round}");
            assert_eq!(len(&patched), size);
            map = patched;
        }
    }

    #[test]
    fn uncovered_extensions_and_wrong_bodies_are_refused() {
        let mut chunks = HashMap::new();
        let base = vec![chunk(&mut chunks, vec![1; 10])];
        let body = vec![chunk(&mut chunks, vec![2; 4])];
        assert!(patch(&base, &[(12, 4)], &body, 16).is_none(), "a hole at 10..12");
        assert!(!fits(10, &[(12, 4)], 16) && !fits(10, &[(2, 4)], 20) && !fits(10, &[(8, 4)], 10));
        assert!(fits(10, &[(2, 3)], 5) && fits(10, &[(10, 4)], 14) && fits(10, &[], 3));
        assert!(!fits(10, &[(2, 4)], 5), "past a shortened size");
        assert!(patch(&base, &[(2, 4)], &body, 20).is_none(), "10..20 uncovered");
        assert!(patch(&base, &[(2, 3)], &body, 10).is_none(), "the body is longer");
        assert!(patch(&base, &[(8, 4)], &body, 10).is_none(), "past the new size");
        let cut = patch(&base, &[(2, 4)], &body, 5).is_none();
        assert!(cut, "a range past a shortened size");
        let patched = patch(&base, &[(10, 4)], &body, 14).unwrap();
        assert_eq!(read(&patched, &chunks), [vec![1; 10], vec![2; 4]].concat());
    }

    #[test]
    fn slices_coalesce_and_fragmentation_counts() {
        let p = |id: &str, o: i64, l: i64| Piece {
            chunk_id: id.into(),
            chunk_offset: o,
            length: l,
        };
        let map = vec![p("a", 0, 5), p("a", 5, 5), p("b", 0, 10)];
        assert_eq!(coalesce(map.clone()), vec![p("a", 0, 10), p("b", 0, 10)]);
        assert_eq!(slice(&map, 3, 12), vec![p("a", 3, 2), p("a", 5, 5), p("b", 0, 2)]);
        assert_eq!(most_pieces_per_part(&map, 10), 2);
        assert_eq!(most_pieces_per_part(&map, 20), 3);
        assert_eq!(most_pieces_per_part(&[], 20), 0);
    }
}
