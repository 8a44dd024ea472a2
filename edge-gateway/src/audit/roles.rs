//! The database roles: `migrate` runs as the schema's owner (`database.migration_url`), `serve` as a
//! login role member of `labedge_gateway_runtime`, which may append to the audit tables and link the
//! chain but not change, delete or truncate a record, nor disable the guards (it owns nothing). The
//! migration `audit_runtime_role` creates that role and its grants.
//!
//! `serve` checks the role it connects as: one that could rewrite the chain (the owner, a superuser,
//! one with UPDATE, DELETE or TRUNCATE on an audit table, or allowed to set
//! `session_replication_role`, which silences triggers) is refused in the production and
//! preproduction profiles, and logged as a security event in the sandbox (demos and tests that
//! migrate and serve with one role).

use diesel::QueryableByName;
use diesel::sql_types::{Bool, Integer};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use labedge_schema::db::{self, Database};
use labedge_service::config::Profile;

use crate::config::Config;

/// The group role `serve`'s login role must be a member of.
pub const RUNTIME_ROLE: &str = "labedge_gateway_runtime";

/// What the serving role could do to the audit tables that it must not.
#[derive(Clone, Debug, Default, PartialEq, Eq, QueryableByName)]
pub struct RolePowers {
    /// A superuser: anything.
    #[diesel(sql_type = Bool)]
    pub superuser: bool,
    /// Owner (or member of the owner) of an audit table: may disable its triggers, drop it.
    #[diesel(sql_type = Bool)]
    pub owner: bool,
    /// Holds UPDATE (on the whole row), DELETE or TRUNCATE on an audit table.
    #[diesel(sql_type = Bool)]
    pub rewrite: bool,
    /// May set `session_replication_role`, under which triggers do not fire.
    #[diesel(sql_type = Bool)]
    pub skip_triggers: bool,
    /// Member of [`RUNTIME_ROLE`] (not a problem by itself: what serve should be).
    #[diesel(sql_type = Bool)]
    pub runtime_member: bool,
}

impl RolePowers {
    /// The problems, in words; empty when the role cannot rewrite the chain.
    pub fn problems(&self) -> Vec<&'static str> {
        let mut problems = Vec::new();
        if self.superuser {
            problems.push("it is a superuser");
        }
        if self.owner {
            problems.push("it owns the audit tables (it may disable their triggers or drop them)");
        }
        if self.rewrite {
            problems.push("it holds UPDATE, DELETE or TRUNCATE on an audit table");
        }
        if self.skip_triggers {
            problems.push("it may set session_replication_role (triggers would not fire)");
        }
        problems
    }
}

/// What the current role of `conn` could do to the audit tables.
pub async fn powers(conn: &mut AsyncPgConnection) -> diesel::QueryResult<RolePowers> {
    diesel::sql_query(
        "SELECT r.rolsuper AS superuser, \
                bool_or(pg_has_role(current_user, c.relowner, 'MEMBER')) AS owner, \
                bool_or(has_table_privilege(c.oid, 'UPDATE') OR has_table_privilege(c.oid, 'DELETE') \
                        OR has_table_privilege(c.oid, 'TRUNCATE')) AS rewrite, \
                has_parameter_privilege('session_replication_role', 'SET') AS skip_triggers, \
                EXISTS (SELECT FROM pg_roles g WHERE g.rolname = $1 \
                        AND pg_has_role(current_user, g.oid, 'MEMBER')) AS runtime_member \
         FROM pg_roles r, pg_class c \
         WHERE r.rolname = current_user \
           AND c.oid IN ('audit_log'::regclass, 'audit_anchors'::regclass, 'audit_checkpoints'::regclass, \
                         'audit_retention'::regclass, 'audit_pending'::regclass) \
         GROUP BY r.rolsuper",
    )
    .bind::<diesel::sql_types::Text, _>(RUNTIME_ROLE)
    .get_result(conn)
    .await
}

/// Why `serve` does not start.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// The role could rewrite the audit chain.
    #[error(
        "database.url connects as a role that could rewrite the audit chain: {0}; serve as a login role member \
         of {RUNTIME_ROLE} and migrate as the owner with database.migration_url (docs/operations.md, \"Database roles\")"
    )]
    TooPowerful(String),
    /// The database could not be asked.
    #[error("checking the database role: {0}")]
    Database(#[from] diesel::result::Error),
    /// Connecting failed.
    #[error("checking the database role: {0}")]
    Connect(#[from] diesel::ConnectionError),
}

/// `serve`'s check of its own role: an error in production and preproduction, a security event in
/// the sandbox.
pub async fn check_serving_role(config: &Config) -> Result<(), RoleError> {
    let url = config.database.url.expose_secret();
    // Before the migrations the audit tables may not exist: `serve` refuses next, saying so.
    if db::pending_migrations(url, Database::Edge)
        .await
        .map_or(true, |pending| !pending.is_empty())
    {
        return Ok(());
    }
    let mut conn = AsyncPgConnection::establish(url).await?;
    let powers = powers(&mut conn).await?;
    let problems = powers.problems();
    if problems.is_empty() {
        return Ok(());
    }
    let problems = problems.join("; ");
    if config.profile == Profile::Sandbox {
        tracing::event!(
            target: "security",
            tracing::Level::WARN,
            event.kind = "security",
            event.category = "configuration",
            event.action = "audit_role_too_powerful",
            event.outcome = "unknown",
            "serving as a database role that could rewrite the audit chain ({problems}): allowed in the sandbox only"
        );
        return Ok(());
    }
    Err(RoleError::TooPowerful(problems))
}

/// `migrate`'s last step, as the owner: records the retention `audit_purge` enforces.
pub async fn record_retention(url: &str, months: u32) -> Result<(), RoleError> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    diesel::sql_query("UPDATE audit_retention SET months = $1, updated_at = now() WHERE months <> $1")
        .bind::<Integer, _>(i32::try_from(months).unwrap_or(i32::MAX))
        .execute(&mut conn)
        .await?;
    Ok(())
}
