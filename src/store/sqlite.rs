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
//! Every SQLite call runs on tokio's blocking pool, on a pooled connection (`sqlite/pool.rs`):
//! the journal is WAL, reads use reader connections that never wait for writes, writes
//! queue for the one writer connection and wait at most 5 s in all for
//! locks. A call that cannot be served because of the database's surroundings (locked past
//! the wait, read-only, full, unreadable) fails with [`StoreError::Unavailable`], and the
//! pool recovers by itself when the fault ends. A file that is read-only at start opens
//! for reading (writes fail that way) as long as it needs no upgrade.

mod pool;
mod rows;
mod schema;
mod sql;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, MAIN_DB, OpenFlags, OptionalExtension};

use self::pool::{Inner, configure, open_reason};
use self::rows::{epoch, expiry_or_expired, format_datetime, service_from_row, text};
use self::schema::upgrade;
use self::sql::{ServiceSql, upsert};
use super::{
    AccessToken, OAuthClient, OAuthToken, Service, Store, StoreError, StoreResult, StoredToken,
};

/// A [`Store`] on an SQLite file, shared cheaply (`Arc` inside).
pub struct SqliteStore {
    inner: Arc<Inner>,
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
        if conn.is_readonly(MAIN_DB).unwrap_or(true) {
            tracing::warn!(
                path = %path.display(),
                "the database is read-only: reads are served, writes are answered \"temporarily unavailable\" until it is writable"
            );
        } else {
            switch_to_wal(&conn, path);
        }
        Ok(SqliteStore {
            inner: Arc::new(Inner::new(
                path.to_owned(),
                conn,
                ServiceSql::new(&verify_columns),
            )),
        })
    }
}

/// Makes the journal WAL, so readers run beside the one writer (another process's
/// `BEGIN EXCLUSIVE` included). The mode is stored in the file: the pool's later
/// connections and other programs on the file (the original Twitcher too) inherit it.
/// Without it everything still works, only reads wait for writes.
fn switch_to_wal(conn: &Connection, path: &Path) {
    match conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get::<_, String>(0)) {
        Ok(mode) if mode.eq_ignore_ascii_case("wal") => {}
        Ok(mode) => {
            tracing::warn!(path = %path.display(), %mode, "SQLite kept its journal mode instead of WAL")
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot switch SQLite to WAL")
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        // Reads the file's first page, not just the library: a file that cannot be read fails.
        self.read(|conn, _| conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())))
            .await
    }

    async fn service_by_name(&self, name: &str) -> StoreResult<Option<Service>> {
        let name = name.to_owned();
        self.read(move |conn, sql| {
            conn.prepare_cached(&sql.by_name)?
                .query_row([&name], service_from_row)
                .optional()
        })
        .await
    }

    async fn service_by_url(&self, url: &str) -> StoreResult<Option<Service>> {
        let url = url.to_owned();
        self.read(move |conn, sql| {
            conn.prepare_cached(&sql.by_url)?
                .query_row([&url], service_from_row)
                .optional()
        })
        .await
    }

    async fn list_services(&self) -> StoreResult<Vec<Service>> {
        self.read(|conn, sql| {
            let mut stmt = conn.prepare_cached(&sql.list)?;
            let rows = stmt.query_map([], service_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn save_service(&self, service: &Service) -> StoreResult<()> {
        let s = service.clone();
        self.write(move |conn, sql| {
            // Updating by name keeps the row's id, hence its place in the listing.
            upsert(
                conn,
                &sql.update,
                &sql.insert,
                rusqlite::params![
                    s.name,
                    s.url,
                    s.service_type.as_str(),
                    s.purl,
                    s.auth.as_str(),
                    s.public,
                    s.verify
                ],
            )
        })
        .await
    }

    async fn delete_service(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_owned();
        self.write(move |conn, _| {
            let deleted = conn
                .prepare_cached("DELETE FROM services WHERE name = ?1")?
                .execute([&name])?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn clear_services(&self) -> StoreResult<()> {
        self.write(|conn, _| conn.execute("DELETE FROM services", []).map(drop))
            .await
    }

    async fn save_access_token(&self, token: &AccessToken) -> StoreResult<()> {
        let token = token.clone();
        self.write(move |conn, _| {
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
        self.read(move |conn, _| {
            conn.prepare_cached(
                "SELECT token, expires_at FROM access_tokens WHERE token = ?1 LIMIT 1",
            )?
            .query_row([&token], |row| {
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
        self.write(move |conn, _| {
            let deleted = conn
                .prepare_cached("DELETE FROM access_tokens WHERE token = ?1")?
                .execute([&token])?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn clear_access_tokens(&self) -> StoreResult<()> {
        self.write(|conn, _| conn.execute("DELETE FROM access_tokens", []).map(drop))
            .await
    }

    async fn save_client(&self, client: &OAuthClient) -> StoreResult<()> {
        let c = client.clone();
        self.write(move |conn, _| {
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
        self.read(move |conn, _| {
            conn.prepare_cached(
                "SELECT client_id, client_secret, name, _redirect_uris, default_scope \
                 FROM client WHERE client_id = ?1 LIMIT 1",
            )?
            .query_row([&client_id], |row| {
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
        self.write(move |conn, _| {
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
        self.read(move |conn, _| {
            conn.prepare_cached(
                "SELECT access_token, client_id, scope, expires FROM token \
                 WHERE access_token = ?1 LIMIT 1",
            )?
            .query_row([&access_token], |row| {
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

    async fn find_token(&self, token: &str) -> StoreResult<Option<StoredToken>> {
        let token = token.to_owned();
        self.read(move |conn, _| {
            // One statement for both kinds: a token check is one round trip to the pool.
            conn.prepare_cached(
                "SELECT 0, expires_at, NULL, NULL FROM access_tokens WHERE token = ?1 \
                 UNION ALL \
                 SELECT 1, expires, client_id, scope FROM token WHERE access_token = ?1 \
                 LIMIT 1",
            )?
            .query_row([&token], |row| {
                let kind: i64 = row.get(0)?;
                Ok(if kind == 0 {
                    StoredToken::Rpc(AccessToken {
                        token: token.clone(),
                        expires_at: expiry_or_expired(epoch(row, 1)?, "access_tokens.expires_at"),
                    })
                } else {
                    StoredToken::OAuth(OAuthToken {
                        access_token: token.clone(),
                        client_id: text(row, 2)?.unwrap_or_default(),
                        scope: text(row, 3)?.unwrap_or_default(),
                        expires_at: expiry_or_expired(epoch(row, 1)?, "token.expires"),
                    })
                })
            })
            .optional()
        })
        .await
    }

    async fn delete_oauth_token(&self, access_token: &str) -> StoreResult<bool> {
        let access_token = access_token.to_owned();
        self.write(move |conn, _| {
            let deleted = conn
                .prepare_cached("DELETE FROM token WHERE access_token = ?1")?
                .execute([&access_token])?;
            Ok(deleted > 0)
        })
        .await
    }
}

#[cfg(test)]
mod tests;
