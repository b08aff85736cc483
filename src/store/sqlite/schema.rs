//! Schema creation and additive upgrade of the original Twitcher databases (0.5 and
//! 0.6.0 layouts), run once by [`SqliteStore::open`](super::SqliteStore::open).

use std::collections::HashSet;

use rusqlite::{Connection, TransactionBehavior};

use super::pool::open_reason;
use crate::store::TableSpec;

/// The original 0.6.0's alembic head, stamped into new databases.
const ALEMBIC_HEAD: &str = "d9cff565b8db";

// DDL in the form SQLAlchemy emits for SQLite, as `alembic upgrade head` of the originals
// leaves it. A table is only created when it is missing, so these never touch existing data.

/// alembic's revision table; new databases are stamped [`ALEMBIC_HEAD`].
const ALEMBIC_VERSION_DDL: &str = concat!(
    "CREATE TABLE alembic_version (\n",
    "\tversion_num VARCHAR(32) NOT NULL, \n",
    "\tCONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n",
    ");",
);

/// The 0.6.0 `client` table (OAuth2 clients).
const CLIENT_DDL: &str = concat!(
    "CREATE TABLE client (\n",
    "\tclient_id VARCHAR(40) NOT NULL, \n",
    "\tclient_secret VARCHAR(55) NOT NULL, \n",
    "\tdefault_scope TEXT, \n",
    "\t_redirect_uris TEXT, \n",
    "\tname VARCHAR(40), \n",
    "\tCONSTRAINT pk_client PRIMARY KEY (client_id)\n",
    ");\n",
    "CREATE UNIQUE INDEX ix_client_client_secret ON client (client_secret);",
);

/// The 0.6.0 `token` table (OAuth2 access tokens).
const TOKEN_DDL: &str = concat!(
    "CREATE TABLE token (\n",
    "\tid INTEGER NOT NULL, \n",
    "\tclient_id VARCHAR(40) NOT NULL, \n",
    "\ttoken_type VARCHAR(40), \n",
    "\taccess_token VARCHAR(255), \n",
    "\trefresh_token VARCHAR(255), \n",
    "\texpires DATETIME, \n",
    "\tscope TEXT, \n",
    "\tCONSTRAINT pk_token PRIMARY KEY (id), \n",
    "\tCONSTRAINT fk_token_client_id_client FOREIGN KEY(client_id) ",
    "REFERENCES client (client_id) ON DELETE CASCADE\n",
    ");",
);

/// The 0.6.0 `services` table plus our `public` column (created only for new databases).
const SERVICES_DDL: &str = concat!(
    "CREATE TABLE services (\n",
    "\tid INTEGER NOT NULL, \n",
    "\turl TEXT NOT NULL, \n",
    "\tname TEXT NOT NULL, \n",
    "\ttype TEXT, \n",
    "\tpurl TEXT, \n",
    "\tauth TEXT, \n",
    "\t_verify INTEGER, \n",
    "\tpublic INTEGER, \n",
    "\tCONSTRAINT pk_services PRIMARY KEY (id)\n",
    ");\n",
    "CREATE UNIQUE INDEX ix_services_name ON services (name);",
);

/// The 0.5 `access_tokens` table (XML-RPC tokens), created only when missing.
const ACCESS_TOKENS_DDL: &str = concat!(
    "CREATE TABLE access_tokens (\n",
    "\tid INTEGER NOT NULL, \n",
    "\ttoken TEXT, \n",
    "\texpires_at INTEGER, \n",
    "\tCONSTRAINT pk_access_tokens PRIMARY KEY (id)\n",
    ");\n",
    "CREATE UNIQUE INDEX token_index ON access_tokens (token);",
);

/// In creation order for a new database (the 0.6.0 head first, then our additions).
const TABLES: [TableSpec; 4] = [
    TableSpec {
        name: "client",
        ddl: CLIENT_DDL,
        required: &["client_id"],
        optional: &[
            ("client_secret", "VARCHAR(55)"),
            ("default_scope", "TEXT"),
            ("_redirect_uris", "TEXT"),
            ("name", "VARCHAR(40)"),
        ],
    },
    TableSpec {
        name: "token",
        ddl: TOKEN_DDL,
        required: &[],
        optional: &[
            ("client_id", "VARCHAR(40)"),
            ("token_type", "VARCHAR(40)"),
            ("access_token", "VARCHAR(255)"),
            ("refresh_token", "VARCHAR(255)"),
            ("expires", "DATETIME"),
            ("scope", "TEXT"),
        ],
    },
    TableSpec {
        name: "services",
        ddl: SERVICES_DDL,
        required: &["id", "name", "url"],
        // `verify`/`_verify` are handled separately: either one will do.
        optional: &[
            ("type", "TEXT"),
            ("purl", "TEXT"),
            ("auth", "TEXT"),
            ("public", "INTEGER"),
        ],
    },
    TableSpec {
        name: "access_tokens",
        ddl: ACCESS_TOKENS_DDL,
        required: &[],
        optional: &[("token", "TEXT"), ("expires_at", "INTEGER")],
    },
];

/// Brings the schema up to what the store needs, in one transaction; returns the verify
/// column(s) of `services`. Running it again on its own result changes nothing.
pub(super) fn upgrade(conn: &mut Connection) -> Result<Vec<&'static str>, String> {
    let sql_err = |e: rusqlite::Error| open_reason(&e);
    // Only read when nothing is missing: a read-only file then still opens.
    if let Some(verify) = up_to_date(conn).map_err(sql_err)? {
        return Ok(verify);
    }
    // IMMEDIATE: two processes starting at once upgrade one after the other.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    let existing = user_tables(&tx).map_err(sql_err)?;
    let fresh = existing.is_empty();
    if !fresh && !existing.contains("services") {
        return Err("it has tables but no `services` table: not a twitcher database".into());
    }
    if fresh {
        tx.execute_batch(ALEMBIC_VERSION_DDL).map_err(sql_err)?;
        tx.execute(
            "INSERT INTO alembic_version (version_num) VALUES (?1)",
            [ALEMBIC_HEAD],
        )
        .map_err(sql_err)?;
    }
    for spec in &TABLES {
        let columns = table_columns(&tx, spec.name).map_err(sql_err)?;
        if columns.is_empty() {
            tx.execute_batch(spec.ddl).map_err(sql_err)?;
            continue;
        }
        if let Some(missing) = spec.required.iter().find(|c| !columns.contains(**c)) {
            return Err(format!("table `{}` has no `{missing}` column", spec.name));
        }
        for (column, decl) in spec.optional {
            if !columns.contains(*column) {
                add_column(&tx, spec.name, column, decl).map_err(sql_err)?;
            }
        }
    }
    let services = table_columns(&tx, "services").map_err(sql_err)?;
    let mut verify: Vec<&'static str> = ["verify", "_verify"]
        .into_iter()
        .filter(|c| services.contains(*c))
        .collect();
    if verify.is_empty() {
        add_column(&tx, "services", "_verify", "INTEGER").map_err(sql_err)?;
        verify.push("_verify");
    }
    tx.commit().map_err(sql_err)?;
    Ok(verify)
}

/// The verify column(s) of `services` when every table and column [`upgrade`] would
/// bring is there already; `None` when anything is missing or wrong (then [`upgrade`]
/// adds it or says what is wrong).
fn up_to_date(conn: &Connection) -> rusqlite::Result<Option<Vec<&'static str>>> {
    for spec in &TABLES {
        let columns = table_columns(conn, spec.name)?;
        let complete = !columns.is_empty()
            && spec.required.iter().all(|c| columns.contains(*c))
            && spec.optional.iter().all(|(c, _)| columns.contains(*c));
        if !complete {
            return Ok(None);
        }
    }
    let services = table_columns(conn, "services")?;
    let verify: Vec<&'static str> = ["verify", "_verify"]
        .into_iter()
        .filter(|c| services.contains(*c))
        .collect();
    Ok((!verify.is_empty()).then_some(verify))
}

/// Names of the tables in the file, SQLite's internal ones left out.
fn user_tables(conn: &Connection) -> rusqlite::Result<HashSet<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )?;
    let names = stmt.query_map([], |row| row.get(0))?;
    names.collect()
}

/// Column names of a table; empty when the table does not exist.
fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<HashSet<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let names = stmt.query_map([table], |row| row.get(0))?;
    names.collect()
}

/// Adds a nullable column to an existing table, logging it.
fn add_column(conn: &Connection, table: &str, column: &str, decl: &str) -> rusqlite::Result<()> {
    // Names and types come from the constants above, never from data.
    tracing::info!(
        table,
        column,
        "adding missing column to the twitcher database"
    );
    conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))
}
