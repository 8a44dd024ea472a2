//! Verifying the chain, as `edge-gateway audit verify` does.
//!
//! The chain is read in `chain_seq` order, in pages of [`PAGE_ROWS`] by keyset (`chain_seq > last`,
//! on the unique index), inside one read-only `REPEATABLE READ` transaction: a purge or a journal
//! flush running meanwhile is not seen half-way, and memory stays flat whatever the chain's length.
//! It starts after the latest retention anchor (the last purged record's position and hash, see
//! [`super::retention`]), or at position 1 from [`GENESIS_HASH`](super::GENESIS_HASH).
//!
//! Each record is checked in this order, and the first failure is reported with the record's `seq`
//! and position:
//!
//! 1. its position is the next one — else records are missing ([`ChainBreak::Deleted`]), a record was
//!    moved elsewhere in the chain ([`ChainBreak::Reordered`]), or the numbering jumps over nothing
//!    ([`ChainBreak::Gap`]);
//! 2. its `prev_hash` is the previous record's hash — else [`ChainBreak::Reordered`] when the record
//!    that does follow the previous one sits elsewhere, [`ChainBreak::Link`] otherwise;
//! 3. its `hash` recomputes from its content ([`ChainBreak::Hash`]);
//! 4. at a position this gateway signed a checkpoint of, the hash is the checkpoint's
//!    ([`ChainBreak::Checkpoint`]: the chain was rewritten from there on).
//!
//! Finally, a checkpoint beyond the last record means the end of the chain was cut off
//! ([`ChainBreak::Truncated`]). Looking for a moved record reads the table once without an index,
//! only when the chain is already known to be broken.

use std::collections::VecDeque;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::{audit_anchors, audit_checkpoints, audit_log};
use time::OffsetDateTime;

use super::{Appended, ChainBreak, GENESIS_HASH, record_hash};

/// Records read per query.
pub const PAGE_ROWS: i64 = 20_000;

/// Where the verified part of the chain starts: the last record a retention purge removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// Its position.
    pub chain_seq: i64,
    /// Its hash.
    pub hash: [u8; 32],
    /// When it was purged.
    pub purged_at: OffsetDateTime,
}

/// An intact chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSummary {
    /// Records verified.
    pub records: u64,
    /// Where verification started (none: at the beginning of the chain).
    pub anchor: Option<Anchor>,
    /// Position and hash of the last record (of the anchor when no record follows it; none for an
    /// empty chain).
    pub head: Option<(i64, [u8; 32])>,
    /// Writes' records committed but not chained yet (not verified: the journal chains them within
    /// a second).
    pub unchained: i64,
    /// This gateway's checkpoints found in the chain with their hash.
    pub checkpoints: u64,
}

/// The first bad record of a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRecord {
    /// The record's local id (none when the position holds no record).
    pub seq: Option<i64>,
    /// The position where the chain breaks.
    pub chain_seq: i64,
    /// What is wrong.
    pub problem: ChainBreak,
    /// Records verified before it.
    pub verified: u64,
}

impl std::fmt::Display for BadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "record seq {seq} at chain position {}: ", self.chain_seq)?,
            None => write!(f, "chain position {}: ", self.chain_seq)?,
        }
        let detail = match &self.problem {
            ChainBreak::Hash(_) => "hash mismatch: the record's content does not match its hash (altered after it was chained)".to_owned(),
            ChainBreak::Link(p) => format!(
                "broken link: its prev_hash is not the hash of position {} (a record was altered and re-hashed, or replaced)",
                p - 1
            ),
            ChainBreak::Gap { expected, found } => format!(
                "gap: position {expected} was expected, {found} found (the numbering jumps, though the record links to the previous one)"
            ),
            ChainBreak::Deleted { from, to, next_seq } => {
                let next = next_seq.map(|s| format!("; the next record is seq {s} at position {}", to + 1)).unwrap_or_default();
                if from == to {
                    format!("row deleted: the record at position {from} is missing{next}")
                } else {
                    format!("rows deleted: the records at positions {from} to {to} are missing{next}")
                }
            }
            ChainBreak::Reordered { record_seq, found_at } => format!(
                "chain reordered: the record that follows position {} is seq {record_seq}, found at position {found_at}",
                self.chain_seq - 1
            ),
            ChainBreak::Checkpoint(_) => "checkpoint mismatch: the hash differs from the checkpoint this gateway signed at that position (the chain was rewritten)".to_owned(),
            ChainBreak::Truncated { head, checkpoint } => format!(
                "rows deleted at the end: the chain ends at position {head}, but a checkpoint was signed at position {checkpoint}"
            ),
        };
        write!(f, "{detail} ({} record(s) verified before it)", self.verified)
    }
}

/// The latest retention anchor.
pub async fn latest_anchor(conn: &mut AsyncPgConnection) -> QueryResult<Option<Anchor>> {
    let row: Option<(i64, Vec<u8>, OffsetDateTime)> = audit_anchors::table
        .order(audit_anchors::chain_seq.desc())
        .select((audit_anchors::chain_seq, audit_anchors::hash, audit_anchors::purged_at))
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(|(chain_seq, hash, purged_at)| Anchor {
        chain_seq,
        hash: to_hash(Some(&hash)),
        purged_at,
    }))
}

/// Verifies the whole chain (from the latest anchor) in one consistent snapshot.
pub async fn verify(conn: &mut AsyncPgConnection) -> QueryResult<Result<ChainSummary, BadRecord>> {
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(async |conn| {
            let anchor = latest_anchor(conn).await?;
            let start = anchor.as_ref().map_or((0, GENESIS_HASH), |a| (a.chain_seq, a.hash));
            let checkpoints: Vec<(i64, Vec<u8>)> = audit_checkpoints::table
                .filter(audit_checkpoints::chain_seq.gt(start.0))
                .order(audit_checkpoints::chain_seq.asc())
                .select((audit_checkpoints::chain_seq, audit_checkpoints::chain_hash))
                .load(conn)
                .await?;
            let checkpoints = checkpoints.into_iter().map(|(p, h)| (p, to_hash(Some(&h)))).collect();
            let unchained = crate::store::audit::pending_count(conn).await?;
            let segment = match verify_segment(conn, start, None, checkpoints).await? {
                Ok(segment) => segment,
                Err(bad) => return Ok(Err(bad)),
            };
            let head = segment.head.or_else(|| anchor.as_ref().map(|a| (a.chain_seq, a.hash)));
            Ok(Ok(ChainSummary {
                records: segment.records,
                anchor,
                head,
                unchained,
                checkpoints: segment.checkpoints,
            }))
        })
        .await
}

/// A verified run of records.
#[derive(Debug)]
pub(crate) struct Segment {
    pub records: u64,
    /// The last record's position and hash.
    pub head: Option<(i64, [u8; 32])>,
    pub checkpoints: u64,
}

/// A chained row: the appended row, its position, `prev_hash` and `hash`.
type Row = (Appended, i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Verifies the records after `start` (position and hash), up to position `until` when given, within
/// the caller's transaction. `checkpoints` are (position, hash) in ascending order, all after `start`.
pub(crate) async fn verify_segment(
    conn: &mut AsyncPgConnection,
    start: (i64, [u8; 32]),
    until: Option<i64>,
    checkpoints: Vec<(i64, [u8; 32])>,
) -> QueryResult<Result<Segment, BadRecord>> {
    let mut checkpoints: VecDeque<(i64, [u8; 32])> = checkpoints.into();
    let (mut after, mut prev) = start;
    let mut verified = 0u64;
    let mut matched = 0u64;
    loop {
        let rows = page_after(conn, after, until).await?;
        let full_page = rows.len() as i64 == PAGE_ROWS;
        for (appended, chain_seq, prev_hash, stored_hash) in rows {
            let seq = appended.seq;
            let expected = after + 1;
            let bad = |problem| BadRecord {
                seq: Some(seq),
                chain_seq,
                problem,
                verified,
            };
            let links = prev_hash.as_deref() == Some(prev.as_slice());
            if chain_seq != expected {
                let found = Misplaced {
                    seq,
                    chain_seq,
                    expected,
                    links,
                };
                return Ok(Err(misplaced(conn, &prev, found, verified).await?));
            }
            if !links {
                return Ok(Err(match follower(conn, &prev, chain_seq).await? {
                    Some((record_seq, found_at)) => bad(ChainBreak::Reordered { record_seq, found_at }),
                    None => bad(ChainBreak::Link(chain_seq)),
                }));
            }
            let hash = record_hash(&prev, &appended.at_position(chain_seq));
            if stored_hash.as_deref() != Some(hash.as_slice()) {
                return Ok(Err(bad(ChainBreak::Hash(chain_seq))));
            }
            while let Some(&(position, signed)) = checkpoints.front() {
                if position > chain_seq {
                    break;
                }
                checkpoints.pop_front();
                if position == chain_seq {
                    if signed != hash {
                        return Ok(Err(bad(ChainBreak::Checkpoint(chain_seq))));
                    }
                    matched += 1;
                }
            }
            prev = hash;
            after = chain_seq;
            verified += 1;
        }
        if !full_page {
            break;
        }
    }
    if let Some(bad) = truncated(checkpoints.front(), until, after, verified) {
        return Ok(Err(bad));
    }
    Ok(Ok(Segment {
        records: verified,
        head: (verified > 0).then_some((after, prev)),
        checkpoints: matched,
    }))
}

/// A checkpoint left unmatched (within `until`) once the records ran out at `head`: the chain was
/// cut short.
fn truncated(left: Option<&(i64, [u8; 32])>, until: Option<i64>, head: i64, verified: u64) -> Option<BadRecord> {
    let &(checkpoint, _) = left.filter(|(checkpoint, _)| until.is_none_or(|until| *checkpoint <= until))?;
    Some(BadRecord {
        seq: None,
        chain_seq: head + 1,
        problem: ChainBreak::Truncated { head, checkpoint },
        verified,
    })
}

/// The next page of chained records after position `after`, up to `until` when given.
async fn page_after(conn: &mut AsyncPgConnection, after: i64, until: Option<i64>) -> QueryResult<Vec<Row>> {
    let mut query = audit_log::table
        .filter(audit_log::chain_seq.gt(after))
        .order(audit_log::chain_seq.asc())
        .limit(PAGE_ROWS)
        .select((
            Appended::as_select(),
            audit_log::chain_seq.assume_not_null(),
            audit_log::prev_hash,
            audit_log::hash,
        ))
        .into_boxed();
    if let Some(until) = until {
        query = query.filter(audit_log::chain_seq.le(until));
    }
    query.load(conn).await
}

/// A record found at another position than the one expected next.
struct Misplaced {
    seq: i64,
    chain_seq: i64,
    expected: i64,
    /// Whether it links to the previous record all the same.
    links: bool,
}

/// What a misplaced record means: positions `expected..chain_seq-1` hold nothing; if it links to
/// the previous record they were never filled (a gap), else the expected record was moved
/// elsewhere (reordered) or deleted.
async fn misplaced(
    conn: &mut AsyncPgConnection,
    prev: &[u8; 32],
    found: Misplaced,
    verified: u64,
) -> QueryResult<BadRecord> {
    let Misplaced {
        seq,
        chain_seq,
        expected,
        links,
    } = found;
    if links {
        return Ok(BadRecord {
            seq: Some(seq),
            chain_seq,
            problem: ChainBreak::Gap {
                expected,
                found: chain_seq,
            },
            verified,
        });
    }
    let problem = match follower(conn, prev, chain_seq).await? {
        Some((record_seq, found_at)) => ChainBreak::Reordered { record_seq, found_at },
        None => ChainBreak::Deleted {
            from: expected,
            to: chain_seq - 1,
            next_seq: Some(seq),
        },
    };
    Ok(BadRecord {
        seq: None,
        chain_seq: expected,
        problem,
        verified,
    })
}

/// The record chained after the one whose hash is `prev`, when it is not at position `not_at`:
/// `(seq, position)`. Reads the table without an index: only called once the chain is broken.
async fn follower(conn: &mut AsyncPgConnection, prev: &[u8; 32], not_at: i64) -> QueryResult<Option<(i64, i64)>> {
    audit_log::table
        .filter(audit_log::prev_hash.eq(prev.as_slice()))
        .filter(audit_log::chain_seq.ne(not_at))
        .order(audit_log::chain_seq.asc())
        .select((audit_log::seq, audit_log::chain_seq.assume_not_null()))
        .first(conn)
        .await
        .optional()
}

/// A stored 32-byte hash (zeros when absent or malformed, which no computed hash equals; the tables'
/// checks keep them 32 bytes).
pub(crate) fn to_hash(bytes: Option<&[u8]>) -> [u8; 32] {
    bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()).unwrap_or([0; 32])
}
