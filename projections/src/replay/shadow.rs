//! The shadow tables of a rebuild, in PostgreSQL: cloned from the live ones' catalog, filled
//! under their own checkpoints, and swapped in by moving tables between schemas.
//!
//! A rebuild of projection `p` owns two schemas: `replay_p` (the shadow: the projection's
//! tables and a private `checkpoints` table) and, for the length of the swap, `replay_p_old`
//! (where the live tables go). The projection's PostgreSQL adapter writes unqualified table
//! names, so pointing it at the shadow is a pool whose `search_path` starts with `replay_p`.
//!
//! Cloned from the live catalog rather than from the migration files, so a table later
//! migrations altered comes out as it is now: columns, defaults and checks (`LIKE`), the
//! primary key and unique constraints and every other index under their own names, the
//! partitioning and each partition. Foreign keys and triggers are not cloned (no read model
//! has them).
//!
//! GIN indexes (full-text `search`) are built once the shadow is filled
//! ([`build_indexes`]), not maintained row by row while it fills: one build over the table
//! instead of a pending-list insert and merge per row. B-tree indexes are there from the
//! start: the adapters' upserts name the primary keys in `ON CONFLICT`, and their lookups
//! of the rows a batch touches use the others (`seller_order` by `order_no`).

use tokio_postgres::{Client, GenericClient};

use crate::error::ProjectionError;

/// `"name"`: catalog names are quoted as identifiers, whatever they hold.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The shadow schema of a projection.
pub fn shadow_schema(projection: &str) -> String {
    format!("replay_{projection}")
}

/// Where the live tables go during the swap (dropped right after).
pub(crate) fn retired_schema(projection: &str) -> String {
    format!("replay_{projection}_old")
}

/// Drops whatever an earlier (interrupted) rebuild left and creates empty shadow tables.
/// Returns the DDL of their GIN indexes, for [`build_indexes`] once they are filled.
pub(crate) async fn create(
    client: &Client,
    projection: &str,
    tables: &[&str],
) -> Result<Vec<String>, ProjectionError> {
    let schema = ident(&shadow_schema(projection));
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
             CREATE TABLE {schema}.checkpoints (LIKE public.checkpoints INCLUDING ALL);"
        ))
        .await?;
    let mut indexes = Vec::new();
    for table in tables {
        indexes.extend(clone_table(client, &schema, table).await?);
    }
    Ok(indexes)
}

/// Creates the GIN indexes [`create`] left out, on the filled shadow tables.
pub(crate) async fn build_indexes(
    client: &Client,
    indexes: &[String],
) -> Result<(), ProjectionError> {
    if !indexes.is_empty() {
        client.batch_execute(&indexes.join(";\n")).await?;
    }
    Ok(())
}

/// Creates the table (constraints, B-tree indexes, partitions) and returns the DDL of its
/// GIN indexes.
async fn clone_table(
    client: &Client,
    schema: &str,
    table: &str,
) -> Result<Vec<String>, ProjectionError> {
    let row = client
        .query_opt(
            "SELECT c.oid, c.relkind = 'p', coalesce(pg_get_partkeydef(c.oid), '')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relname = $1",
            &[&table],
        )
        .await?
        .ok_or_else(|| ProjectionError::Corrupt {
            view: "replay",
            reason: format!("table public.{table} does not exist: is the database migrated?"),
        })?;
    let oid: u32 = row.get(0);
    let partitioned: bool = row.get(1);
    let partkey: String = row.get(2);
    let live = format!("public.{}", ident(table));
    let shadow = format!("{schema}.{}", ident(table));
    let partition_by = if partitioned {
        format!(" PARTITION BY {partkey}")
    } else {
        String::new()
    };
    let mut ddl = vec![format!(
        "CREATE TABLE {shadow} (LIKE {live} INCLUDING DEFAULTS INCLUDING CONSTRAINTS \
         INCLUDING GENERATED INCLUDING IDENTITY INCLUDING STORAGE){partition_by}"
    )];
    let mut indexes = Vec::new();
    for c in client
        .query(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
             WHERE conrelid = $1 AND contype IN ('p', 'u', 'x') ORDER BY conname",
            &[&oid],
        )
        .await?
    {
        let (name, def): (String, String) = (c.get(0), c.get(1));
        ddl.push(format!(
            "ALTER TABLE {shadow} ADD CONSTRAINT {} {def}",
            ident(&name)
        ));
    }
    for i in client
        .query(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
             WHERE i.indrelid = $1
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
             ORDER BY i.indexrelid",
            &[&oid],
        )
        .await?
    {
        let def: String = i.get(0);
        // `CREATE INDEX name ON [ONLY] public.t USING …`: the same index on the shadow table,
        // under the same name (names are per schema). Without ONLY, so partitions get theirs.
        // PostgreSQL prints the name quoted only when it must be.
        let mut moved = def.clone();
        for on in [live.clone(), format!("public.{table}")] {
            moved = moved
                .replacen(&format!(" ON ONLY {on} "), &format!(" ON {shadow} "), 1)
                .replacen(&format!(" ON {on} "), &format!(" ON {shadow} "), 1);
        }
        if moved == def {
            return Err(ProjectionError::Corrupt {
                view: "replay",
                reason: format!("cannot clone index of {table}: {def}"),
            });
        }
        if moved.contains(" USING gin ") {
            indexes.push(moved);
        } else {
            ddl.push(moved);
        }
    }
    for p in partitions_of(client, "public", table).await? {
        let bound: String = client
            .query_one(
                "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND c.relname = $1",
                &[&p],
            )
            .await?
            .get(0);
        ddl.push(format!(
            "CREATE TABLE {schema}.{} PARTITION OF {shadow} {bound}",
            ident(&p)
        ));
    }
    client.batch_execute(&ddl.join(";\n")).await?;
    Ok(indexes)
}

/// The partitions of `schema.table` (none for a plain table).
async fn partitions_of(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
) -> Result<Vec<String>, ProjectionError> {
    let rows = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent
             JOIN pg_namespace n ON n.oid = p.relnamespace
             WHERE n.nspname = $1 AND p.relname = $2
             ORDER BY 1",
            &[&schema, &table],
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.get(0)).collect())
}

/// Inside the caller's transaction (which holds the live checkpoint rows): moves the live
/// tables out to the retired schema and the shadow ones into `public`, and sets the live
/// checkpoints to the shadow's. Every statement is transactional DDL: readers see the old
/// tables or the new ones, never neither.
pub(crate) async fn swap(
    tx: &impl GenericClient,
    projection: &str,
    tables: &[&str],
) -> Result<(), ProjectionError> {
    let shadow = shadow_schema(projection);
    let retired = retired_schema(projection);
    let mut ddl = vec![format!(
        "DROP SCHEMA IF EXISTS {r} CASCADE; CREATE SCHEMA {r}",
        r = ident(&retired)
    )];
    for (from, to) in [("public", retired.as_str()), (shadow.as_str(), "public")] {
        for table in tables {
            // A partition is a table of its own: it moves separately from its parent.
            for p in partitions_of(tx, from, table).await? {
                ddl.push(move_table(from, &p, to));
            }
            ddl.push(move_table(from, table, to));
        }
    }
    tx.batch_execute(&ddl.join(";\n")).await?;
    tx.execute(
        &format!(
            "UPDATE public.checkpoints c SET position = s.position, updated_at = now()
             FROM {}.checkpoints s WHERE c.name = s.name AND c.shard = s.shard",
            ident(&shadow)
        ),
        &[],
    )
    .await?;
    Ok(())
}

fn move_table(from: &str, table: &str, to: &str) -> String {
    format!(
        "ALTER TABLE {}.{} SET SCHEMA {}",
        ident(from),
        ident(table),
        ident(to)
    )
}

/// Drops the rebuild's schemas (after a swap, or to abandon a rebuild).
pub(crate) async fn drop_all(client: &Client, projection: &str) -> Result<(), ProjectionError> {
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE",
            ident(&retired_schema(projection)),
            ident(&shadow_schema(projection))
        ))
        .await?;
    Ok(())
}
