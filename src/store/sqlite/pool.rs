//! The connections of a [`SqliteStore`] and the runner that puts every call on tokio's
//! blocking pool.
//!
//! Reads and writes use separate connections with separate limits: readers (WAL lets them
//! run beside a writer, even beside another process's `BEGIN EXCLUSIVE`) never queue
//! behind writes that wait for a lock. Writes go through one writer connection, one at a
//! time, in the order they came: SQLite runs one writer per file anyway, and its busy
//! handler (a sleep-and-retry loop) is unfair when many connections of one process
//! contend. Every call is bounded by [`LOCK_WAIT`] in all, queueing and locks included,
//! and then fails as [`StoreError::Unavailable`].
//!
//! A connection that failed in a way that can outlive the fault (read-only, I/O error,
//! corruption, a file replaced underneath) is closed, not pooled, and so are the idle ones
//! opened before it (they may share its fault, e.g. hold a replaced file): the next call
//! opens a fresh one, so the store recovers by itself when the fault ends.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, MAIN_DB, OpenFlags, TransactionBehavior};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::SqliteStore;
use super::sql::ServiceSql;
use crate::store::{StoreError, StoreResult};

/// The longest a store call waits before it is answered "temporarily unavailable": for a
/// connection of this process, then for another process's lock (SQLite's busy timeout
/// gets what is left).
pub(super) const LOCK_WAIT: Duration = Duration::from_secs(5);
/// Readers in use at once: bounds the blocking threads and open files a burst may take.
const MAX_READERS: usize = 16;
/// Idle readers kept for reuse; more are opened on demand and closed after use.
const MAX_IDLE_READERS: usize = 8;

/// What a call does to the database, hence which connections it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Reads only: a reader connection (`query_only`).
    Read,
    /// Changes data: the writer connection, inside one IMMEDIATE transaction.
    Write,
}

/// A connection and the pool generation it was opened in.
struct Pooled {
    conn: Connection,
    generation: u64,
}

/// Connections of one kind: the idle ones and the cap on those in use.
struct Lane {
    idle: Mutex<Vec<Pooled>>,
    permits: Arc<Semaphore>,
    max_idle: usize,
}

impl Lane {
    fn new(in_use: usize, max_idle: usize) -> Self {
        Lane {
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(in_use)),
            max_idle,
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Pooled>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, pooled: Pooled) {
        let mut idle = self.idle();
        if idle.len() < self.max_idle {
            idle.push(pooled);
        }
    }
}

/// What every clone of a [`SqliteStore`] shares: the file, its readers and writer, and
/// the `services` SQL built for the file's schema.
pub(super) struct Inner {
    pub(super) path: PathBuf,
    readers: Lane,
    writer: Lane,
    /// Raised when a call broke its connection: older connections are closed, not reused.
    generation: AtomicU64,
    sql: ServiceSql,
}

impl SqliteStore {
    /// Runs `f` on a reader connection in tokio's blocking pool.
    pub(super) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Connection, &ServiceSql) -> rusqlite::Result<T> + Send + 'static,
    {
        self.run(Access::Read, f).await
    }

    /// Runs `f` in one IMMEDIATE transaction on the writer connection, committed before
    /// this returns (so a write that was answered is on disk).
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Connection, &ServiceSql) -> rusqlite::Result<T> + Send + 'static,
    {
        self.run(Access::Write, f).await
    }

    async fn run<T, F>(&self, access: Access, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Connection, &ServiceSql) -> rusqlite::Result<T> + Send + 'static,
    {
        let deadline = Instant::now() + LOCK_WAIT;
        let inner = Arc::clone(&self.inner);
        let permit = tokio::time::timeout_at(
            deadline,
            Arc::clone(&inner.lane(access).permits).acquire_owned(),
        )
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!(
                "no database connection became free within {} s",
                LOCK_WAIT.as_secs()
            ))
        })?
        .map_err(|_| StoreError::Database("connection pool closed".into()))?;
        let joined = tokio::task::spawn_blocking(move || {
            // Held by the blocking task, so a cancelled caller does not free the slot early.
            let _permit = permit;
            let mut pooled = inner.checkout(access)?;
            let mut result = call(&mut pooled.conn, access, deadline, &inner.sql, &f);
            if access == Access::Write && result.as_ref().is_err_and(is_stale) {
                // Rolled back, so safe to run again, once, on a connection opened now.
                inner.discard_idle(pooled);
                pooled = inner.checkout(access)?;
                result = call(&mut pooled.conn, access, deadline, &inner.sql, &f);
            }
            inner.checkin(access, pooled, result.as_ref().err());
            result.map_err(store_error)
        })
        .await;
        joined.unwrap_or_else(|e| Err(StoreError::Database(format!("database task failed: {e}"))))
    }
}

/// `f` on `conn`, waiting for other processes' locks only until `deadline`.
fn call<T>(
    conn: &mut Connection,
    access: Access,
    deadline: Instant,
    sql: &ServiceSql,
    f: &impl Fn(&Connection, &ServiceSql) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.busy_timeout(deadline.saturating_duration_since(Instant::now()))?;
    match access {
        Access::Read => f(conn, sql),
        Access::Write => {
            // IMMEDIATE takes the write lock up front, so the busy timeout applies (a
            // deferred read-then-write could fail at once as "locked").
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx, sql)?;
            tx.commit()?;
            Ok(value)
        }
    }
}

impl Inner {
    /// The shared state of a freshly opened store; `conn` becomes the idle writer unless
    /// the file could only be opened read-only.
    pub(super) fn new(path: PathBuf, conn: Connection, sql: ServiceSql) -> Self {
        let inner = Inner {
            path,
            readers: Lane::new(MAX_READERS, MAX_IDLE_READERS),
            writer: Lane::new(1, 1),
            generation: AtomicU64::new(0),
            sql,
        };
        if !is_read_only(&conn) {
            inner.writer.push(Pooled {
                conn,
                generation: 0,
            });
        }
        inner
    }

    fn lane(&self, access: Access) -> &Lane {
        match access {
            Access::Read => &self.readers,
            Access::Write => &self.writer,
        }
    }

    /// An idle connection, or a new one on the existing file when none is idle.
    fn checkout(&self, access: Access) -> StoreResult<Pooled> {
        if let Some(pooled) = self.lane(access).idle().pop() {
            return Ok(pooled);
        }
        let mut pooled = self.open(access)?;
        if access == Access::Write && is_read_only(&pooled.conn) {
            let protected = std::fs::metadata(&self.path).is_ok_and(|m| m.permissions().readonly());
            if !protected {
                // The file is writable again, but connections opened while it was not keep
                // its `-shm` open read-only, and this process shares one: close them all.
                self.discard_idle(pooled);
                pooled = self.open(access)?;
            }
            if is_read_only(&pooled.conn) {
                // Fail before taking a lock: every write would fail the same way.
                return Err(StoreError::Unavailable(format!(
                    "the database {} is read-only",
                    self.path.display()
                )));
            }
        }
        Ok(pooled)
    }

    /// A new connection on the existing file.
    fn open(&self, access: Access) -> StoreResult<Pooled> {
        // Read before opening: a connection opened during a fault is never newer than it.
        let generation = self.generation.load(Ordering::Acquire);
        if access == Access::Write {
            restore_sidecar_modes(&self.path);
        }
        // No CREATE flag: if the file vanished, fail instead of starting an empty registry.
        // READ_WRITE still opens a write-protected file, read-only.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(store_error)?;
        configure(&conn).map_err(store_error)?;
        if access == Access::Read {
            // A reader must never write, whatever a caller's SQL says.
            conn.pragma_update(None, "query_only", true)
                .map_err(store_error)?;
        }
        Ok(Pooled { conn, generation })
    }

    /// Closes `broken` and every idle connection, and marks those in use as too old to
    /// be pooled again.
    fn discard_idle(&self, broken: Pooled) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        // Closed outside the locks: closing the last connection checkpoints the WAL.
        let stale_readers = std::mem::take(&mut *self.readers.idle());
        let stale_writer = std::mem::take(&mut *self.writer.idle());
        drop((stale_readers, stale_writer, broken));
    }

    /// Returns a connection for reuse, unless the call broke it (then the idle ones go
    /// too), it is older than the last break, it is mid-transaction or enough are idle.
    fn checkin(&self, access: Access, pooled: Pooled, failure: Option<&rusqlite::Error>) {
        if failure.is_some_and(breaks_connection) {
            self.discard_idle(pooled);
            return;
        }
        // A connection still inside a transaction would keep its locks: close it instead.
        if !pooled.conn.is_autocommit()
            || pooled.generation < self.generation.load(Ordering::Acquire)
        {
            return;
        }
        self.lane(access).push(pooled);
    }
}

/// Makes `-wal` and `-shm` writable again when the database file is. SQLite creates them
/// with the file's mode: created while the file was read-only, they stay read-only when it
/// is writable again, and so does every connection that opens them. They are this
/// process's files then (created by its connections), so it may change their mode.
pub(super) fn restore_sidecar_modes(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    const OWNER_WRITE: u32 = 0o200;
    let Ok(file) = std::fs::metadata(path) else {
        return;
    };
    let mode = file.permissions().mode() & 0o777;
    if mode & OWNER_WRITE == 0 {
        return;
    }
    for suffix in ["-wal", "-shm"] {
        let mut sidecar = path.as_os_str().to_owned();
        sidecar.push(suffix);
        let sidecar = PathBuf::from(sidecar);
        let read_only =
            std::fs::metadata(&sidecar).is_ok_and(|m| m.permissions().mode() & OWNER_WRITE == 0);
        if !read_only {
            continue;
        }
        match std::fs::set_permissions(&sidecar, std::fs::Permissions::from_mode(mode)) {
            Ok(()) => {
                tracing::info!(file = %sidecar.display(), "made writable again, as the database is")
            }
            Err(e) => {
                tracing::warn!(file = %sidecar.display(), error = %e, "read-only beside a writable database: writes fail until it is writable")
            }
        }
    }
}

/// True when SQLite opened the file read-only (write-protected file or directory).
fn is_read_only(conn: &Connection) -> bool {
    conn.is_readonly(MAIN_DB).unwrap_or(true)
}

/// Per-connection settings (not stored in the file).
pub(super) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(LOCK_WAIT)?;
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

/// A write refused as read-only: the file may have become writable since the connection
/// (or the `-wal`/`-shm` files of connections opened while it was not) was opened, or it
/// was replaced (`SQLITE_READONLY_DBMOVED`); a fresh connection may succeed.
fn is_stale(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::ReadOnly)
}

/// Failures after which a connection may stay unusable although the fault has ended: a
/// connection opened while the file was read-only stays read-only, one whose file was
/// replaced keeps the old one (`SQLITE_READONLY_DBMOVED`), I/O errors leave its state in
/// doubt.
fn breaks_connection(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::ReadOnly
                | ErrorCode::SystemIoFailure
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::NotADatabase
                | ErrorCode::CannotOpen
                | ErrorCode::DiskFull
                | ErrorCode::FileLockingProtocolFailed
        )
    )
}

/// A failed call as a [`StoreError`]: faults of the database's surroundings (locks held
/// too long, a read-only or full file, a file that cannot be opened or read) are
/// [`StoreError::Unavailable`], anything else [`StoreError::Database`].
pub(super) fn store_error(e: rusqlite::Error) -> StoreError {
    let unavailable = |what: &str| StoreError::Unavailable(format!("{what}: {e}"));
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => unavailable(&format!(
            "gave up after waiting {} s for another connection's lock",
            LOCK_WAIT.as_secs()
        )),
        Some(ErrorCode::ReadOnly) => unavailable("the database is read-only"),
        Some(ErrorCode::DiskFull) => unavailable("the disk is full"),
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::FileLockingProtocolFailed,
        ) => unavailable("the database file cannot be used"),
        _ => StoreError::Database(e.to_string()),
    }
}
