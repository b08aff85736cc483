//! Schema creation and additive upgrade of the original Twitcher's PostgreSQL databases
//! (0.5 and 0.6.0 layouts, as their alembic migrations leave them), run once by
//! [`PostgresStore::open`](super::PostgresStore::open). The same rules as for SQLite: a
//! missing table is created, a missing column added (nullable), nothing is ever dropped,
//! renamed or retyped, and `alembic_version` is only written into a new database.

use std::collections::HashSet;

use crate::store::TableSpec;
use tokio_postgres::{Client, GenericClient};

/// The original 0.6.0's alembic head, stamped into new databases.
const ALEMBIC_HEAD: &str = "d9cff565b8db";

/// Any number, as long as it is always the same: upgrades of one database take turns.
const UPGRADE_LOCK: i64 = 0x7477_6974_6368_6572; // "twitcher"

// DDL in the form SQLAlchemy emits for PostgreSQL (`Integer` primary keys become SERIAL,
// `DateTime` a naive TIMESTAMP), with the originals' constraint and index names.

const ALEMBIC_VERSION_DDL: &str = "CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
)";

/// The 0.6.0 `client` table (OAuth2 clients).
const CLIENT_DDL: &str = "CREATE TABLE client (
    client_id VARCHAR(40) NOT NULL,
    client_secret VARCHAR(55) NOT NULL,
    default_scope TEXT,
    _redirect_uris TEXT,
    name VARCHAR(40),
    CONSTRAINT pk_client PRIMARY KEY (client_id)
);
CREATE UNIQUE INDEX ix_client_client_secret ON client (client_secret)";

/// The 0.6.0 `token` table (OAuth2 access tokens).
const TOKEN_DDL: &str = "CREATE TABLE token (
    id SERIAL NOT NULL,
    client_id VARCHAR(40) NOT NULL,
    token_type VARCHAR(40),
    access_token VARCHAR(255),
    refresh_token VARCHAR(255),
    expires TIMESTAMP WITHOUT TIME ZONE,
    scope TEXT,
    CONSTRAINT pk_token PRIMARY KEY (id),
    CONSTRAINT fk_token_client_id_client FOREIGN KEY (client_id)
        REFERENCES client (client_id) ON DELETE CASCADE
)";

/// The 0.6.0 `services` table plus our `public` column (created only for new databases).
const SERVICES_DDL: &str = "CREATE TABLE services (
    id SERIAL NOT NULL,
    url TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT,
    purl TEXT,
    auth TEXT,
    _verify INTEGER,
    public INTEGER,
    CONSTRAINT pk_services PRIMARY KEY (id)
);
CREATE UNIQUE INDEX ix_services_name ON services (name)";

/// The 0.5 `access_tokens` table (XML-RPC tokens), created only when missing.
const ACCESS_TOKENS_DDL: &str = "CREATE TABLE access_tokens (
    id SERIAL NOT NULL,
    token TEXT,
    expires_at INTEGER,
    CONSTRAINT pk_access_tokens PRIMARY KEY (id)
);
CREATE UNIQUE INDEX token_index ON access_tokens (token)";

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
            ("expires", "TIMESTAMP WITHOUT TIME ZONE"),
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

/// Why a database cannot be opened.
#[derive(Debug, thiserror::Error)]
pub(super) enum SchemaError {
    /// The database answered with an error.
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    /// The tables are not a twitcher database's.
    #[error("{0}")]
    Foreign(String),
}

/// Brings the schema (the connection's `search_path` schema) up to what the store needs, in
/// one transaction; returns the verify column(s) of `services`. Running it again on its own
/// result changes nothing.
pub(super) async fn upgrade(client: &mut Client) -> Result<Vec<&'static str>, SchemaError> {
    let tx = client.transaction().await?;
    // Two instances starting at once: the second waits, then finds nothing to do.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&UPGRADE_LOCK])
        .await?;
    let existing = user_tables(&tx).await?;
    let fresh = existing.is_empty();
    if !fresh && !existing.contains("services") {
        return Err(SchemaError::Foreign(
            "it has tables but no `services` table: not a twitcher database".into(),
        ));
    }
    if fresh {
        tx.batch_execute(ALEMBIC_VERSION_DDL).await?;
        tx.execute(
            "INSERT INTO alembic_version (version_num) VALUES ($1)",
            &[&ALEMBIC_HEAD],
        )
        .await?;
    }
    for spec in &TABLES {
        let columns = table_columns(&tx, spec.name).await?;
        if columns.is_empty() {
            tx.batch_execute(spec.ddl).await?;
            continue;
        }
        if let Some(missing) = spec.required.iter().find(|c| !columns.contains(**c)) {
            return Err(SchemaError::Foreign(format!(
                "table `{}` has no `{missing}` column",
                spec.name
            )));
        }
        for (column, decl) in spec.optional {
            if !columns.contains(*column) {
                add_column(&tx, spec.name, column, decl).await?;
            }
        }
    }
    let services = table_columns(&tx, "services").await?;
    let mut verify: Vec<&'static str> = ["verify", "_verify"]
        .into_iter()
        .filter(|c| services.contains(*c))
        .collect();
    if verify.is_empty() {
        add_column(&tx, "services", "_verify", "INTEGER").await?;
        verify.push("_verify");
    }
    tx.commit().await?;
    Ok(verify)
}

/// Names of the tables in the current schema.
async fn user_tables(
    client: &impl GenericClient,
) -> Result<HashSet<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Column names of a table of the current schema; empty when the table does not exist.
async fn table_columns(
    client: &impl GenericClient,
    table: &str,
) -> Result<HashSet<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1",
            &[&table],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Adds a nullable column to an existing table, logging it.
async fn add_column(
    client: &impl GenericClient,
    table: &str,
    column: &str,
    decl: &str,
) -> Result<(), tokio_postgres::Error> {
    // Names and types come from the constants above, never from data.
    tracing::info!(
        table,
        column,
        "adding missing column to the twitcher database"
    );
    client
        .batch_execute(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))
        .await
}
