//! A PostgreSQL database per test.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use labedge_schema::db::{self, Database};
use sha2::{Digest, Sha256};

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Every audit record of a gateway, chained (`audit_log`) or a write's still waiting for the
/// journal (`audit_pending`, at most a second): `FROM {AUDIT_RECORDS} WHERE …` counts a write's
/// record at once.
pub const AUDIT_RECORDS: &str = "(SELECT action, patient_id, resource FROM audit_log \
     UNION ALL SELECT action, patient_id, resource FROM audit_pending) AS audit";

/// The `n` of a `SELECT count(*) AS n …` query on `conn`.
pub async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel_async::RunQueryDsl::get_result::<Count>(diesel::sql_query(sql), conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

/// The same on the database at `url`, over a connection of its own (a database of a cluster the
/// test may stop, a process's database the test only watches).
pub async fn count_at(url: &str, sql: &str) -> i64 {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .unwrap_or_else(|e| panic!("connect to count: {e}"));
    count(&mut conn, sql).await
}

/// The `SELECT count(*) AS n …` of the collections among `ids`: that acknowledged writes are all
/// there, once.
pub fn collections_among(ids: &[uuid::Uuid]) -> String {
    let list = ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
    format!("SELECT count(*) AS n FROM collections WHERE id IN ({list})")
}

/// Base URL of the PostgreSQL server the tests use (no database name).
pub fn server_url() -> String {
    std::env::var("LABEDGE_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn url_of(database: &str) -> String {
    format!("{}/{database}", server_url().trim_end_matches('/'))
}

async fn admin() -> AsyncPgConnection {
    AsyncPgConnection::establish(&url_of("postgres"))
        .await
        .expect("PostgreSQL must run on 127.0.0.1:5432 (see README: deploy/test.sh starts it)")
}

/// A database of its own, dropped (with its connections) when the value is dropped.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// A fresh database with every migration of `database` applied, cloned from the template.
    pub async fn migrated(database: Database) -> Self {
        let template = ensure_template(database).await;
        Self::create(Some(&template)).await
    }

    /// An empty database (no migrations), for the migration tests themselves.
    pub async fn empty() -> Self {
        Self::create(None).await
    }

    async fn create(template: Option<&str>) -> Self {
        let name = format!(
            "labedge_t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mut conn = admin().await;
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        conn.batch_execute(&sql).await.expect("create the test database");
        let url = url_of(&name);
        Self { name, url }
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL as the serving role: [`RUNTIME_LOGIN`], a login role member of the migrations'
    /// `labedge_gateway_runtime`, which owns nothing (edge databases; `migrate` first).
    pub async fn runtime_url(&self) -> String {
        ensure_runtime_login().await;
        as_role(&self.url, RUNTIME_LOGIN)
    }

    /// A new connection to it as the serving role (see [`TestDb::runtime_url`]).
    pub async fn runtime_conn(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.runtime_url().await)
            .await
            .expect("connect to the test database as the serving role")
    }

    /// A new connection to it.
    pub async fn conn(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url)
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = AsyncPgConnection::establish(&url_of("postgres")).await {
                    let _ = conn
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// The login role the tests serve a gateway as: a member of `labedge_gateway_runtime` (created by the
/// edge migrations), as in production. Roles are cluster-wide: one for every test, owning nothing,
/// made once.
pub const RUNTIME_LOGIN: &str = "labedge_test_gateway_runtime";

/// Creates [`RUNTIME_LOGIN`] unless it exists. Test processes race here: a concurrent `CREATE ROLE`
/// fails with `duplicate_object` or, on the catalog's unique index, `unique_violation`; both mean
/// it is there.
async fn ensure_runtime_login() {
    let mut conn = admin().await;
    conn.batch_execute(&format!(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{RUNTIME_LOGIN}') THEN \
             BEGIN CREATE ROLE {RUNTIME_LOGIN} LOGIN IN ROLE labedge_gateway_runtime; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END; \
           END IF; \
         END $$"
    ))
    .await
    .expect("the serving role (migrate an edge database first: it creates labedge_gateway_runtime)");
}

/// `url` with its user replaced by `role` (no password: trust authentication on 127.0.0.1).
pub fn as_role(url: &str, role: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{role}@{host}")
}

/// The migrations folder of a database, in the source tree.
pub fn migrations_dir(database: Database) -> PathBuf {
    let set = match database {
        Database::Cloud => "cloud",
        Database::Edge => "edge",
    };
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../schema/migrations")
        .join(set)
}

/// A digest of every migration file of a set: a template is reused only for identical migrations.
fn migrations_digest(database: Database) -> String {
    let mut files = Vec::new();
    let mut stack = vec![migrations_dir(database)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read migrations").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path)
            } else {
                files.push(path)
            }
        }
    }
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&file).expect("read migration"));
    }
    hex::encode(&hasher.finalize()[..6])
}

/// Makes the template of a migration set once for all test processes (nextest runs each test in a
/// process of its own), under an advisory lock, and returns its name.
async fn ensure_template(database: Database) -> String {
    let prefix = match database {
        Database::Cloud => "labedge_tpl_cloud_",
        Database::Edge => "labedge_tpl_edge_",
    };
    let template = format!("{prefix}{}", migrations_digest(database));
    let mut conn = admin().await;
    conn.batch_execute("SELECT pg_advisory_lock(7305719999)")
        .await
        .expect("lock");
    let exists = template_exists(&mut conn, &template).await;
    if !exists {
        let building = format!("{template}_wip");
        conn.batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .await
            .expect("drop stale wip");
        conn.batch_execute(&format!("CREATE DATABASE {building}"))
            .await
            .expect("create template");
        db::run_migrations(&url_of(&building), database)
            .await
            .expect("migrate the template");
        conn.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}"))
            .await
            .expect("rename template");
        conn.batch_execute(&format!("ALTER DATABASE {template} WITH IS_TEMPLATE true"))
            .await
            .expect("mark template");
        drop_stale(&mut conn, prefix, &template).await;
    }
    conn.batch_execute("SELECT pg_advisory_unlock(7305719999)")
        .await
        .expect("unlock");
    template
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    datname: String,
}

async fn template_exists(conn: &mut AsyncPgConnection, template: &str) -> bool {
    use diesel_async::RunQueryDsl;
    let names: Vec<Name> = diesel::sql_query("SELECT datname::text FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(template)
        .load(conn)
        .await
        .expect("list databases");
    !names.is_empty()
}

/// Drops templates of older migrations, and test databases left behind by processes that died.
async fn drop_stale(conn: &mut AsyncPgConnection, prefix: &str, keep: &str) {
    use diesel_async::RunQueryDsl;
    let names: Vec<Name> = diesel::sql_query("SELECT datname::text FROM pg_database WHERE datname LIKE 'labedge\\_%'")
        .load(conn)
        .await
        .unwrap_or_default();
    for name in names.into_iter().map(|n| n.datname) {
        let stale_template = name.starts_with(prefix) && name != keep && !name.ends_with("_wip");
        let orphan = name
            .strip_prefix("labedge_t_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
        if stale_template {
            let _ = conn
                .batch_execute(&format!("ALTER DATABASE {name} WITH IS_TEMPLATE false"))
                .await;
        }
        if stale_template || orphan {
            let _ = conn
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}
