//! Locks between mounts: POSIX byte-range locks (`fcntl` F_SETLK, F_SETLKW,
//! F_GETLK), OFD locks and `flock` (the kernel sends the last two as locks
//! of the whole file owned by the open file; like NFS, a `flock` and an
//! `fcntl` lock of one file conflict). The router holds them in Postgres for
//! a lease the mount renews; this is what the router and the client's
//! in-memory store share: the wire format and the range arithmetic.
//!
//! `POST /{bucket}/{key}?bucketfs-lock` takes or releases a range for
//! (`x-bucketfs-lock-session`, `x-bucketfs-lock-owner`) as `x-bucketfs-lock`
//! says (`LockRange::format`): 200 when done (with the key's ETag when a
//! lock was taken, so the taker revalidates without a HEAD), 409 with the conflicting lock
//! in `x-bucketfs-lock` when another owner's lock is in the way (nothing
//! changes). `GET` the same asks without taking (F_GETLK): 200 with the
//! conflicting lock, or an unlock when there is none. `POST
//! /{bucket}?bucketfs-lock-renew` extends every lock of a session by the
//! lease (`x-bucketfs-lock-release: true` drops them instead).

/// How long a lock outlives its session's last renewal: a killed mount's
/// locks are free this long after its last renewal at most.
pub const LOCK_LEASE_SECS: u64 = 15;
pub const LOCK_QUERY: &str = "bucketfs-lock";
pub const LOCK_RENEW_QUERY: &str = "bucketfs-lock-renew";
/// A mount's random id: whose locks a renewal extends.
pub const LOCK_SESSION_HEADER: &str = "x-bucketfs-lock-session";
/// The kernel's lock owner (a process's file table, or an open file).
pub const LOCK_OWNER_HEADER: &str = "x-bucketfs-lock-owner";
pub const LOCK_HEADER: &str = "x-bucketfs-lock";
pub const LOCK_RELEASE_HEADER: &str = "x-bucketfs-lock-release";

/// The last byte a lock can cover (the kernel's OFFSET_MAX).
pub const LOCK_END: u64 = i64::MAX as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    Read,
    Write,
    Unlock,
}

/// A lock, or an unlock, of bytes `start..=end`, asked by process `pid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockRange {
    pub kind: LockKind,
    pub start: u64,
    pub end: u64,
    pub pid: u32,
}

impl LockRange {
    /// `read 0-99 1234`: kind, inclusive range, pid.
    pub fn format(&self) -> String {
        let kind = match self.kind {
            LockKind::Read => "read",
            LockKind::Write => "write",
            LockKind::Unlock => "unlock",
        };
        format!("{kind} {}-{} {}", self.start, self.end, self.pid)
    }

    pub fn parse(text: &str) -> Option<LockRange> {
        let mut words = text.split_whitespace();
        let kind = match words.next()? {
            "read" => LockKind::Read,
            "write" => LockKind::Write,
            "unlock" => LockKind::Unlock,
            _ => return None,
        };
        let (start, end) = words.next()?.split_once('-')?;
        let (start, end): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
        let pid = words.next()?.parse().ok()?;
        (start <= end && end <= LOCK_END && words.next().is_none()).then_some(LockRange {
            kind,
            start,
            end,
            pid,
        })
    }

    fn overlaps(&self, other: &LockRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

/// A lock someone holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    pub session: String,
    pub owner: u64,
    pub range: LockRange,
}

/// The first lock of another owner that taking `want` would conflict
/// with: any overlapping lock when one of the two is a write lock.
pub fn conflict<'a>(
    held: &'a [HeldLock],
    session: &str,
    owner: u64,
    want: &LockRange,
) -> Option<&'a HeldLock> {
    if want.kind == LockKind::Unlock {
        return None;
    }
    held.iter().find(|h| {
        (h.session != session || h.owner != owner)
            && h.range.overlaps(want)
            && (h.range.kind == LockKind::Write || want.kind == LockKind::Write)
    })
}

/// What one owner holds after `change`, given what it held (sorted, as
/// this answers): the changed bytes take the new kind (or none, for an
/// unlock), and touching ranges of one kind merge, as POSIX locks do.
pub fn apply(mine: &[LockRange], change: &LockRange) -> Vec<LockRange> {
    let mut out: Vec<LockRange> = Vec::with_capacity(mine.len() + 2);
    for r in mine {
        if !r.overlaps(change) {
            out.push(*r);
            continue;
        }
        if r.start < change.start {
            out.push(LockRange {
                end: change.start - 1,
                ..*r
            });
        }
        if r.end > change.end {
            out.push(LockRange {
                start: change.end + 1,
                ..*r
            });
        }
    }
    if change.kind != LockKind::Unlock {
        out.push(*change);
    }
    out.sort_by_key(|r| r.start);
    let mut merged: Vec<LockRange> = Vec::with_capacity(out.len());
    for r in out {
        match merged.last_mut() {
            Some(last) if last.kind == r.kind && last.end.saturating_add(1) >= r.start => {
                last.end = last.end.max(r.end);
                last.pid = r.pid;
            }
            _ => merged.push(r),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(kind: LockKind, start: u64, end: u64) -> LockRange {
        LockRange {
            kind,
            start,
            end,
            pid: 1,
        }
    }

    #[test]
    fn ranges_round_trip_and_bad_ones_are_refused() {
        let r = range(LockKind::Write, 5, LOCK_END);
        assert_eq!(LockRange::parse(&r.format()), Some(r));
        for bad in [
            "",
            "write",
            "write 5-4 1",
            "lock 0-1 1",
            "read 0-1",
            "read 0-1 x",
            "read 1 1",
        ] {
            assert_eq!(LockRange::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn locks_split_merge_and_conflict_as_posix_says() {
        use LockKind::*;
        // Unlocking the middle splits a lock; relocking it merges them again.
        let held = apply(&[], &range(Write, 0, 99));
        let split = apply(&held, &range(Unlock, 10, 19));
        assert_eq!(split, vec![range(Write, 0, 9), range(Write, 20, 99)]);
        assert_eq!(apply(&split, &range(Write, 10, 19)), held);
        // A read lock inside a write lock changes that part's kind.
        let mixed = apply(&held, &range(Read, 40, 59));
        assert_eq!(
            mixed,
            vec![range(Write, 0, 39), range(Read, 40, 59), range(Write, 60, 99)]
        );
        assert_eq!(apply(&mixed, &range(Unlock, 0, LOCK_END)), vec![]);

        let other = |kind, start, end| HeldLock {
            session: "s2".into(),
            owner: 7,
            range: range(kind, start, end),
        };
        let held = [other(Read, 0, 9), other(Write, 100, 199)];
        assert!(
            conflict(&held, "s1", 7, &range(Read, 0, 50)).is_none(),
            "readers share"
        );
        assert_eq!(conflict(&held, "s1", 7, &range(Write, 5, 5)), Some(&held[0]));
        assert_eq!(conflict(&held, "s1", 7, &range(Read, 150, 150)), Some(&held[1]));
        assert!(
            conflict(&held, "s2", 7, &range(Write, 0, 199)).is_none(),
            "its own locks"
        );
        assert!(conflict(&held, "s1", 7, &range(Unlock, 0, 199)).is_none());
    }
}
