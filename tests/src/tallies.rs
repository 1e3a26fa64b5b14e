//! Checks the routers' running totals (`tallies`, migration 0022) against
//! a recount of the tables they stand for. Run when no write is in flight.

use anyhow::Result;

/// One row per subject whose totals differ from the recount:
/// kind|subject|items tallied|counted|bytes tallied|counted.
const MISMATCHES: &str = "
WITH t AS (SELECT kind, subject, sum(items) AS items, sum(bytes) AS bytes FROM tallies GROUP BY kind, subject),
     r AS (SELECT 'chunks' AS kind, '' AS subject, count(*) AS items, COALESCE(sum(size), 0) AS bytes
           FROM chunks
           UNION ALL
           SELECT 'node', r.node_id, count(*), sum(c.size)
           FROM chunk_replicas r JOIN chunks c ON c.id = r.chunk_id GROUP BY r.node_id)
SELECT COALESCE(t.kind, r.kind), COALESCE(t.subject, r.subject), t.items, r.items, t.bytes, r.bytes
FROM t FULL JOIN r ON t.kind = r.kind AND t.subject = r.subject
WHERE COALESCE(t.items, 0) <> COALESCE(r.items, 0) OR COALESCE(t.bytes, 0) <> COALESCE(r.bytes, 0)";

/// None when every running total equals its recount; else the differences.
/// `psql` runs a statement and answers its unaligned output.
pub fn mismatches(psql: impl Fn(&str) -> Result<String>) -> Result<Option<String>> {
    let rows = psql(MISMATCHES)?;
    let rows = rows.trim();
    Ok((!rows.is_empty()).then(|| format!("running totals differ from a recount: {rows}")))
}
