//! PostgreSQL [`Store`]: several twitcher instances on one database, the way the original
//! ran on SQLAlchemy + PostgreSQL (`sqlalchemy.url = postgresql://USER:PASSWORD@HOST/DB`).
//!
//! The schema is the original's: a database written by Twitcher 0.5 (alembic revision
//! `d39766e64a84`) or 0.6.0 (`d9cff565b8db`) opens as it is and is upgraded *additively*,
//! with the same rules as [`sqlite`](super::sqlite) (see [`schema`]). A new database gets
//! the 0.6.0 head schema plus `services.public` and `access_tokens`, stamped
//! `d9cff565b8db`. `token.expires` is a naive UTC `TIMESTAMP`, as SQLAlchemy writes it.
//!
//! Connections come from a `deadpool-postgres` pool (created as needed, at most
//! [`POOL_SIZE`]); a connection found closed (the server restarted, a backend was
//! terminated) is dropped and the operation tried once more on a fresh one, so the pool
//! recovers by itself. Every write notifies the `twitcher_changes` channel in its
//! transaction; [`listen`] hears the other instances' writes and hands them to
//! [`CachedStore`](super::cached::CachedStore) through [`Store::changes`], then
//! acknowledges them; a write returns once every listening instance acknowledged it
//! ([`acks`], at most [`ACK_WAIT`]), so its effect is everywhere when its caller answers.

mod acks;
mod failure;
mod listen;
mod rows;
mod schema;
mod sql;
mod target;
mod tls;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{ClientWrapper, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use self::rows::{clamp_to_datetime, clamp_to_integer, epoch, text};
use self::sql::ServiceSql;
use self::target::Target;
use super::changes::{ChangeFeed, FeedState};
use super::{
    AccessToken, OAuthClient, OAuthToken, PoolStatus, Service, Store, StoreError, StoreResult,
    StoredToken,
};

/// Most connections one instance holds open.
pub const POOL_SIZE: usize = 16;
/// Longest wait for a free or new connection before a request fails.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// Longest wait for the other instances to acknowledge a write (a hung instance must not
/// hold every write up); past it the write returns all the same, with a warning.
pub const ACK_WAIT: Duration = Duration::from_secs(1);

/// A [`Store`] on a PostgreSQL database, shared cheaply (the pool is an `Arc` inside).
pub struct PostgresStore {
    pool: Pool,
    sql: ServiceSql,
    find_token: String,
    oauth_token: String,
    feed: Arc<ChangeFeed>,
    acks: Arc<acks::Acks>,
    location: String,
    /// Keeps the listening thread alive as long as the store.
    _listener: listen::Listener,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// What changed, in a notification's payload (informative: every instance forgets all).
#[derive(Clone, Copy)]
enum Changed {
    Services,
    Tokens,
    Clients,
}

impl Changed {
    fn payload(self) -> &'static str {
        match self {
            Changed::Services => "services",
            Changed::Tokens => "tokens",
            Changed::Clients => "clients",
        }
    }
}

/// Runs `$body` (an async block using the pooled client `$client`) and retries it once on
/// a fresh connection when the pooled one turned out to be closed (the server restarted or
/// ended the backend since the connection was last used).
macro_rules! with_client {
    ($store:expr, |$client:ident| $body:expr) => {{
        let mut retried = false;
        loop {
            let mut object = $store.connection().await?;
            let $client: &mut ClientWrapper = &mut object;
            let outcome = $body.await;
            match outcome {
                Ok(value) => break Ok(value),
                // The statement did not run. The server most likely restarted or ended
                // every backend: the idle connections are as dead as this one.
                Err(e) if !retried && failure::connection_lost(&e, &object) => {
                    tracing::debug!(error = %e, "pooled PostgreSQL connection was lost; retrying on a new one");
                    // Not back into the pool: it may not know yet that it is closed.
                    drop(deadpool_postgres::Object::take(object));
                    $store.pool.retain(|_, _| false);
                    retried = true;
                }
                Err(e) => break Err($store.failure(e)),
            }
        }
    }};
}

impl PostgresStore {
    /// Connects, creates or upgrades the schema, and starts listening for other instances.
    ///
    /// Blocking: meant for startup (it runs its own small runtime on a thread, so it works
    /// inside or outside one). Fails with [`StoreError::Open`] when the URL is unusable, the
    /// server cannot be reached or refuses the login, or the database is not a twitcher
    /// database (tables but no `services`, or `services` lacking `name`/`url`).
    pub fn open(url: &str) -> StoreResult<PostgresStore> {
        let location = super::redact_password(url);
        let fail = |reason: String| StoreError::Open {
            location: location.clone(),
            reason,
        };
        let target = Target::parse(url).map_err(fail)?;
        let tls = tls::connector(&target.check).map_err(fail)?;
        let verify_columns = {
            let (config, tls) = (target.config.clone(), tls.clone());
            std::thread::spawn(move || -> Result<Vec<&'static str>, String> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime.block_on(async move {
                    let (mut client, connection) = config
                        .connect(tls)
                        .await
                        .map_err(|e| failure::connect_reason(&e))?;
                    let driver = tokio::spawn(connection);
                    let columns = schema::upgrade(&mut client)
                        .await
                        .map_err(|e| e.to_string());
                    drop(client);
                    let _ = driver.await;
                    columns
                })
            })
            .join()
            .map_err(|_| fail("the schema upgrade panicked".into()))?
            .map_err(fail)?
        };
        let manager = Manager::from_config(
            target.config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let feed = ChangeFeed::new();
        let acks = Arc::new(acks::Acks::new());
        let listener = listen::start(target.config, tls, feed.clone(), acks.clone())
            .map_err(|e| fail(format!("cannot start the listening thread: {e}")))?;
        // Serving before listening would let this instance's first writes go unconfirmed.
        let deadline = std::time::Instant::now() + POOL_WAIT;
        while feed.state() == FeedState::Down && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if feed.state() == FeedState::Down {
            tracing::warn!(
                "not yet listening for changes from other twitcher instances; caching is off until then"
            );
        }
        Ok(PostgresStore {
            pool,
            sql: ServiceSql::new(&verify_columns),
            find_token: sql::find_token(),
            oauth_token: sql::oauth_token(),
            feed,
            acks,
            location: target.location,
            _listener: listener,
        })
    }

    /// A pooled connection, or why there is none: the database is unavailable then.
    async fn connection(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| {
            let reason = match e {
                deadpool_postgres::PoolError::Backend(e) => failure::connect_reason(&e),
                other => other.to_string(),
            };
            StoreError::Unavailable(format!("PostgreSQL {}: {reason}", self.location))
        })
    }

    /// A failed statement as a store error: [`StoreError::Unavailable`] when the same
    /// statement may succeed later.
    fn failure(&self, e: tokio_postgres::Error) -> StoreError {
        let reason = format!("PostgreSQL {}: {}", self.location, failure::describe(&e));
        if failure::is_transient(&e) {
            StoreError::Unavailable(reason)
        } else {
            StoreError::Database(reason)
        }
    }

    /// A write in one transaction that also tells the other instances: update, and insert
    /// when nothing was updated. A concurrent insert of the same key (a unique violation)
    /// is answered by doing it all once more, which then updates.
    async fn upsert(
        &self,
        changed: Changed,
        update: &str,
        insert: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<()> {
        // Twice at most: the second time the row another instance inserted is updated.
        for _ in 0..2 {
            let write = self.acks.begin();
            let payload = write.payload(changed.payload());
            let outcome: Option<i64> = with_client!(self, |client| async {
                let tx = client.transaction().await?;
                let updated = tx
                    .execute(&tx.prepare_cached(update).await?, params)
                    .await?;
                if updated == 0 {
                    let inserted = tx.execute(&tx.prepare_cached(insert).await?, params).await;
                    match inserted {
                        Ok(_) => {}
                        // Inserted by another instance since our update: roll back, again.
                        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                            return Ok(None);
                        }
                        Err(e) => return Err(e),
                    }
                }
                let listeners: i64 = tx
                    .query_one(&tx.prepare_cached(sql::NOTIFY).await?, &[&payload])
                    .await?
                    .get(0);
                tx.commit().await?;
                Ok::<_, tokio_postgres::Error>(Some(listeners))
            })?;
            if let Some(listeners) = outcome {
                self.confirmed(&write, listeners).await;
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(format!(
            "PostgreSQL {}: concurrent writes of the same key kept conflicting",
            self.location
        )))
    }

    /// Waits for the listening instances' acknowledgements of a committed write (not when
    /// this instance cannot hear them: its own listener is down).
    async fn confirmed(&self, write: &acks::WriteId<'_>, listeners: i64) {
        if self.feed.state() == FeedState::Down {
            return;
        }
        let expected = usize::try_from(listeners).unwrap_or(0);
        if !write.confirmed(expected, ACK_WAIT).await {
            tracing::warn!(
                listeners = expected,
                "not every twitcher instance confirmed a change within {ACK_WAIT:?}; one may serve the old state for up to twitcher.store_cache_seconds"
            );
        }
    }

    /// A delete (or clear) in one transaction that also tells the other instances; the
    /// number of rows it removed.
    async fn delete(
        &self,
        changed: Changed,
        statement: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<u64> {
        let write = self.acks.begin();
        let payload = write.payload(changed.payload());
        let (deleted, listeners) = with_client!(self, |client| async {
            let tx = client.transaction().await?;
            let deleted = tx
                .execute(&tx.prepare_cached(statement).await?, params)
                .await?;
            let mut listeners = 0;
            if deleted > 0 {
                listeners = tx
                    .query_one(&tx.prepare_cached(sql::NOTIFY).await?, &[&payload])
                    .await?
                    .get(0);
            }
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>((deleted, listeners))
        })?;
        if deleted > 0 {
            self.confirmed(&write, listeners).await;
        }
        Ok(deleted)
    }

    /// Rows of a read.
    async fn query(
        &self,
        statement: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Vec<tokio_postgres::Row>> {
        with_client!(self, |client| async {
            let prepared = client.prepare_cached(statement).await?;
            client.query(&prepared, params).await
        })
    }

    /// The first row of a read, if any.
    async fn query_one(
        &self,
        statement: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<tokio_postgres::Row>> {
        Ok(self.query(statement, params).await?.into_iter().next())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        self.query("SELECT 1", &[]).await.map(drop)
    }

    fn changes(&self) -> Option<Arc<ChangeFeed>> {
        Some(self.feed.clone())
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        let status = self.pool.status();
        Some(PoolStatus {
            size: status.size,
            idle: status.available,
            max: status.max_size,
        })
    }

    async fn service_by_name(&self, name: &str) -> StoreResult<Option<Service>> {
        let row = self.query_one(&self.sql.by_name, &[&name]).await?;
        Ok(row.as_ref().map(rows::service))
    }

    async fn service_by_url(&self, url: &str) -> StoreResult<Option<Service>> {
        let row = self.query_one(&self.sql.by_url, &[&url]).await?;
        Ok(row.as_ref().map(rows::service))
    }

    async fn list_services(&self) -> StoreResult<Vec<Service>> {
        let rows = self.query(&self.sql.list, &[]).await?;
        Ok(rows.iter().map(rows::service).collect())
    }

    async fn save_service(&self, s: &Service) -> StoreResult<()> {
        let (public, verify) = (i32::from(s.public), i32::from(s.verify));
        self.upsert(
            Changed::Services,
            &self.sql.update,
            &self.sql.insert,
            &[
                &s.name,
                &s.url,
                &s.service_type.as_str(),
                &s.purl,
                &s.auth.as_str(),
                &public,
                &verify,
            ],
        )
        .await
    }

    async fn delete_service(&self, name: &str) -> StoreResult<bool> {
        let deleted = self
            .delete(Changed::Services, sql::SERVICE_DELETE, &[&name])
            .await?;
        Ok(deleted > 0)
    }

    async fn clear_services(&self) -> StoreResult<()> {
        self.delete(Changed::Services, sql::SERVICES_CLEAR, &[])
            .await
            .map(drop)
    }

    async fn save_access_token(&self, token: &AccessToken) -> StoreResult<()> {
        let expires_at = clamp_to_integer(token.expires_at);
        self.upsert(
            Changed::Tokens,
            sql::ACCESS_TOKEN_UPDATE,
            sql::ACCESS_TOKEN_INSERT,
            &[&token.token, &expires_at],
        )
        .await
    }

    async fn access_token(&self, token: &str) -> StoreResult<Option<AccessToken>> {
        let row = self.query_one(sql::ACCESS_TOKEN, &[&token]).await?;
        Ok(row.map(|row| AccessToken {
            token: text(&row, 0).unwrap_or_default(),
            expires_at: epoch(&row, 1, "access_tokens.expires_at"),
        }))
    }

    async fn delete_access_token(&self, token: &str) -> StoreResult<bool> {
        let deleted = self
            .delete(Changed::Tokens, sql::ACCESS_TOKEN_DELETE, &[&token])
            .await?;
        Ok(deleted > 0)
    }

    async fn clear_access_tokens(&self) -> StoreResult<()> {
        self.delete(Changed::Tokens, sql::ACCESS_TOKENS_CLEAR, &[])
            .await
            .map(drop)
    }

    async fn save_client(&self, c: &OAuthClient) -> StoreResult<()> {
        self.upsert(
            Changed::Clients,
            sql::CLIENT_UPDATE,
            sql::CLIENT_INSERT,
            &[
                &c.client_id,
                &c.client_secret,
                &c.name,
                &c.redirect_uris,
                &c.default_scope,
            ],
        )
        .await
    }

    async fn client(&self, client_id: &str) -> StoreResult<Option<OAuthClient>> {
        let row = self.query_one(sql::CLIENT, &[&client_id]).await?;
        Ok(row.map(|row| OAuthClient {
            client_id: text(&row, 0).unwrap_or_default(),
            client_secret: text(&row, 1).unwrap_or_default(),
            name: text(&row, 2).unwrap_or_default(),
            redirect_uris: text(&row, 3).unwrap_or_default(),
            default_scope: text(&row, 4).unwrap_or_default(),
        }))
    }

    async fn save_oauth_token(&self, t: &OAuthToken) -> StoreResult<()> {
        let expires = clamp_to_datetime(t.expires_at);
        // 0.6.0 put no UNIQUE on `access_token`: the update keeps it unique for us.
        self.upsert(
            Changed::Tokens,
            sql::OAUTH_TOKEN_UPDATE,
            sql::OAUTH_TOKEN_INSERT,
            &[&t.access_token, &t.client_id, &expires, &t.scope],
        )
        .await
    }

    async fn oauth_token(&self, access_token: &str) -> StoreResult<Option<OAuthToken>> {
        let row = self.query_one(&self.oauth_token, &[&access_token]).await?;
        Ok(row.map(|row| OAuthToken {
            access_token: text(&row, 0).unwrap_or_default(),
            client_id: text(&row, 1).unwrap_or_default(),
            scope: text(&row, 2).unwrap_or_default(),
            expires_at: epoch(&row, 3, "token.expires"),
        }))
    }

    async fn delete_oauth_token(&self, access_token: &str) -> StoreResult<bool> {
        let deleted = self
            .delete(Changed::Tokens, sql::OAUTH_TOKEN_DELETE, &[&access_token])
            .await?;
        Ok(deleted > 0)
    }

    async fn find_token(&self, token: &str) -> StoreResult<Option<StoredToken>> {
        let Some(row) = self.query_one(&self.find_token, &[&token]).await? else {
            return Ok(None);
        };
        let kind: i32 = row.get(0);
        Ok(Some(if kind == 0 {
            StoredToken::Rpc(AccessToken {
                token: token.to_owned(),
                expires_at: epoch(&row, 1, "access_tokens.expires_at"),
            })
        } else {
            StoredToken::OAuth(OAuthToken {
                access_token: token.to_owned(),
                client_id: text(&row, 2).unwrap_or_default(),
                scope: text(&row, 3).unwrap_or_default(),
                expires_at: epoch(&row, 1, "token.expires"),
            })
        }))
    }
}
