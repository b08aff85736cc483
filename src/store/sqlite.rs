//! SQLite [`Store`]: the default backend, on the same database file the original Python
//! Twitcher used.
//!
//! [`SqliteStore::open`] accepts three starting points and upgrades them *additively*:
//! a database of the 0.5 series (alembic revision `d39766e64a84`), one of 0.6.0 (head
//! `d9cff565b8db`), or a new/empty file. Tables and columns are only ever added, never
//! dropped, renamed or retyped, and `alembic_version` is never changed, so the original
//! release that wrote a database still starts on it afterwards. After opening, every
//! database has:
//!
//! - `services` with at least `id`, `name`, `url`, `type`, `purl`, `auth`, `public` and
//!   one of `verify` (0.5) / `_verify` (0.6): read from whichever exists, written to all;
//! - `access_tokens` (0.5 layout, XML-RPC tokens, `expires_at` in epoch seconds);
//! - `client` and `token` (0.6 layouts, OAuth2; `token.expires` is SQLAlchemy's naive-UTC
//!   `DATETIME` text `YYYY-MM-DD HH:MM:SS.ffffff`).
//!
//! A new database gets the 0.6.0 head schema plus `services.public` and `access_tokens`,
//! stamped `d9cff565b8db`, so the original 0.6.0 also starts on it.
//!
//! NULL values read as the defaults of [`Service::new`] (type `WPS`, purl empty, auth
//! `token`, public false, verify true); other NULL text reads as empty, a NULL or unreadable
//! expiry as the epoch (already expired).
//!
//! Every SQLite call runs on tokio's blocking pool, on a connection taken from a small
//! pool. The journal is WAL and each connection waits up to 5 s for a lock, so concurrent
//! requests queue instead of failing with "database is locked".

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use tokio::sync::Semaphore;

use super::{AccessToken, OAuthClient, OAuthToken, Service, Store, StoreError, StoreResult};

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept for reuse; more are opened on demand and closed after use.
const MAX_IDLE: usize = 8;
/// Connections in use at once. SQLite runs one writer at a time anyway; the cap keeps a
/// burst of requests from occupying the whole blocking pool and opening a file each.
const MAX_OPEN: usize = 16;
/// The original 0.6.0's alembic head, stamped into new databases.
const ALEMBIC_HEAD: &str = "d9cff565b8db";

// DDL in the form SQLAlchemy emits for SQLite, as `alembic upgrade head` of the originals
// leaves it. A table is only created when it is missing, so these never touch existing data.

const ALEMBIC_VERSION_DDL: &str = concat!(
    "CREATE TABLE alembic_version (\n",
    "\tversion_num VARCHAR(32) NOT NULL, \n",
    "\tCONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n",
    ");",
);

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

const ACCESS_TOKENS_DDL: &str = concat!(
    "CREATE TABLE access_tokens (\n",
    "\tid INTEGER NOT NULL, \n",
    "\ttoken TEXT, \n",
    "\texpires_at INTEGER, \n",
    "\tCONSTRAINT pk_access_tokens PRIMARY KEY (id)\n",
    ");\n",
    "CREATE UNIQUE INDEX token_index ON access_tokens (token);",
);

/// How a table is brought up to what we need: created whole when missing, else the
/// `optional` columns are added (nullable, so existing rows just read NULL).
struct TableSpec {
    name: &'static str,
    ddl: &'static str,
    /// Columns without which the table cannot be one of ours: refuse to open.
    required: &'static [&'static str],
    /// Columns added with `ALTER TABLE … ADD COLUMN` when missing.
    optional: &'static [(&'static str, &'static str)],
}

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

/// A [`Store`] on an SQLite file, shared cheaply (`Arc` inside).
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    sql: ServiceSql,
}

/// `services` statements, built once at open time for the verify column(s) the file has.
struct ServiceSql {
    by_name: String,
    by_url: String,
    list: String,
    insert: String,
    update: String,
}

impl ServiceSql {
    fn new(verify_columns: &[&str]) -> Self {
        // Both columns only exist in a hand-made database; prefer the 0.6 one when set.
        let verify_read = match verify_columns {
            [single] => (*single).to_owned(),
            _ => "COALESCE(_verify, verify)".to_owned(),
        };
        let select =
            format!("SELECT name, url, type, purl, auth, public, {verify_read} FROM services");
        let insert_columns: String = verify_columns.iter().map(|c| format!(", {c}")).collect();
        let insert_values = ", ?7".repeat(verify_columns.len());
        let update_sets: String = verify_columns
            .iter()
            .map(|c| format!(", {c} = ?7"))
            .collect();
        ServiceSql {
            // `id` is the rowid alias in every twitcher schema: ordering by it is insertion order.
            by_name: format!("{select} WHERE name = ?1 ORDER BY id LIMIT 1"),
            by_url: format!("{select} WHERE url = ?1 ORDER BY id LIMIT 1"),
            list: format!("{select} ORDER BY id"),
            insert: format!(
                "INSERT INTO services (name, url, type, purl, auth, public{insert_columns}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6{insert_values})"
            ),
            update: format!(
                "UPDATE services SET url = ?2, type = ?3, purl = ?4, auth = ?5, public = ?6\
                 {update_sets} WHERE name = ?1"
            ),
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) and upgrades the database file.
    ///
    /// Synchronous: meant for startup, before the server accepts requests. Fails with
    /// [`StoreError::Open`] when the file cannot be opened, is not an SQLite database, or is
    /// not a twitcher database (tables but no `services`, or `services` lacking `name`/`url`).
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        let fail = |reason: String| StoreError::Open {
            location: path.display().to_string(),
            reason,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(|e| fail(e.to_string()))?;
        configure(&conn).map_err(|e| fail(open_reason(&e)))?;
        // Before switching the journal: a file we refuse is left exactly as it was.
        let verify_columns = upgrade(&mut conn).map_err(fail)?;
        // WAL lets readers run beside the one writer; the mode is stored in the file, so the
        // pool's later connections inherit it. Without it everything still works, only slower.
        match conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get::<_, String>(0)) {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => {}
            Ok(mode) => {
                tracing::warn!(path = %path.display(), %mode, "SQLite kept its journal mode instead of WAL")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot switch SQLite to WAL")
            }
        }
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                idle: Mutex::new(vec![conn]),
                permits: Arc::new(Semaphore::new(MAX_OPEN)),
                sql: ServiceSql::new(&verify_columns),
            }),
        })
    }

    /// Runs `f` on a pooled connection in tokio's blocking pool.
    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &ServiceSql) -> rusqlite::Result<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Database("connection pool closed".into()))?;
        let inner = Arc::clone(&self.inner);
        let joined = tokio::task::spawn_blocking(move || {
            // Held by the blocking task, so a cancelled caller does not free the slot early.
            let _permit = permit;
            let mut conn = inner.checkout()?;
            let result = f(&mut conn, &inner.sql);
            inner.checkin(conn);
            result
        })
        .await;
        match joined {
            Ok(result) => result.map_err(database_error),
            Err(e) => Err(StoreError::Database(format!("database task failed: {e}"))),
        }
    }
}

impl Inner {
    fn checkout(&self) -> rusqlite::Result<Connection> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => {
                // No CREATE flag: if the file vanished, fail instead of starting an empty registry.
                let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(&self.path, flags)?;
                configure(&conn)?;
                Ok(conn)
            }
        }
    }

    fn checkin(&self, conn: Connection) {
        // A connection still inside a transaction would keep its locks: close it instead.
        if !conn.is_autocommit() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// Per-connection settings (not stored in the file).
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The bundled SQLite enables foreign keys by default; the original (Python's sqlite3)
    // runs with them off, and `token.client_id` must not be checked or cascade here either.
    // FULL: a commit is on disk (WAL synced) before the response that reports it is sent.
    conn.execute_batch("PRAGMA foreign_keys = OFF; PRAGMA synchronous = FULL")
}

fn open_reason(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => format!("not an SQLite database ({e})"),
        _ => e.to_string(),
    }
}

fn database_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Database(format!(
            "gave up after waiting {} s for a database lock: {e}",
            BUSY_TIMEOUT.as_secs()
        )),
        _ => StoreError::Database(e.to_string()),
    }
}

/// Brings the schema up to what this module needs, in one transaction; returns the verify
/// column(s) of `services`. Running it again on its own result changes nothing.
fn upgrade(conn: &mut Connection) -> Result<Vec<&'static str>, String> {
    let sql_err = |e: rusqlite::Error| open_reason(&e);
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

fn add_column(conn: &Connection, table: &str, column: &str, decl: &str) -> rusqlite::Result<()> {
    // Names and types come from the constants above, never from data.
    tracing::info!(
        table,
        column,
        "adding missing column to the twitcher database"
    );
    conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))
}

// ---- reading rows leniently: SQLite columns hold whatever was written into them ----

fn text(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<String>> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Null => None,
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
    })
}

/// A boolean stored as 0/1 (or, leniently, as text read like Pyramid's `asbool`).
fn flag(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<bool>> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i != 0),
        ValueRef::Real(f) => Some(f != 0.0),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            let value = String::from_utf8_lossy(bytes).trim().to_ascii_lowercase();
            Some(matches!(
                value.as_str(),
                "true" | "yes" | "on" | "y" | "t" | "1"
            ))
        }
    })
}

/// Epoch seconds from an INTEGER column (or a DATETIME text, for `token.expires`).
fn epoch(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<i64>> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i),
        // `as` saturates; fractions of a second do not matter for expiry.
        ValueRef::Real(f) => Some(f as i64),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            let value = String::from_utf8_lossy(bytes);
            let value = value.trim();
            value.parse().ok().or_else(|| parse_datetime(value))
        }
    })
}

fn service_from_row(row: &Row<'_>) -> rusqlite::Result<Service> {
    let defaults = Service::new("", "");
    Ok(Service {
        name: text(row, 0)?.unwrap_or_default(),
        url: text(row, 1)?.unwrap_or_default(),
        service_type: text(row, 2)?.unwrap_or(defaults.service_type),
        purl: text(row, 3)?.unwrap_or(defaults.purl),
        auth: text(row, 4)?.unwrap_or(defaults.auth),
        public: flag(row, 5)?.unwrap_or(defaults.public),
        verify: flag(row, 6)?.unwrap_or(defaults.verify),
    })
}

fn expiry_or_expired(value: Option<i64>, what: &str) -> i64 {
    value.unwrap_or_else(|| {
        tracing::warn!(
            what,
            "missing or unreadable expiry in the database; treating the token as expired"
        );
        0
    })
}

// ---- SQLAlchemy's naive-UTC DATETIME text ↔ epoch seconds, in integer arithmetic ----

const SECONDS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12; // March = 0 … February = 11
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` as SQLAlchemy writes it. Clamped to Python's `datetime`
/// range (years 1–9999) so the original can always read it back.
fn format_datetime(epoch: i64) -> String {
    let min = days_from_civil(1, 1, 1) * SECONDS_PER_DAY;
    let max = days_from_civil(9999, 12, 31) * SECONDS_PER_DAY + SECONDS_PER_DAY - 1;
    let epoch = epoch.clamp(min, max);
    let (year, month, day) = civil_from_days(epoch.div_euclid(SECONDS_PER_DAY));
    let secs = epoch.rem_euclid(SECONDS_PER_DAY);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.000000",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Reads `YYYY-MM-DD[ HH:MM[:SS[.f…]]]` (also with `T`) as UTC; the fraction is dropped,
/// which floors to whole seconds. `None` for anything else.
fn parse_datetime(text: &str) -> Option<i64> {
    fn number(part: &str, max_digits: usize) -> Option<i64> {
        let ok = !part.is_empty()
            && part.len() <= max_digits
            && part.bytes().all(|b| b.is_ascii_digit());
        if ok { part.parse().ok() } else { None }
    }
    let (date, time) = match text.split_once([' ', 'T']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut date_parts = date.split('-');
    let year = number(date_parts.next()?, 4)?;
    let month = number(date_parts.next()?, 2)?;
    let day = number(date_parts.next()?, 2)?;
    if date_parts.next().is_some()
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
    {
        return None;
    }
    let mut seconds = 0;
    if let Some(time) = time {
        let (clock, fraction) = match time.split_once('.') {
            Some((clock, fraction)) => (clock, Some(fraction)),
            None => (time, None),
        };
        if let Some(fraction) = fraction {
            number(fraction, 9)?;
        }
        let mut clock_parts = clock.split(':');
        let hour = number(clock_parts.next()?, 2)?;
        let minute = number(clock_parts.next()?, 2)?;
        let second = match clock_parts.next() {
            Some(part) => number(part, 2)?,
            None => 0,
        };
        if clock_parts.next().is_some() || hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        seconds = hour * 3600 + minute * 60 + second;
    }
    Some(days_from_civil(year, month, day) * SECONDS_PER_DAY + seconds)
}

/// Update-then-insert in one IMMEDIATE transaction: IMMEDIATE takes the write lock up front,
/// so the busy timeout applies (a deferred read-then-write could fail at once as "locked").
fn upsert(
    conn: &mut Connection,
    update: &str,
    insert: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let updated = tx.prepare_cached(update)?.execute(params)?;
    if updated == 0 {
        tx.prepare_cached(insert)?.execute(params)?;
    }
    tx.commit()
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.run(|conn, _| conn.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }

    async fn service_by_name(&self, name: &str) -> StoreResult<Option<Service>> {
        let name = name.to_owned();
        self.run(move |conn, sql| {
            conn.prepare_cached(&sql.by_name)?
                .query_row([name], service_from_row)
                .optional()
        })
        .await
    }

    async fn service_by_url(&self, url: &str) -> StoreResult<Option<Service>> {
        let url = url.to_owned();
        self.run(move |conn, sql| {
            conn.prepare_cached(&sql.by_url)?
                .query_row([url], service_from_row)
                .optional()
        })
        .await
    }

    async fn list_services(&self) -> StoreResult<Vec<Service>> {
        self.run(|conn, sql| {
            let mut stmt = conn.prepare_cached(&sql.list)?;
            let rows = stmt.query_map([], service_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn save_service(&self, service: &Service) -> StoreResult<()> {
        let s = service.clone();
        self.run(move |conn, sql| {
            // Updating by name keeps the row's id, hence its place in the listing.
            upsert(
                conn,
                &sql.update,
                &sql.insert,
                rusqlite::params![
                    s.name,
                    s.url,
                    s.service_type,
                    s.purl,
                    s.auth,
                    s.public,
                    s.verify
                ],
            )
        })
        .await
    }

    async fn delete_service(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_owned();
        self.run(move |conn, _| {
            let deleted = conn
                .prepare_cached("DELETE FROM services WHERE name = ?1")?
                .execute([name])?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn clear_services(&self) -> StoreResult<()> {
        self.run(|conn, _| conn.execute("DELETE FROM services", []).map(drop))
            .await
    }

    async fn save_access_token(&self, token: &AccessToken) -> StoreResult<()> {
        let token = token.clone();
        self.run(move |conn, _| {
            upsert(
                conn,
                "UPDATE access_tokens SET expires_at = ?2 WHERE token = ?1",
                "INSERT INTO access_tokens (token, expires_at) VALUES (?1, ?2)",
                rusqlite::params![token.token, token.expires_at],
            )
        })
        .await
    }

    async fn access_token(&self, token: &str) -> StoreResult<Option<AccessToken>> {
        let token = token.to_owned();
        self.run(move |conn, _| {
            conn.prepare_cached(
                "SELECT token, expires_at FROM access_tokens WHERE token = ?1 LIMIT 1",
            )?
            .query_row([token], |row| {
                Ok(AccessToken {
                    token: text(row, 0)?.unwrap_or_default(),
                    expires_at: expiry_or_expired(epoch(row, 1)?, "access_tokens.expires_at"),
                })
            })
            .optional()
        })
        .await
    }

    async fn delete_access_token(&self, token: &str) -> StoreResult<bool> {
        let token = token.to_owned();
        self.run(move |conn, _| {
            let deleted = conn
                .prepare_cached("DELETE FROM access_tokens WHERE token = ?1")?
                .execute([token])?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn clear_access_tokens(&self) -> StoreResult<()> {
        self.run(|conn, _| conn.execute("DELETE FROM access_tokens", []).map(drop))
            .await
    }

    async fn save_client(&self, client: &OAuthClient) -> StoreResult<()> {
        let c = client.clone();
        self.run(move |conn, _| {
            upsert(
                conn,
                "UPDATE client SET client_secret = ?2, name = ?3, _redirect_uris = ?4, \
                 default_scope = ?5 WHERE client_id = ?1",
                "INSERT INTO client (client_id, client_secret, name, _redirect_uris, default_scope) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![c.client_id, c.client_secret, c.name, c.redirect_uris, c.default_scope],
            )
        })
        .await
    }

    async fn client(&self, client_id: &str) -> StoreResult<Option<OAuthClient>> {
        let client_id = client_id.to_owned();
        self.run(move |conn, _| {
            conn.prepare_cached(
                "SELECT client_id, client_secret, name, _redirect_uris, default_scope \
                 FROM client WHERE client_id = ?1 LIMIT 1",
            )?
            .query_row([client_id], |row| {
                Ok(OAuthClient {
                    client_id: text(row, 0)?.unwrap_or_default(),
                    client_secret: text(row, 1)?.unwrap_or_default(),
                    name: text(row, 2)?.unwrap_or_default(),
                    redirect_uris: text(row, 3)?.unwrap_or_default(),
                    default_scope: text(row, 4)?.unwrap_or_default(),
                })
            })
            .optional()
        })
        .await
    }

    async fn save_oauth_token(&self, token: &OAuthToken) -> StoreResult<()> {
        let t = token.clone();
        let expires = format_datetime(t.expires_at);
        self.run(move |conn, _| {
            // 0.6.0 put no UNIQUE on `access_token`: the update keeps it unique for us.
            upsert(
                conn,
                "UPDATE token SET client_id = ?2, token_type = 'Bearer', expires = ?3, scope = ?4 \
                 WHERE access_token = ?1",
                "INSERT INTO token (client_id, token_type, access_token, refresh_token, expires, scope) \
                 VALUES (?2, 'Bearer', ?1, NULL, ?3, ?4)",
                rusqlite::params![t.access_token, t.client_id, expires, t.scope],
            )
        })
        .await
    }

    async fn oauth_token(&self, access_token: &str) -> StoreResult<Option<OAuthToken>> {
        let access_token = access_token.to_owned();
        self.run(move |conn, _| {
            conn.prepare_cached(
                "SELECT access_token, client_id, scope, expires FROM token \
                 WHERE access_token = ?1 LIMIT 1",
            )?
            .query_row([access_token], |row| {
                Ok(OAuthToken {
                    access_token: text(row, 0)?.unwrap_or_default(),
                    client_id: text(row, 1)?.unwrap_or_default(),
                    scope: text(row, 2)?.unwrap_or_default(),
                    expires_at: expiry_or_expired(epoch(row, 3)?, "token.expires"),
                })
            })
            .optional()
        })
        .await
    }

    async fn delete_oauth_token(&self, access_token: &str) -> StoreResult<bool> {
        let access_token = access_token.to_owned();
        self.run(move |conn, _| {
            let deleted = conn
                .prepare_cached("DELETE FROM token WHERE access_token = ?1")?
                .execute([access_token])?;
            Ok(deleted > 0)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::mpsc;
    use std::time::Instant;

    use tempfile::TempDir;

    use super::super::memory::MemoryStore;
    use super::*;

    const T05_SCHEMA: &str = include_str!("../../fixtures/db/t05-d39766e64a84.sql");
    const T05_DATA: &str = include_str!("../../fixtures/db/t05-d39766e64a84-data.sql");
    const T06_SCHEMA: &str = include_str!("../../fixtures/db/t06-d9cff565b8db.sql");
    const T06_DATA: &str = include_str!("../../fixtures/db/t06-d9cff565b8db-data.sql");

    /// A database file built from fixture scripts, as the original would have left it.
    fn db_from(dir: &TempDir, scripts: &[&str]) -> PathBuf {
        let path = dir.path().join("twitcher.sqlite");
        let conn = Connection::open(&path).unwrap();
        for script in scripts {
            conn.execute_batch(script).unwrap();
        }
        path
    }

    /// A plain connection, configured like the original's (Python's sqlite3: no foreign keys).
    fn raw(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        configure(&conn).unwrap();
        conn
    }

    #[allow(clippy::too_many_arguments)]
    fn svc(
        name: &str,
        url: &str,
        kind: &str,
        purl: &str,
        public: bool,
        auth: &str,
        verify: bool,
    ) -> Service {
        Service {
            name: name.into(),
            url: url.into(),
            service_type: kind.into(),
            purl: purl.into(),
            public,
            auth: auth.into(),
            verify,
        }
    }

    /// What the original relies on: every object with its SQL, every table's columns in
    /// order, the alembic revision; plus SQLite's schema counter to detect any change.
    #[derive(Debug, PartialEq)]
    struct Schema {
        objects: BTreeMap<(String, String), Option<String>>,
        columns: BTreeMap<String, Vec<(String, String, bool, i64)>>,
        alembic: Vec<String>,
        schema_version: i64,
    }

    fn schema(path: &Path) -> Schema {
        let conn = raw(path);
        let mut stmt = conn
            .prepare("SELECT type, name, sql FROM sqlite_master")
            .unwrap();
        let objects: BTreeMap<(String, String), Option<String>> = stmt
            .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut columns = BTreeMap::new();
        for (kind, name) in objects.keys() {
            if kind == "table" {
                let mut stmt = conn
                    .prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid")
                    .unwrap();
                let cols = stmt
                    .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                columns.insert(name.clone(), cols);
            }
        }
        let alembic = if columns.contains_key("alembic_version") {
            let mut stmt = conn
                .prepare("SELECT version_num FROM alembic_version")
                .unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        } else {
            Vec::new()
        };
        let schema_version = conn
            .query_row("PRAGMA schema_version", [], |r| r.get(0))
            .unwrap();
        Schema {
            objects,
            columns,
            alembic,
            schema_version,
        }
    }

    /// `after` still has everything of `before`: same indexes, every table with its columns
    /// at the same positions and with the same types and constraints, same alembic revision.
    fn assert_preserved(before: &Schema, after: &Schema) {
        for ((kind, name), sql) in &before.objects {
            let now = after.objects.get(&(kind.clone(), name.clone()));
            assert!(now.is_some(), "{kind} {name} disappeared");
            if kind == "index" {
                assert_eq!(now, Some(sql), "index {name} changed");
            }
        }
        for (table, cols) in &before.columns {
            let now = &after.columns[table];
            assert!(now.len() >= cols.len(), "{table} lost columns");
            assert_eq!(&now[..cols.len()], &cols[..], "{table} columns changed");
        }
        assert_eq!(before.alembic, after.alembic);
    }

    fn names(services: &[Service]) -> Vec<&str> {
        services.iter().map(|s| s.name.as_str()).collect()
    }

    #[tokio::test]
    async fn new_database_gets_the_documented_schema() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("new.sqlite");
        let store = SqliteStore::open(&path).unwrap();
        store.ping().await.unwrap();
        let got = schema(&path);

        let objects: Vec<(&str, &str)> = got
            .objects
            .keys()
            .map(|(k, n)| (k.as_str(), n.as_str()))
            .collect();
        assert_eq!(
            objects,
            [
                ("index", "ix_client_client_secret"),
                ("index", "ix_services_name"),
                ("index", "sqlite_autoindex_alembic_version_1"),
                ("index", "sqlite_autoindex_client_1"),
                ("index", "token_index"),
                ("table", "access_tokens"),
                ("table", "alembic_version"),
                ("table", "client"),
                ("table", "services"),
                ("table", "token"),
            ]
        );
        let column_names = |table: &str| -> Vec<String> {
            got.columns[table].iter().map(|c| c.0.clone()).collect()
        };
        assert_eq!(
            column_names("services"),
            [
                "id", "url", "name", "type", "purl", "auth", "_verify", "public"
            ]
        );
        assert_eq!(
            column_names("client"),
            [
                "client_id",
                "client_secret",
                "default_scope",
                "_redirect_uris",
                "name"
            ]
        );
        assert_eq!(
            column_names("token"),
            [
                "id",
                "client_id",
                "token_type",
                "access_token",
                "refresh_token",
                "expires",
                "scope"
            ]
        );
        assert_eq!(column_names("access_tokens"), ["id", "token", "expires_at"]);
        assert_eq!(got.alembic, ["d9cff565b8db"]);

        // Everything the original 0.6.0 finds in its own database is there, in the same form.
        let reference = TempDir::new().unwrap();
        let t06 = schema(&db_from(&reference, &[T06_SCHEMA]));
        assert_preserved(&t06, &got);
        // … and the 0.5 token table is exactly the original's.
        let reference = TempDir::new().unwrap();
        let t05 = schema(&db_from(&reference, &[T05_SCHEMA]));
        let key = ("table".to_owned(), "access_tokens".to_owned());
        assert_eq!(got.objects[&key], t05.objects[&key]);

        let mode: String = raw(&path)
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn t05_database_opens_with_nothing_lost() {
        let dir = TempDir::new().unwrap();
        let path = db_from(&dir, &[T05_SCHEMA, T05_DATA]);
        // A row with NULLs, as a hand-edited or older database may have.
        raw(&path)
            .execute(
                "INSERT INTO services (id, url, name) VALUES (6, 'http://h/wps', 'nulls')",
                [],
            )
            .unwrap();
        let before = schema(&path);
        let store = SqliteStore::open(&path).unwrap();

        let emu = "http://127.0.0.1:15056/wps";
        assert_eq!(
            store.list_services().await.unwrap(),
            [
                svc("emu", emu, "wps", "", false, "token", true),
                svc("emu_public", emu, "wps", "", true, "token", true),
                svc("emu_cert", emu, "wps", "", false, "cert", true),
                svc(
                    "emu_purl",
                    emu,
                    "wps",
                    "https://example.org/ows/emu",
                    false,
                    "token",
                    true
                ),
                svc(
                    "down_wms",
                    "http://127.0.0.1:1/wms",
                    "wms",
                    "",
                    false,
                    "token",
                    false
                ),
                Service::new("nulls", "http://h/wps"),
            ]
        );
        assert_eq!(
            store.service_by_url(emu).await.unwrap().unwrap().name,
            "emu"
        );
        assert_eq!(
            store
                .access_token("3f9c2a7d41e84b0f9d6a5c1e8b7f2d40")
                .await
                .unwrap(),
            Some(AccessToken {
                token: "3f9c2a7d41e84b0f9d6a5c1e8b7f2d40".into(),
                expires_at: 1_795_900_155
            })
        );

        // Writes of every kind.
        store
            .save_service(&svc("emu", emu, "wps", "", true, "token", false))
            .await
            .unwrap();
        store
            .save_service(&Service::new("added", "http://x/wps"))
            .await
            .unwrap();
        assert!(store.delete_service("emu_cert").await.unwrap());
        store
            .save_access_token(&AccessToken {
                token: "new".into(),
                expires_at: 7,
            })
            .await
            .unwrap();
        assert!(
            store
                .delete_access_token("b41d8e6c0a2f47e39c5d1a8f6e3b2c71")
                .await
                .unwrap()
        );
        let client = OAuthClient {
            client_id: "cid".into(),
            client_secret: "secret".into(),
            name: "app".into(),
            redirect_uris: String::new(),
            default_scope: "compute".into(),
        };
        store.save_client(&client).await.unwrap();
        let token = OAuthToken {
            access_token: "bearer".into(),
            client_id: "cid".into(),
            scope: "compute".into(),
            expires_at: 1_800_000_000,
        };
        store.save_oauth_token(&token).await.unwrap();
        assert_eq!(store.client("cid").await.unwrap(), Some(client));
        assert_eq!(store.oauth_token("bearer").await.unwrap(), Some(token));
        assert_eq!(
            names(&store.list_services().await.unwrap()),
            [
                "emu",
                "emu_public",
                "emu_purl",
                "down_wms",
                "nulls",
                "added"
            ]
        );

        let after = schema(&path);
        assert_preserved(&before, &after);
        // The 0.5 tables needed nothing: their definitions are untouched.
        for ((kind, name), sql) in &before.objects {
            assert_eq!(after.objects.get(&(kind.clone(), name.clone())), Some(sql));
        }
        assert_eq!(after.alembic, ["d39766e64a84"]);

        // The values sit where 0.5 reads them, and 0.5's own writes still work and are seen.
        let conn = raw(&path);
        let (public, verify): (i64, i64) = conn
            .query_row(
                "SELECT public, verify FROM services WHERE name = 'emu'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((public, verify), (1, 0));
        conn.execute(
            "INSERT INTO services (url, name, type, purl, public, verify, auth) \
             VALUES ('http://o/wps', 'by_original', 'WPS', '', 1, 0, 'token')",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO access_tokens (token, expires_at) VALUES ('orig', 42)",
            [],
        )
        .unwrap();
        assert_eq!(
            store.service_by_name("by_original").await.unwrap(),
            Some(svc(
                "by_original",
                "http://o/wps",
                "WPS",
                "",
                true,
                "token",
                false
            ))
        );
        assert_eq!(
            store
                .access_token("orig")
                .await
                .unwrap()
                .unwrap()
                .expires_at,
            42
        );
    }

    #[tokio::test]
    async fn t06_database_opens_with_nothing_lost() {
        let dir = TempDir::new().unwrap();
        let path = db_from(&dir, &[T06_SCHEMA, T06_DATA]);
        let before = schema(&path);
        let store = SqliteStore::open(&path).unwrap();

        assert_eq!(
            store.list_services().await.unwrap(),
            [
                svc(
                    "emu",
                    "http://localhost:15060/wps",
                    "wps",
                    "",
                    false,
                    "token",
                    true
                ),
                svc(
                    "opt_service_1",
                    "http://127.0.0.1:15160/h",
                    "wms",
                    "http://public.example/wms",
                    false,
                    "public",
                    false
                ),
                // `_verify` NULL (left by the 0.5 → 0.6 migration) reads as the default.
                svc(
                    "legacy",
                    "http://127.0.0.1:15060/wps",
                    "wps",
                    "",
                    false,
                    "token",
                    true
                ),
            ]
        );
        assert!(
            store
                .service_by_name("opt_service_1")
                .await
                .unwrap()
                .unwrap()
                .is_public()
        );
        assert_eq!(
            store
                .client("f7d5ed37f9ea4eb4a1b9c3b299db1357")
                .await
                .unwrap(),
            Some(OAuthClient {
                client_id: "f7d5ed37f9ea4eb4a1b9c3b299db1357".into(),
                client_secret: "587f2743919d43fe9be37d3d68583e0c".into(),
                name: "myapp".into(),
                redirect_uris: "http://localhost/cb".into(),
                default_scope: "compute".into(),
            })
        );
        assert_eq!(
            store
                .oauth_token("1nsMkEKz9P6viZIQ814FKo17nPBsOy")
                .await
                .unwrap(),
            Some(OAuthToken {
                access_token: "1nsMkEKz9P6viZIQ814FKo17nPBsOy".into(),
                client_id: "f7d5ed37f9ea4eb4a1b9c3b299db1357".into(),
                scope: "compute".into(),
                expires_at: 1_795_900_155,
            })
        );

        store
            .save_service(&svc(
                "emu",
                "http://localhost:15060/wps",
                "wps",
                "",
                true,
                "token",
                false,
            ))
            .await
            .unwrap();
        store
            .save_service(&Service::new("added", "http://x/wps"))
            .await
            .unwrap();
        store
            .save_access_token(&AccessToken {
                token: "xmlrpc".into(),
                expires_at: 9,
            })
            .await
            .unwrap();
        // Foreign keys stay off, as in the original: a token of an unknown client is stored.
        let token = OAuthToken {
            access_token: "fresh".into(),
            client_id: "unknown-client".into(),
            scope: "compute register".into(),
            expires_at: 1_795_900_155,
        };
        store.save_oauth_token(&token).await.unwrap();
        assert_eq!(store.oauth_token("fresh").await.unwrap(), Some(token));
        assert_eq!(
            store
                .access_token("xmlrpc")
                .await
                .unwrap()
                .unwrap()
                .expires_at,
            9
        );
        assert!(
            store
                .delete_oauth_token("1nsMkEKz9P6viZIQ814FKo17nPBsOy")
                .await
                .unwrap()
        );
        assert_eq!(
            store
                .oauth_token("1nsMkEKz9P6viZIQ814FKo17nPBsOy")
                .await
                .unwrap(),
            None
        );

        let after = schema(&path);
        assert_preserved(&before, &after);
        assert_eq!(after.alembic, ["d9cff565b8db"]);
        let services: Vec<&str> = after.columns["services"]
            .iter()
            .map(|c| c.0.as_str())
            .collect();
        assert_eq!(
            services,
            [
                "id", "url", "name", "type", "purl", "auth", "_verify", "public"
            ]
        );
        assert!(after.columns.contains_key("access_tokens"));

        // Stored as 0.6.0 stores and reads it.
        let conn = raw(&path);
        let verify: i64 = conn
            .query_row("SELECT _verify FROM services WHERE name = 'emu'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(verify, 0);
        let row: (String, String, Option<String>, String) = conn
            .query_row(
                "SELECT token_type, expires, refresh_token, scope FROM token WHERE access_token = 'fresh'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            row,
            (
                "Bearer".into(),
                "2026-11-28 21:09:15.000000".into(),
                None,
                "compute register".into()
            )
        );
        // 0.6.0's own insert (no `public`) still works; NULL public reads as false.
        conn.execute(
            "INSERT INTO services (url, name, type, purl, auth, _verify) \
             VALUES ('http://o/wps', 'by_original', 'wps', '', 'token', 1)",
            [],
        )
        .unwrap();
        assert_eq!(
            store.service_by_name("by_original").await.unwrap(),
            Some(svc(
                "by_original",
                "http://o/wps",
                "wps",
                "",
                false,
                "token",
                true
            ))
        );
        assert_eq!(
            names(&store.list_services().await.unwrap()),
            ["emu", "opt_service_1", "legacy", "added", "by_original"]
        );
    }

    #[tokio::test]
    async fn reopening_changes_nothing() {
        for scripts in [
            &[T05_SCHEMA, T05_DATA][..],
            &[T06_SCHEMA, T06_DATA][..],
            &[][..],
        ] {
            let dir = TempDir::new().unwrap();
            let path = db_from(&dir, scripts);
            drop(SqliteStore::open(&path).unwrap());
            let first = schema(&path);
            let store = SqliteStore::open(&path).unwrap();
            store.ping().await.unwrap();
            drop(store);
            assert_eq!(schema(&path), first);
        }
    }

    #[tokio::test]
    async fn every_trait_method() {
        let dir = TempDir::new().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.sqlite")).unwrap();
        store.ping().await.unwrap();

        assert_eq!(store.list_services().await.unwrap(), []);
        let a = svc("a", "http://same/wps", "wps", "", false, "token", true);
        let b = svc(
            "b",
            "http://same/wps",
            "wms",
            "https://p/",
            true,
            "cert",
            false,
        );
        store.save_service(&a).await.unwrap();
        store.save_service(&b).await.unwrap();
        assert_eq!(store.service_by_name("a").await.unwrap(), Some(a.clone()));
        assert_eq!(
            store.service_by_name("A").await.unwrap(),
            None,
            "names are case-sensitive"
        );
        assert_eq!(
            store.service_by_url("http://same/wps").await.unwrap(),
            Some(a.clone())
        );
        assert_eq!(
            store.service_by_url("http://same/wps/").await.unwrap(),
            None
        );
        assert_eq!(store.list_services().await.unwrap(), [a.clone(), b.clone()]);
        assert!(store.delete_service("a").await.unwrap());
        assert!(!store.delete_service("a").await.unwrap());
        assert_eq!(
            store.service_by_url("http://same/wps").await.unwrap(),
            Some(b)
        );
        store.clear_services().await.unwrap();
        assert_eq!(store.list_services().await.unwrap(), []);

        let t = AccessToken {
            token: "tok".into(),
            expires_at: 1_700_000_000,
        };
        store.save_access_token(&t).await.unwrap();
        assert_eq!(store.access_token("tok").await.unwrap(), Some(t));
        let renewed = AccessToken {
            token: "tok".into(),
            expires_at: -5,
        };
        store.save_access_token(&renewed).await.unwrap();
        assert_eq!(store.access_token("tok").await.unwrap(), Some(renewed));
        assert_eq!(store.access_token("TOK").await.unwrap(), None);
        assert!(store.delete_access_token("tok").await.unwrap());
        assert!(!store.delete_access_token("tok").await.unwrap());
        store
            .save_access_token(&AccessToken {
                token: "x".into(),
                expires_at: 1,
            })
            .await
            .unwrap();
        store
            .save_access_token(&AccessToken {
                token: "y".into(),
                expires_at: 2,
            })
            .await
            .unwrap();
        store.clear_access_tokens().await.unwrap();
        assert_eq!(store.access_token("x").await.unwrap(), None);
        assert_eq!(store.access_token("y").await.unwrap(), None);

        let mut client = OAuthClient {
            client_id: "id1".into(),
            client_secret: "s1".into(),
            name: String::new(),
            redirect_uris: "http://a/cb http://b/cb".into(),
            default_scope: "compute register".into(),
        };
        assert_eq!(store.client("id1").await.unwrap(), None);
        store.save_client(&client).await.unwrap();
        assert_eq!(store.client("id1").await.unwrap(), Some(client.clone()));
        client.name = "renamed".into();
        store.save_client(&client).await.unwrap();
        assert_eq!(store.client("id1").await.unwrap(), Some(client));

        let mut token = OAuthToken {
            access_token: "at".into(),
            client_id: "id1".into(),
            scope: "compute".into(),
            expires_at: 1_795_896_555,
        };
        store.save_oauth_token(&token).await.unwrap();
        assert_eq!(store.oauth_token("at").await.unwrap(), Some(token.clone()));
        token.scope = "register".into();
        token.expires_at = 0;
        store.save_oauth_token(&token).await.unwrap();
        assert_eq!(store.oauth_token("at").await.unwrap(), Some(token));
        assert!(store.delete_oauth_token("at").await.unwrap());
        assert!(!store.delete_oauth_token("at").await.unwrap());
        assert_eq!(store.oauth_token("at").await.unwrap(), None);
    }

    #[tokio::test]
    async fn same_answers_as_the_memory_store() {
        let dir = TempDir::new().unwrap();
        let sqlite = SqliteStore::open(&dir.path().join("t.sqlite")).unwrap();
        let memory = MemoryStore::new();
        let stores: [&dyn Store; 2] = [&sqlite, &memory];
        let mut transcripts = Vec::new();
        for store in stores {
            let mut log = Vec::new();
            for (i, name) in ["one", "two", "three", "two", "four", "one"]
                .into_iter()
                .enumerate()
            {
                let mut s = Service::new(name, format!("http://h{}/wps", i % 2));
                s.public = i % 3 == 0;
                store.save_service(&s).await.unwrap();
            }
            log.push(format!("{:?}", store.list_services().await.unwrap()));
            log.push(format!(
                "{:?}",
                store.service_by_url("http://h1/wps").await.unwrap()
            ));
            log.push(format!(
                "{:?}",
                store.delete_service("three").await.unwrap()
            ));
            store
                .save_service(&Service::new("three", "http://h0/wps"))
                .await
                .unwrap();
            log.push(format!("{:?}", store.list_services().await.unwrap()));
            transcripts.push(log);
        }
        assert_eq!(transcripts[0], transcripts[1]);
        assert!(
            transcripts[0][0].contains("\"one\""),
            "{:?}",
            transcripts[0]
        );
    }

    #[tokio::test]
    async fn update_keeps_the_position() {
        let dir = TempDir::new().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.sqlite")).unwrap();
        for name in ["first", "second", "third"] {
            store
                .save_service(&Service::new(name, "http://old/wps"))
                .await
                .unwrap();
        }
        let updated = svc(
            "first",
            "http://new/wps",
            "wms",
            "https://p",
            true,
            "cert",
            false,
        );
        store.save_service(&updated).await.unwrap();
        let listed = store.list_services().await.unwrap();
        assert_eq!(names(&listed), ["first", "second", "third"]);
        assert_eq!(listed[0], updated);
        assert_eq!(
            store
                .service_by_url("http://old/wps")
                .await
                .unwrap()
                .unwrap()
                .name,
            "second"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_never_see_locked() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("busy.sqlite");
        // Two stores on one file behave like two twitcher processes.
        let stores = [
            Arc::new(SqliteStore::open(&path).unwrap()),
            Arc::new(SqliteStore::open(&path).unwrap()),
        ];
        let mut tasks = Vec::new();
        for i in 0..50 {
            let store = Arc::clone(&stores[i % 2]);
            tasks.push(tokio::spawn(async move {
                let name = format!("svc{}", i % 10);
                let mut service = Service::new(name.clone(), format!("http://h/{i}"));
                service.public = i % 2 == 0;
                store.save_service(&service).await?;
                store
                    .save_access_token(&AccessToken {
                        token: format!("t{i}"),
                        expires_at: i as i64,
                    })
                    .await?;
                store
                    .save_oauth_token(&OAuthToken {
                        access_token: format!("o{}", i % 5),
                        client_id: "c".into(),
                        scope: "compute".into(),
                        expires_at: i as i64,
                    })
                    .await?;
                store.list_services().await?;
                let found = store.service_by_name(&name).await?;
                let token = store.access_token(&format!("t{i}")).await?;
                if i % 7 == 0 {
                    store.delete_access_token(&format!("t{i}")).await?;
                }
                Ok::<_, StoreError>((found.is_some(), token.map(|t| t.expires_at)))
            }));
        }
        for (i, task) in tasks.into_iter().enumerate() {
            let (found, expires) = task
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("task {i}: {e}"));
            assert!(found);
            assert_eq!(expires, Some(i as i64));
        }
        let listed = stores[0].list_services().await.unwrap();
        let mut listed_names: Vec<&str> = names(&listed);
        listed_names.sort_unstable();
        assert_eq!(
            listed_names,
            (0..10).map(|i| format!("svc{i}")).collect::<Vec<_>>()
        );
        for i in 0..5 {
            assert!(
                stores[1]
                    .oauth_token(&format!("o{i}"))
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        let rows: i64 = raw(&path)
            .query_row("SELECT count(*) FROM token", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 5, "access_token stays unique without a UNIQUE index");
        assert_eq!(stores[1].access_token("t7").await.unwrap(), None);
        assert!(stores[1].access_token("t8").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn waiting_for_a_lock_does_not_block_the_runtime() {
        // Single-threaded runtime: if the store waited on this thread, nothing else would run.
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("t.sqlite");
        let store = Arc::new(SqliteStore::open(&path).unwrap());
        let (locked_tx, locked_rx) = mpsc::channel();
        let holder = std::thread::spawn({
            let path = path.clone();
            move || {
                let conn = raw(&path);
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                locked_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(1200));
                conn.execute_batch("COMMIT").unwrap();
            }
        });
        locked_rx.recv().unwrap();
        let started = Instant::now();
        let write = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                store
                    .save_service(&Service::new("late", "http://h/wps"))
                    .await
            }
        });
        let mut last = Instant::now();
        let mut longest_gap = Duration::ZERO;
        while !write.is_finished() {
            tokio::task::yield_now().await;
            longest_gap = longest_gap.max(last.elapsed());
            last = Instant::now();
        }
        write.await.unwrap().unwrap();
        holder.join().unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(800),
            "the write waited for the lock"
        );
        assert!(
            longest_gap < Duration::from_millis(600),
            "runtime stalled for {longest_gap:?}"
        );
        assert!(store.service_by_name("late").await.unwrap().is_some());
    }

    #[test]
    fn not_a_database_fails_to_open() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("twitcher.ini");
        std::fs::write(&path, "[app:main]\nuse = egg:pyramid-twitcher\n".repeat(40)).unwrap();
        match SqliteStore::open(&path) {
            Err(StoreError::Open { location, reason }) => {
                assert_eq!(location, path.display().to_string());
                assert!(reason.contains("not an SQLite database"), "{reason}");
            }
            other => panic!("expected an Open error, got {other:?}"),
        }
    }

    #[test]
    fn foreign_schemas_are_refused() {
        let cases = [
            (
                "CREATE TABLE services (id INTEGER PRIMARY KEY, url TEXT);",
                "no `name` column",
            ),
            (
                "CREATE TABLE services (id INTEGER PRIMARY KEY, name TEXT);",
                "no `url` column",
            ),
            (
                "CREATE TABLE users (id INTEGER PRIMARY KEY);",
                "no `services` table",
            ),
        ];
        for (ddl, expected) in cases {
            let dir = TempDir::new().unwrap();
            let path = db_from(&dir, &[ddl]);
            let before = schema(&path);
            match SqliteStore::open(&path) {
                Err(StoreError::Open { reason, .. }) => {
                    assert!(reason.contains(expected), "{reason}")
                }
                other => panic!("expected an Open error for {ddl}, got {other:?}"),
            }
            assert_eq!(
                schema(&path),
                before,
                "a refused database is left as it was"
            );
            let mode: String = raw(&path)
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "delete");
        }
    }

    #[test]
    fn missing_file_in_missing_directory_fails_to_open() {
        let dir = TempDir::new().unwrap();
        let result = SqliteStore::open(&dir.path().join("no/such/dir/t.sqlite"));
        assert!(matches!(result, Err(StoreError::Open { .. })), "{result:?}");
    }

    #[test]
    fn lock_timeouts_become_database_errors() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        match database_error(busy) {
            StoreError::Database(message) => assert!(message.contains("lock"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn datetimes_round_trip() {
        assert_eq!(format_datetime(0), "1970-01-01 00:00:00.000000");
        assert_eq!(format_datetime(-1), "1969-12-31 23:59:59.000000");
        assert_eq!(format_datetime(951_782_400), "2000-02-29 00:00:00.000000");
        assert_eq!(format_datetime(1_795_900_155), "2026-11-28 21:09:15.000000");
        assert_eq!(
            format_datetime(253_402_300_799),
            "9999-12-31 23:59:59.000000"
        );
        assert_eq!(format_datetime(i64::MAX), "9999-12-31 23:59:59.000000");
        assert_eq!(format_datetime(i64::MIN), "0001-01-01 00:00:00.000000");

        assert_eq!(
            parse_datetime("2026-11-28 21:09:15.482913"),
            Some(1_795_900_155)
        );
        assert_eq!(parse_datetime("2026-11-28 21:09:15"), Some(1_795_900_155));
        assert_eq!(parse_datetime("2026-11-28T21:09:15.5"), Some(1_795_900_155));
        assert_eq!(parse_datetime("2026-11-28 21:09"), Some(1_795_900_140));
        assert_eq!(parse_datetime("2026-11-28"), Some(1_795_824_000));
        assert_eq!(parse_datetime("1969-12-31 23:59:59.999999"), Some(-1));
        assert_eq!(parse_datetime("2000-02-29 00:00:00"), Some(951_782_400));
        for bad in [
            "",
            "2026",
            "2026-13-01",
            "2026-02-29",
            "2026-11-31",
            "2026-11-28 24:00:00",
            "2026-11-28 21:60:00",
            "2026-11-28 21:09:15.",
            "2026-11-28 21:09:15.x",
            "+2026-11-28",
            "2026-11-28 21:09:15+00:00",
            "2026-1-1-1",
            "２０２６-11-28",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad:?}");
        }
        let mut epoch = -62_135_596_800; // 0001-01-01
        while epoch < 253_402_300_799 {
            assert_eq!(
                parse_datetime(&format_datetime(epoch)),
                Some(epoch),
                "{epoch}"
            );
            epoch += 7_919_993; // ~92 days, a prime so every time of day comes up
        }
    }

    #[tokio::test]
    async fn unreadable_expiry_counts_as_expired() {
        let dir = TempDir::new().unwrap();
        let path = db_from(&dir, &[T06_SCHEMA]);
        let store = SqliteStore::open(&path).unwrap();
        raw(&path)
            .execute_batch(
                "INSERT INTO token (client_id, access_token, expires) VALUES ('c', 'garbled', 'soon');
                 INSERT INTO token (client_id, access_token, expires) VALUES ('c', 'null', NULL);
                 INSERT INTO access_tokens (token, expires_at) VALUES ('never', NULL);",
            )
            .unwrap();
        assert_eq!(
            store
                .oauth_token("garbled")
                .await
                .unwrap()
                .unwrap()
                .expires_at,
            0
        );
        assert_eq!(store.oauth_token("null").await.unwrap().unwrap().scope, "");
        assert_eq!(
            store.oauth_token("null").await.unwrap().unwrap().expires_at,
            0
        );
        assert_eq!(
            store
                .access_token("never")
                .await
                .unwrap()
                .unwrap()
                .expires_at,
            0
        );
    }
}
