//! The connection pool of a [`SqliteStore`] and the runner that puts every call on
//! tokio's blocking pool.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::Semaphore;

use super::SqliteStore;
use super::sql::ServiceSql;
use crate::store::{StoreError, StoreResult};

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept for reuse; more are opened on demand and closed after use.
const MAX_IDLE: usize = 8;
/// Connections in use at once. SQLite runs one writer at a time anyway; the cap keeps a
/// burst of requests from occupying the whole blocking pool and opening a file each.
const MAX_OPEN: usize = 16;

/// What every clone of a [`SqliteStore`] shares: the file, its idle connections, the cap on
/// connections in use, and the `services` SQL built for the file's schema.
pub(super) struct Inner {
    pub(super) path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    sql: ServiceSql,
}

impl SqliteStore {
    /// Runs `f` on a pooled connection in tokio's blocking pool.
    pub(super) async fn run<T, F>(&self, f: F) -> StoreResult<T>
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
    /// The shared state of a freshly opened store; `conn` becomes the first idle connection.
    pub(super) fn new(path: PathBuf, conn: Connection, sql: ServiceSql) -> Self {
        Inner {
            path,
            idle: Mutex::new(vec![conn]),
            permits: Arc::new(Semaphore::new(MAX_OPEN)),
            sql,
        }
    }

    /// An idle connection, or a new one on the existing file when none is idle.
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

    /// Returns a connection for reuse, unless the idle list is full or it is mid-transaction.
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
pub(super) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The bundled SQLite enables foreign keys by default; the original (Python's sqlite3)
    // runs with them off, and `token.client_id` must not be checked or cascade here either.
    // FULL: a commit is on disk (WAL synced) before the response that reports it is sent.
    conn.execute_batch("PRAGMA foreign_keys = OFF; PRAGMA synchronous = FULL")
}

/// Why opening failed, naming a file that is not an SQLite database as such.
pub(super) fn open_reason(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => format!("not an SQLite database ({e})"),
        _ => e.to_string(),
    }
}

/// A failed call as [`StoreError::Database`], saying so when it gave up waiting for a lock.
pub(super) fn database_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Database(format!(
            "gave up after waiting {} s for a database lock: {e}",
            BUSY_TIMEOUT.as_secs()
        )),
        _ => StoreError::Database(e.to_string()),
    }
}
