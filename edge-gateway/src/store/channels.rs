//! PostgreSQL's `LISTEN`/`NOTIFY`, as the state the gateway keeps in memory uses it: the signing
//! key ring (`auth::keys`) and the revocation list (`auth::revocation`) each hold a connection that
//! listens on their channel.

use diesel::result::QueryResult;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::db::{PgPool, PooledConnection};

/// Sends `payload` on `channel`: at commit inside a transaction, at once outside one.
pub async fn notify(conn: &mut AsyncPgConnection, channel: &str, payload: &str) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(channel)
        .bind::<Text, _>(payload)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Makes this connection LISTEN on `channel` (a name of ours, never input: `LISTEN` takes no
/// parameter).
pub async fn listen(conn: &mut AsyncPgConnection, channel: &'static str) -> QueryResult<()> {
    diesel::sql_query(format!("LISTEN {channel}"))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A connection of its own that LISTENs on `channel`, taken out of `pool` (one beyond its size): a
/// listening connection never serves anyone else.
pub async fn listening(pool: &PgPool, channel: &'static str) -> anyhow::Result<AsyncPgConnection> {
    let mut conn = PooledConnection::take(pool.get().await?);
    listen(&mut conn, channel).await?;
    Ok(conn)
}
