//! SQL written by hand, prepared once per connection.
//!
//! diesel prepares and keeps the statements its DSL builds, but marks `sql_query` as not to be kept
//! (its text may be built at run time, and every distinct text would stay in the connection's
//! cache), so PostgreSQL parses and plans such a statement again at every call. [`KeepPrepared`]
//! lets diesel keep one of fixed text in the connection's cache, keyed by its text and its binds'
//! types, as it keeps the DSL's.
//!
//! **Only for statements whose plan cannot depend on a table's size**: inserts from arrays
//! (`INSERT … SELECT FROM unnest`), advisory locks, function calls. After five runs PostgreSQL may
//! keep one generic plan for a prepared statement until the tables' statistics change, and a
//! look-up planned while its table was empty (a new gateway's `idempotency_keys`) is a hash join
//! over a sequential scan: kept while the table grew, it took the write benchmark from 877 to 303
//! writes/s over five runs (`docs/performance.md`). Look-ups that join or probe growing tables stay
//! plain `sql_query`, planned for their values at each call.

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::Untyped;

/// A `sql_query` whose statement each connection prepares once and reuses ([`KeepPrepared`]).
#[derive(Clone, Copy, Debug)]
#[must_use = "a statement runs only when loaded or executed"]
pub struct Prepared<Q>(Q);

/// `.prepared()` on a `diesel::sql_query` with its binds: its statement is prepared at its first run
/// on a connection and reused after. Only for a statement of fixed text: each distinct text stays
/// prepared for the connection's life.
pub trait KeepPrepared: QueryFragment<Pg> + Sized {
    /// This query, kept prepared.
    fn prepared(self) -> Prepared<Self> {
        Prepared(self)
    }
}

impl<Q: QueryFragment<Pg>> KeepPrepared for Q {}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(out)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();

    // No type of its own: diesel keys the cache by the text and the binds' types.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> Query for Prepared<Q> {
    type SqlType = Untyped;
}
