//! `diesel print-schema` for our databases, without the diesel CLI (which needs libpq and OpenSSL).
//!
//! It reads the catalog of a migrated database and prints the `table!`, `joinable!` and
//! `allow_tables_to_appear_in_same_query!` blocks in the layout diesel's CLI uses. The drift test
//! compares its output with the committed `schema.rs` files.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use diesel::QueryableByName;
use diesel::sql_types::{Integer, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Errors while reading the catalog.
#[derive(Debug, thiserror::Error)]
pub enum IntrospectError {
    /// The catalog query failed.
    #[error("catalog query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// A column has a type this printer does not map.
    #[error("column {table}.{column} has type {udt}, which has no mapping here")]
    UnknownType {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// PostgreSQL type name.
        udt: String,
    },
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    udt_name: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
}

#[derive(QueryableByName)]
struct KeyRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Integer)]
    position: i32,
}

#[derive(QueryableByName)]
struct ForeignKeyRow {
    #[diesel(sql_type = Text)]
    child: String,
    #[diesel(sql_type = Text)]
    parent: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Integer)]
    columns: i32,
}

/// Prints the schema of the `public` tables (diesel's own bookkeeping table excluded).
pub async fn print_schema(conn: &mut AsyncPgConnection) -> Result<String, IntrospectError> {
    let (columns, keys, foreign_keys) = catalog(conn).await?;
    let mut tables: BTreeMap<String, Vec<&ColumnRow>> = BTreeMap::new();
    for column in &columns {
        tables.entry(column.table_name.clone()).or_default().push(column);
    }
    let mut primary_keys: BTreeMap<&str, Vec<(i32, &str)>> = BTreeMap::new();
    for key in &keys {
        primary_keys
            .entry(key.table_name.as_str())
            .or_default()
            .push((key.position, key.column_name.as_str()));
    }

    let mut out = String::from("// @generated automatically by Diesel CLI.\n");
    for (table, cols) in &tables {
        let mut key_columns = primary_keys.get(table.as_str()).cloned().unwrap_or_default();
        key_columns.sort();
        let key_list: Vec<&str> = key_columns.iter().map(|(_, c)| *c).collect();
        let _ = writeln!(out, "\ndiesel::table! {{");
        let _ = writeln!(out, "    {table} ({}) {{", key_list.join(", "));
        for col in cols {
            let sql_type = diesel_type(&col.udt_name).ok_or_else(|| IntrospectError::UnknownType {
                table: table.clone(),
                column: col.column_name.clone(),
                udt: col.udt_name.clone(),
            })?;
            let sql_type = if col.is_nullable == "YES" {
                format!("Nullable<{sql_type}>")
            } else {
                sql_type.to_owned()
            };
            let _ = writeln!(out, "        {} -> {sql_type},", col.column_name);
        }
        let _ = writeln!(out, "    }}\n}}");
    }

    out.push_str(&joinables_and_tables(&foreign_keys, tables.keys()));
    Ok(out)
}

type Catalog = (Vec<ColumnRow>, Vec<KeyRow>, Vec<ForeignKeyRow>);

/// The columns, primary keys and single-column foreign keys of the `public` tables.
async fn catalog(conn: &mut AsyncPgConnection) -> Result<Catalog, IntrospectError> {
    let columns: Vec<ColumnRow> = diesel::sql_query(
        "SELECT c.table_name::text, c.column_name::text, c.udt_name::text, c.is_nullable::text \
         FROM information_schema.columns c \
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' \
           AND c.table_name <> '__diesel_schema_migrations' \
         ORDER BY c.table_name, c.ordinal_position",
    )
    .load(conn)
    .await?;
    let keys: Vec<KeyRow> = diesel::sql_query(
        "SELECT tc.table_name::text, k.column_name::text, k.ordinal_position::int AS position \
         FROM information_schema.table_constraints tc \
         JOIN information_schema.key_column_usage k \
           ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema \
          AND k.table_name = tc.table_name \
         WHERE tc.table_schema = 'public' AND tc.constraint_type = 'PRIMARY KEY' \
         ORDER BY tc.table_name, k.ordinal_position",
    )
    .load(conn)
    .await?;
    // Single-column foreign keys that point at the parent's primary key, as diesel's CLI uses them.
    let foreign_keys: Vec<ForeignKeyRow> = diesel::sql_query(
        "SELECT child.relname::text AS child, parent.relname::text AS parent, \
                a.attname::text AS column_name, array_length(con.conkey, 1) AS columns \
         FROM pg_constraint con \
         JOIN pg_class child ON child.oid = con.conrelid \
         JOIN pg_class parent ON parent.oid = con.confrelid \
         JOIN pg_namespace n ON n.oid = child.relnamespace \
         JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1] \
         JOIN pg_constraint pk ON pk.conrelid = con.confrelid AND pk.contype = 'p' \
         WHERE con.contype = 'f' AND n.nspname = 'public' AND pk.conkey = con.confkey \
         ORDER BY child.relname, a.attname",
    )
    .load(conn)
    .await?;

    Ok((columns, keys, foreign_keys))
}

/// The `joinable!` lines and the `allow_tables_to_appear_in_same_query!` block, as diesel prints them.
fn joinables_and_tables<'a>(foreign_keys: &[ForeignKeyRow], tables: impl Iterator<Item = &'a String>) -> String {
    let mut out = String::new();
    let tables: Vec<&String> = tables.collect();
    // diesel emits one joinable! per (child, parent) pair and skips ambiguous pairs.
    let mut pairs: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for fk in foreign_keys
        .iter()
        .filter(|fk| fk.columns == 1 && fk.child != fk.parent)
    {
        pairs
            .entry((fk.child.as_str(), fk.parent.as_str()))
            .or_default()
            .push(fk.column_name.as_str());
    }
    let joinables: BTreeSet<String> = pairs
        .iter()
        .filter(|(_, cols)| cols.len() == 1)
        .map(|((child, parent), cols)| format!("diesel::joinable!({child} -> {parent} ({}));", cols[0]))
        .collect();
    if !joinables.is_empty() {
        out.push('\n');
        for line in &joinables {
            out.push_str(line);
            out.push('\n');
        }
    }
    if tables.len() > 1 {
        out.push_str("\ndiesel::allow_tables_to_appear_in_same_query!(\n");
        for table in &tables {
            let _ = writeln!(out, "    {table},");
        }
        out.push_str(");\n");
    }
    out
}

fn diesel_type(udt: &str) -> Option<&'static str> {
    Some(match udt {
        "uuid" => "Uuid",
        "text" => "Text",
        "varchar" => "Varchar",
        "bool" => "Bool",
        "int2" => "Int2",
        "int4" => "Int4",
        "int8" => "Int8",
        "float4" => "Float4",
        "float8" => "Float8",
        "timestamptz" => "Timestamptz",
        "timestamp" => "Timestamp",
        "date" => "Date",
        "jsonb" => "Jsonb",
        "json" => "Json",
        "bytea" => "Bytea",
        _ => return None,
    })
}
