//! A fresh PostgreSQL database per test, on the cluster `TWITCHER_TEST_POSTGRES` names
//! (`scripts/test-all.sh` starts one with `scripts/postgres.sh`). Without the variable the
//! tests that need it print one SKIP line and pass.

use std::future::Future;

use tokio_postgres::NoTls;

/// The variable naming the test cluster (a URL whose user may create databases).
pub const VARIABLE: &str = "TWITCHER_TEST_POSTGRES";

/// A database made for one test, dropped (with its connections) afterwards.
pub struct TestDatabase {
    /// `postgresql://…/t_…`: give it to the store or the server.
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    /// A new empty database, or `None` (after a SKIP line naming `test`) without a cluster.
    pub fn create(test: &str) -> Option<TestDatabase> {
        let Ok(admin_url) = std::env::var(VARIABLE) else {
            // Straight to the stream: the test harness would hide a passing test's eprintln.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIP: {test} needs PostgreSQL: set {VARIABLE} (scripts/test-all.sh and `scripts/postgres.sh run` do)"
            );
            return None;
        };
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let url = with_database(&admin_url, &name);
        let statement = format!("CREATE DATABASE {name}");
        run(&admin_url, &statement);
        Some(TestDatabase {
            url,
            name,
            admin_url,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this database's connections from twitcher (pool and listener) use TLS:
    /// `Some(true)` all, `Some(false)` none, `None` when there are none or they differ.
    pub fn twitcher_connections_encrypted(&self) -> Option<bool> {
        let sql = format!(
            "SELECT CASE WHEN bool_and(ssl) THEN 'all' WHEN NOT bool_or(ssl) THEN 'none' END \
             FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE datname = '{}' AND application_name LIKE 'twitcher%'",
            self.name
        );
        let (url, sql) = (self.admin_url.clone(), sql);
        let answer: Option<String> = on_own_runtime(async move {
            let client = connect(&url).await;
            client
                .query_one(&sql, &[])
                .await
                .expect("pg_stat_ssl")
                .get(0)
        });
        match answer.as_deref() {
            Some("all") => Some(true),
            Some("none") => Some(false),
            _ => None,
        }
    }

    /// Runs SQL statements on this database (fixtures, or changes behind a store's back).
    pub fn execute(&self, sql: &str) {
        run(&self.url, sql);
    }

    /// Runs SQL statements on the cluster's own database (what must not depend on this one).
    pub fn execute_as_admin(&self, sql: &str) {
        run(&self.admin_url, sql);
    }

    /// The first column of each row of a query, as text.
    pub fn column(&self, sql: &str) -> Vec<Option<String>> {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        on_own_runtime(async move {
            let client = connect(&url).await;
            let rows = client.query(&sql, &[]).await.expect("test query");
            rows.iter().map(|row| row.get(0)).collect()
        })
    }

    /// Ends every connection to this database (what a server restart does to them).
    pub fn terminate_connections(&self) -> usize {
        let sql = format!(
            "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        );
        run_on(&self.admin_url, &sql)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let admin_url = self.admin_url.clone();
        // Never panic in drop (a failing test is already unwinding).
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&admin_url, NoTls).await.ok()?;
                tokio::spawn(connection);
                client.batch_execute(&statement).await.ok()
            })
        })
        .join();
    }
}

/// `url` with its database replaced by `name` (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("TWITCHER_TEST_POSTGRES is a URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

fn run(url: &str, sql: &str) {
    run_on(url, sql);
}

/// Runs `sql`, returning how many rows its last statement gave.
fn run_on(url: &str, sql: &str) -> usize {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    on_own_runtime(async move {
        let client = connect(&url).await;
        let messages = client
            .simple_query(&sql)
            .await
            .unwrap_or_else(|e| panic!("test SQL failed: {e}: {sql}"));
        messages
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count()
    })
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL: {e}"));
    tokio::spawn(connection);
    client
}

/// Runs a future to completion on a runtime of its own (callable inside or outside tests'
/// runtimes).
fn on_own_runtime<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(future)
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
