//! Tests of the SQLite store: the originals' databases, every trait method, locks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::super::memory::MemoryStore;
use super::pool::{restore_sidecar_modes, store_error};
use super::rows::parse_datetime;
use super::*;

const T05_SCHEMA: &str = include_str!("../../../fixtures/db/t05-d39766e64a84.sql");
const T05_DATA: &str = include_str!("../../../fixtures/db/t05-d39766e64a84-data.sql");
const T06_SCHEMA: &str = include_str!("../../../fixtures/db/t06-d9cff565b8db.sql");
const T06_DATA: &str = include_str!("../../../fixtures/db/t06-d9cff565b8db-data.sql");

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
                .prepare(
                    "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid",
                )
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
    let column_names =
        |table: &str| -> Vec<String> { got.columns[table].iter().map(|c| c.0.clone()).collect() };
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
async fn one_lookup_finds_either_kind_of_token() {
    let dir = TempDir::new().unwrap();
    // A 0.5 database: its OAuth tables are added on open (D-OAUTH-TABLES).
    let path = db_from(&dir, &[T05_SCHEMA, T05_DATA]);
    let store = SqliteStore::open(&path).unwrap();
    let rpc = AccessToken {
        token: "rpc".into(),
        expires_at: 2_000_000_000,
    };
    let oauth = OAuthToken {
        access_token: "oauth".into(),
        client_id: "c".into(),
        scope: "compute".into(),
        expires_at: 2_000_000_000,
    };
    store.save_access_token(&rpc).await.unwrap();
    store.save_oauth_token(&oauth).await.unwrap();
    assert_eq!(
        store.find_token("rpc").await.unwrap(),
        Some(StoredToken::Rpc(rpc))
    );
    assert_eq!(
        store.find_token("oauth").await.unwrap(),
        Some(StoredToken::OAuth(oauth))
    );
    assert_eq!(store.find_token("nope").await.unwrap(), None);
    let memory = MemoryStore::new();
    assert_eq!(memory.find_token("rpc").await.unwrap(), None);
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
fn surroundings_faults_are_unavailable_and_bugs_are_not() {
    let failure = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
    for code in [
        rusqlite::ffi::SQLITE_BUSY,
        rusqlite::ffi::SQLITE_LOCKED,
        rusqlite::ffi::SQLITE_READONLY,
        rusqlite::ffi::SQLITE_FULL,
        rusqlite::ffi::SQLITE_IOERR,
        rusqlite::ffi::SQLITE_CANTOPEN,
    ] {
        let e = store_error(failure(code));
        assert!(e.is_unavailable(), "{code}: {e:?}");
    }
    for code in [
        rusqlite::ffi::SQLITE_CONSTRAINT,
        rusqlite::ffi::SQLITE_CORRUPT,
        rusqlite::ffi::SQLITE_ERROR,
    ] {
        let e = store_error(failure(code));
        assert!(matches!(e, StoreError::Database(_)), "{code}: {e:?}");
    }
    match store_error(failure(rusqlite::ffi::SQLITE_BUSY)) {
        StoreError::Unavailable(message) => assert!(message.contains("lock"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sidecars_made_read_only_follow_the_database_back() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let set =
        |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("t.sqlite");
    let (wal, shm) = (
        dir.path().join("t.sqlite-wal"),
        dir.path().join("t.sqlite-shm"),
    );
    for file in [&db, &wal, &shm] {
        std::fs::write(file, b"").unwrap();
        set(file, 0o444);
    }
    restore_sidecar_modes(&db);
    assert_eq!(
        (mode(&wal), mode(&shm)),
        (0o444, 0o444),
        "the database is still read-only"
    );
    set(&db, 0o640);
    restore_sidecar_modes(&db);
    assert_eq!((mode(&wal), mode(&shm)), (0o640, 0o640));
    set(&shm, 0o600);
    restore_sidecar_modes(&db);
    assert_eq!(mode(&shm), 0o600, "a writable sidecar is left alone");
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
