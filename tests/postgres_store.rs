//! What only the PostgreSQL store has to prove: the originals' PostgreSQL databases open
//! with nothing lost and are upgraded additively, a new database gets the documented
//! schema, the pool and the change listener recover from lost connections, failures are
//! told apart (unavailable vs. broken), and the `sslmode` forms work. The behaviour shared
//! with SQLite is in `store_conformance.rs`. Each test makes its own database on the
//! `TWITCHER_TEST_POSTGRES` cluster and passes with a SKIP line without one.

mod common;

use std::time::{Duration, Instant};

use common::postgres::TestDatabase;
use twitcher::store::changes::FeedState;
use twitcher::store::postgres::PostgresStore;
use twitcher::store::{
    AccessToken, Auth, OAuthClient, OAuthToken, Service, Store, StoreError, StoredToken,
};

const PG_T05_SCHEMA: &str = include_str!("../fixtures/db/pg-t05-d39766e64a84.sql");
const PG_T06_SCHEMA: &str = include_str!("../fixtures/db/pg-t06-d9cff565b8db.sql");
// The rows are the same SQL as for SQLite; the ids they set by hand are then caught up
// in the sequences, as inserts through the original would have left them.
const T05_DATA: &str = include_str!("../fixtures/db/t05-d39766e64a84-data.sql");
const T06_DATA: &str = include_str!("../fixtures/db/t06-d9cff565b8db-data.sql");
const T05_SEQUENCES: &str = "SELECT setval('services_id_seq', (SELECT max(id) FROM services));
     SELECT setval('access_tokens_id_seq', (SELECT max(id) FROM access_tokens));";
const T06_SEQUENCES: &str = "SELECT setval('services_id_seq', (SELECT max(id) FROM services));
     SELECT setval('token_id_seq', (SELECT max(id) FROM token));";

/// Every column (with type, nullability, default) and index of the database, and the
/// alembic revision: what the original relies on.
fn schema(db: &TestDatabase) -> Vec<Option<String>> {
    let mut all = db.column(
        "SELECT format('%s.%s %s %s %s', table_name, column_name, data_type, is_nullable, \
         coalesce(column_default, '')) FROM information_schema.columns \
         WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    );
    all.extend(
        db.column("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname"),
    );
    all.extend(db.column(
        "SELECT format('%s %s', conname, pg_get_constraintdef(oid)) FROM pg_constraint \
         WHERE connamespace = 'public'::regnamespace ORDER BY conname",
    ));
    all.extend(db.column("SELECT 'alembic ' || version_num FROM alembic_version"));
    all
}

/// Every line of `before` is still in `after`: nothing dropped, renamed or retyped.
fn assert_only_added(before: &[Option<String>], after: &[Option<String>]) {
    for line in before {
        assert!(after.contains(line), "lost by the upgrade: {line:?}");
    }
}

fn svc(name: &str, url: &str, kind: &str, purl: &str, public: bool, auth: &str) -> Service {
    Service {
        service_type: kind.into(),
        purl: purl.into(),
        public,
        auth: auth.into(),
        ..Service::new(name, url)
    }
}

/// Polls `condition` for up to ten seconds.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn new_database_gets_the_documented_schema() {
    let Some(db) = TestDatabase::create("new_database_gets_the_documented_schema") else {
        return;
    };
    let store = PostgresStore::open(&db.url).unwrap();
    store.ping().await.unwrap();
    let tables = db.column(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' ORDER BY table_name",
    );
    let tables: Vec<_> = tables.into_iter().flatten().collect();
    assert_eq!(
        tables,
        [
            "access_tokens",
            "alembic_version",
            "client",
            "services",
            "token"
        ]
    );
    assert_eq!(
        db.column("SELECT version_num::text FROM alembic_version"),
        [Some("d9cff565b8db".to_string())]
    );
    // The 0.6.0 head, column for column, plus `services.public` and `access_tokens`.
    let ours = schema(&db);
    let original = TestDatabase::create("original 0.6.0 schema").unwrap();
    original.execute(PG_T06_SCHEMA);
    let mut missing: Vec<_> = schema(&original)
        .into_iter()
        .filter(|line| !ours.contains(line))
        .collect();
    missing.sort();
    assert_eq!(
        missing,
        Vec::<Option<String>>::new(),
        "0.6.0 head not matched"
    );
    assert!(ours.contains(&Some("services.public integer YES ".into())));
    assert!(ours.contains(&Some(
        "CREATE UNIQUE INDEX token_index ON public.access_tokens USING btree (token)".into()
    )));
}

#[tokio::test]
async fn t05_database_opens_with_nothing_lost() {
    let Some(db) = TestDatabase::create("t05_database_opens_with_nothing_lost") else {
        return;
    };
    db.execute(PG_T05_SCHEMA);
    db.execute(T05_DATA);
    db.execute(T05_SEQUENCES);
    db.execute("INSERT INTO services (url, name) VALUES ('http://h/wps', 'nulls')");
    let before = schema(&db);
    let store = PostgresStore::open(&db.url).unwrap();
    let emu = "http://127.0.0.1:15056/wps";
    let mut down = svc(
        "down_wms",
        "http://127.0.0.1:1/wms",
        "wms",
        "",
        false,
        "token",
    );
    down.verify = false;
    assert_eq!(
        store.list_services().await.unwrap(),
        [
            svc("emu", emu, "wps", "", false, "token"),
            svc("emu_public", emu, "wps", "", true, "token"),
            svc("emu_cert", emu, "wps", "", false, "cert"),
            svc(
                "emu_purl",
                emu,
                "wps",
                "https://example.org/ows/emu",
                false,
                "token"
            ),
            down,
            Service::new("nulls", "http://h/wps"),
        ]
    );
    assert_eq!(
        store
            .find_token("3f9c2a7d41e84b0f9d6a5c1e8b7f2d40")
            .await
            .unwrap(),
        Some(StoredToken::Rpc(AccessToken {
            token: "3f9c2a7d41e84b0f9d6a5c1e8b7f2d40".into(),
            expires_at: 1_795_900_155
        }))
    );

    // Writes of every kind, into the 0.5 tables and the added OAuth ones.
    store
        .save_service(&svc("emu", emu, "wps", "", true, "token"))
        .await
        .unwrap();
    store
        .save_service(&Service::new("added", "http://x/wps"))
        .await
        .unwrap();
    store
        .save_access_token(&AccessToken {
            token: "new".into(),
            expires_at: 7,
        })
        .await
        .unwrap();
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
        expires_at: 1_795_896_555,
    };
    store.save_oauth_token(&token).await.unwrap();
    assert_eq!(
        store.find_token("bearer").await.unwrap(),
        Some(StoredToken::OAuth(token))
    );
    drop(store);

    let after = schema(&db);
    assert_only_added(&before, &after);
    assert!(after.contains(&Some("alembic d39766e64a84".into())));
    // The 0.5 columns got the values the original reads: public/verify as 0/1.
    assert_eq!(
        db.column("SELECT format('%s %s %s', name, public, verify) FROM services ORDER BY id"),
        [
            "emu 1 1",
            "emu_public 1 1",
            "emu_cert 0 1",
            "emu_purl 0 1",
            "down_wms 0 0",
            "nulls  ",
            "added 0 1"
        ]
        .map(|s| Some(s.to_string()))
    );
}

#[tokio::test]
async fn t06_database_opens_with_nothing_lost() {
    let Some(db) = TestDatabase::create("t06_database_opens_with_nothing_lost") else {
        return;
    };
    db.execute(PG_T06_SCHEMA);
    db.execute(T06_DATA);
    db.execute(T06_SEQUENCES);
    let before = schema(&db);
    let store = PostgresStore::open(&db.url).unwrap();
    let services = store.list_services().await.unwrap();
    assert_eq!(
        services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["emu", "opt_service_1", "legacy"]
    );
    // auth `public` reads as public (0.6.0), a NULL `_verify` as verified.
    assert_eq!(services[1].auth, Auth::Other("public".into()));
    assert!(services[1].is_public() && !services[1].verify);
    assert!(services[2].verify);
    assert_eq!(
        store
            .find_token("1nsMkEKz9P6viZIQ814FKo17nPBsOy")
            .await
            .unwrap(),
        Some(StoredToken::OAuth(OAuthToken {
            access_token: "1nsMkEKz9P6viZIQ814FKo17nPBsOy".into(),
            client_id: "f7d5ed37f9ea4eb4a1b9c3b299db1357".into(),
            scope: "compute".into(),
            // 2026-11-28 21:09:15.482913 naive UTC, the fraction dropped.
            expires_at: 1_795_900_155,
        }))
    );
    assert_eq!(
        store
            .client("f7d5ed37f9ea4eb4a1b9c3b299db1357")
            .await
            .unwrap()
            .unwrap()
            .name,
        "myapp"
    );
    store
        .save_service(&Service::new("added", "http://x/wps"))
        .await
        .unwrap();
    store
        .save_access_token(&AccessToken {
            token: "rpc".into(),
            expires_at: 9,
        })
        .await
        .unwrap();
    drop(store);
    let after = schema(&db);
    assert_only_added(&before, &after);
    assert!(after.contains(&Some("alembic d9cff565b8db".into())));
    // What a 0.6.0 reads of our row: `_verify` 1, and an expiry it can parse.
    assert_eq!(
        db.column("SELECT format('%s %s', name, _verify) FROM services WHERE name = 'added'"),
        [Some("added 1".to_string())]
    );
}

#[tokio::test]
async fn reopening_changes_nothing() {
    for (what, scripts) in [
        ("0.5", &[PG_T05_SCHEMA, T05_DATA, T05_SEQUENCES][..]),
        ("0.6.0", &[PG_T06_SCHEMA, T06_DATA, T06_SEQUENCES][..]),
        ("new", &[][..]),
    ] {
        let Some(db) = TestDatabase::create("reopening_changes_nothing") else {
            return;
        };
        for script in scripts {
            db.execute(script);
        }
        drop(PostgresStore::open(&db.url).unwrap());
        let first = schema(&db);
        let store = PostgresStore::open(&db.url).unwrap();
        store.ping().await.unwrap();
        drop(store);
        assert_eq!(schema(&db), first, "{what}");
    }
}

#[tokio::test]
async fn foreign_databases_are_refused_untouched() {
    let Some(db) = TestDatabase::create("foreign_databases_are_refused_untouched") else {
        return;
    };
    db.execute("CREATE TABLE invoices (id integer)");
    let err = PostgresStore::open(&db.url).unwrap_err();
    assert!(
        matches!(&err, StoreError::Open { reason, .. } if reason.contains("no `services` table")),
        "{err}"
    );
    assert!(!err.to_string().contains("twitcher:twitcher@"), "{err}");
    db.execute("DROP TABLE invoices; CREATE TABLE services (id integer, title text)");
    let err = PostgresStore::open(&db.url).unwrap_err();
    assert!(err.to_string().contains("no `name` column"), "{err}");
    assert_eq!(
        db.column(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'"
        ),
        [Some("services".to_string())],
        "nothing may be created in a database that is refused"
    );
}

#[tokio::test]
async fn unreachable_server_and_wrong_password_fail_to_open() {
    let Some(db) = TestDatabase::create("unreachable_server_and_wrong_password_fail_to_open")
    else {
        return;
    };
    let wrong = db.url.replacen(":twitcher@", ":wrong@", 1);
    let err = PostgresStore::open(&wrong).unwrap_err().to_string();
    assert!(err.contains("password"), "{err}");
    assert!(
        !err.contains("wrong"),
        "the password is in the message: {err}"
    );
    // A port nobody listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = PostgresStore::open(&format!("postgresql://u:p@127.0.0.1:{port}/db"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[tokio::test]
async fn sslmode_disable_and_the_default_work() {
    let tls_offered = std::env::var("TWITCHER_TEST_POSTGRES_CA").is_ok();
    // `prefer` (the default): TLS when the server offers it.
    for (query, encrypted) in [("", tls_offered), ("?sslmode=disable", false)] {
        // A database each: the connections of the store before may take a moment to close.
        let Some(db) = TestDatabase::create("sslmode_disable_and_the_default_work") else {
            return;
        };
        let store = PostgresStore::open(&format!("{}{query}", db.url)).unwrap();
        store.ping().await.unwrap();
        store
            .save_service(&Service::new("s", "http://h/wps"))
            .await
            .unwrap();
        assert_eq!(
            db.twitcher_connections_encrypted(),
            Some(encrypted),
            "{query}"
        );
    }
}

#[tokio::test]
async fn tls_to_the_database_by_sslmode() {
    let Some(db) = TestDatabase::create("tls_to_the_database_by_sslmode") else {
        return;
    };
    let Ok(ca) = std::env::var("TWITCHER_TEST_POSTGRES_CA") else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIP: tls_to_the_database_by_sslmode needs a cluster with TLS (TWITCHER_TEST_POSTGRES_CA; scripts/postgres.sh makes one when openssl is there)"
        );
        return;
    };
    for query in [
        "sslmode=require".to_string(),
        format!("sslmode=verify-ca&sslrootcert={ca}"),
        format!("sslmode=verify-full&sslrootcert={ca}"),
    ] {
        let store = PostgresStore::open(&format!("{}?{query}", db.url)).unwrap();
        store
            .save_service(&Service::new("s", "http://h/wps"))
            .await
            .unwrap();
        assert_eq!(db.twitcher_connections_encrypted(), Some(true), "{query}");
    }
    // The test CA is no public root: verifying without sslrootcert must fail.
    let err = PostgresStore::open(&format!("{}?sslmode=verify-full", db.url))
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate"), "{err}");
    // A root file that is not one.
    let err = PostgresStore::open(&format!(
        "{}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        db.url
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("sslrootcert /nonexistent/ca.pem"), "{err}");
}

#[tokio::test]
async fn require_is_refused_by_a_server_without_tls() {
    // A server that answers PostgreSQL's SSLRequest with "N" (no TLS), as one without
    // `ssl = on` does.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 8];
            if stream.read_exact(&mut request).is_ok() {
                let _ = stream.write_all(b"N");
            }
        }
    });
    let err = PostgresStore::open(&format!(
        "postgresql://u:p@127.0.0.1:{port}/db?sslmode=require"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("TLS"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_and_the_listener_recover_from_lost_connections() {
    let Some(db) = TestDatabase::create("the_pool_and_the_listener_recover") else {
        return;
    };
    let store = PostgresStore::open(&db.url).unwrap();
    let feed = store.changes().unwrap();
    eventually("the listener connects", || feed.state() != FeedState::Down).await;
    // Fill the pool with a few connections.
    let reads: Vec<_> = (0..4).map(|_| store.list_services()).collect();
    for read in futures_util::future::join_all(reads).await {
        read.unwrap();
    }
    let ended = db.terminate_connections();
    assert!(ended >= 2, "only {ended} connections to end");
    // The very next operations succeed on new connections.
    store
        .save_service(&Service::new("after", "http://h/wps"))
        .await
        .unwrap();
    assert_eq!(store.list_services().await.unwrap().len(), 1);
    let FeedState::Live { generation } = ({
        eventually("the listener reconnects", || {
            matches!(feed.state(), FeedState::Live { .. })
        })
        .await;
        feed.state()
    }) else {
        unreachable!()
    };
    // And it hears writes again: another instance's write moves the feed.
    let other = PostgresStore::open(&db.url).unwrap();
    other.delete_service("after").await.unwrap();
    eventually(
        "the write is heard",
        || matches!(feed.state(), FeedState::Live { generation: now } if now != generation),
    )
    .await;
}

#[tokio::test]
async fn writes_are_heard_by_other_instances_reads_are_not() {
    let Some(db) = TestDatabase::create("writes_are_heard") else {
        return;
    };
    let one = PostgresStore::open(&db.url).unwrap();
    let two = PostgresStore::open(&db.url).unwrap();
    let feed = two.changes().unwrap();
    assert_ne!(feed.state(), FeedState::Down, "open returns listening");
    one.save_client(&OAuthClient {
        client_id: "c".into(),
        client_secret: "s".into(),
        name: String::new(),
        redirect_uris: String::new(),
        default_scope: "compute".into(),
    })
    .await
    .unwrap();
    let mut last = feed.state();
    // A write returns once every listener confirmed it: the other instance has already
    // moved its feed (forgotten its memory) when the write's caller goes on.
    macro_rules! heard {
        ($what:expr) => {{
            $what.await.unwrap();
            assert_ne!(feed.state(), last, "not heard: {}", stringify!($what));
            last = feed.state();
        }};
    }
    heard!(one.save_service(&Service::new("s", "http://h/wps")));
    heard!(one.delete_service("s"));
    heard!(one.save_access_token(&AccessToken {
        token: "t".into(),
        expires_at: 5
    }));
    heard!(one.delete_access_token("t"));
    heard!(one.save_access_token(&AccessToken {
        token: "u".into(),
        expires_at: 5
    }));
    heard!(one.clear_access_tokens());
    heard!(one.save_service(&Service::new("s", "http://h/wps")));
    heard!(one.clear_services());
    heard!(one.save_oauth_token(&OAuthToken {
        access_token: "o".into(),
        client_id: "c".into(),
        scope: "compute".into(),
        expires_at: 5
    }));
    heard!(one.delete_oauth_token("o"));
    // Reads and writes that change nothing say nothing: a moment later the feed has not moved.
    one.list_services().await.unwrap();
    assert!(!one.delete_service("none").await.unwrap());
    one.clear_access_tokens().await.unwrap();
    one.find_token("t").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(feed.state(), last);
}

#[tokio::test]
async fn a_read_only_database_is_unavailable_for_writes_not_for_reads() {
    let Some(db) = TestDatabase::create("a_read_only_database") else {
        return;
    };
    let store = PostgresStore::open(&db.url).unwrap();
    store
        .save_service(&Service::new("s", "http://h/wps"))
        .await
        .unwrap();
    let name = db.url.rsplit('/').next().unwrap().to_string();
    db.execute(&format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = on"
    ));
    db.terminate_connections();
    let err = store
        .save_service(&Service::new("t", "http://h/wps"))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert_eq!(store.list_services().await.unwrap().len(), 1);
    db.execute_as_admin(&format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = off"
    ));
    db.terminate_connections();
    store
        .save_service(&Service::new("t", "http://h/wps"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_saving_one_new_name_at_once_both_succeed() {
    let Some(db) = TestDatabase::create("two_instances_saving_one_new_name") else {
        return;
    };
    let one = PostgresStore::open(&db.url).unwrap();
    let two = PostgresStore::open(&db.url).unwrap();
    for i in 0..30 {
        let name = format!("s{i}");
        let (first, second) = (
            Service::new(&name, "http://one/wps"),
            Service::new(&name, "http://two/wps"),
        );
        let (a, b) = tokio::join!(one.save_service(&first), two.save_service(&second));
        // Both inserted after both updated nothing: the loser updates instead of failing.
        a.unwrap();
        b.unwrap();
    }
    let services = one.list_services().await.unwrap();
    assert_eq!(services.len(), 30);
    assert!(
        services
            .iter()
            .all(|s| ["http://one/wps", "http://two/wps"].contains(&s.url.as_str()))
    );
}
