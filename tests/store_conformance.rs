//! One behaviour for every store: each test here runs on SQLite (a new file), on
//! PostgreSQL (a new database on the `TWITCHER_TEST_POSTGRES` cluster; skipped with a
//! line when it is unset) and, where the memory store claims the same semantics, compares
//! against it. A store-specific test (schemas of the originals, locking, reconnecting)
//! belongs beside its store instead.

mod common;

use std::sync::Arc;

use common::postgres::TestDatabase;
use twitcher::store::memory::MemoryStore;
use twitcher::store::postgres::PostgresStore;
use twitcher::store::sqlite::SqliteStore;
use twitcher::store::{AccessToken, OAuthClient, OAuthToken, Service, Store, StoredToken};

/// A store under test and what keeps its database alive.
struct Subject {
    store: Arc<dyn Store>,
    _keep: Box<dyn std::any::Any>,
}

fn sqlite() -> Subject {
    let dir = tempfile::TempDir::new().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.sqlite")).unwrap();
    Subject {
        store: Arc::new(store),
        _keep: Box::new(dir),
    }
}

fn postgres(test: &str) -> Option<Subject> {
    let db = TestDatabase::create(test)?;
    let store = PostgresStore::open(&db.url).unwrap();
    // The store goes first (fields drop in order), then the database.
    Some(Subject {
        store: Arc::new(store),
        _keep: Box::new(db),
    })
}

/// Each listed test function (`async fn NAME(store: &dyn Store)`) once per store.
macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let subject = super::sqlite();
                    super::$test(&*subject.store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let Some(subject) = super::postgres(stringify!($test)) else {
                        return;
                    };
                    super::$test(&*subject.store).await;
                }
            )*
        }
    };
}

on_every_store!(
    every_trait_method,
    same_answers_as_the_memory_store,
    update_keeps_the_position,
    one_lookup_finds_either_kind_of_token,
    an_rpc_token_wins_over_an_oauth_token_of_the_same_string,
    expiries_round_trip,
    text_round_trips_unchanged,
);

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

fn client(id: &str) -> OAuthClient {
    OAuthClient {
        client_id: id.into(),
        client_secret: format!("secret-of-{id}"),
        name: String::new(),
        redirect_uris: String::new(),
        default_scope: "compute".into(),
    }
}

fn names(services: &[Service]) -> Vec<&str> {
    services.iter().map(|s| s.name.as_str()).collect()
}

async fn every_trait_method(store: &dyn Store) {
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
    for (token, expires_at) in [("x", 1), ("y", 2)] {
        store
            .save_access_token(&AccessToken {
                token: token.into(),
                expires_at,
            })
            .await
            .unwrap();
    }
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

/// The registry operations give the memory store's answers, in the same order.
async fn same_answers_as_the_memory_store(store: &dyn Store) {
    let memory = MemoryStore::new();
    let mut transcripts = Vec::new();
    for store in [store, &memory as &dyn Store] {
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

async fn update_keeps_the_position(store: &dyn Store) {
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

async fn one_lookup_finds_either_kind_of_token(store: &dyn Store) {
    store.save_client(&client("c")).await.unwrap();
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
    assert_eq!(store.find_token("").await.unwrap(), None);
}

async fn an_rpc_token_wins_over_an_oauth_token_of_the_same_string(store: &dyn Store) {
    store.save_client(&client("c")).await.unwrap();
    let oauth = OAuthToken {
        access_token: "both".into(),
        client_id: "c".into(),
        scope: "register".into(),
        expires_at: 2_000_000_000,
    };
    store.save_oauth_token(&oauth).await.unwrap();
    assert_eq!(
        store.find_token("both").await.unwrap(),
        Some(StoredToken::OAuth(oauth))
    );
    let rpc = AccessToken {
        token: "both".into(),
        expires_at: 1_999_999_999,
    };
    store.save_access_token(&rpc).await.unwrap();
    assert_eq!(
        store.find_token("both").await.unwrap(),
        Some(StoredToken::Rpc(rpc))
    );
}

/// Expiries the server writes (now + a lifetime, past ones, the epoch) come back as written.
async fn expiries_round_trip(store: &dyn Store) {
    store.save_client(&client("c")).await.unwrap();
    for expires_at in [0, 1, 1_795_896_555, 2_147_483_647, -1] {
        let rpc = AccessToken {
            token: format!("rpc{expires_at}"),
            expires_at,
        };
        store.save_access_token(&rpc).await.unwrap();
        assert_eq!(store.access_token(&rpc.token).await.unwrap(), Some(rpc));
        let oauth = OAuthToken {
            access_token: format!("oauth{expires_at}"),
            client_id: "c".into(),
            scope: "compute".into(),
            expires_at,
        };
        store.save_oauth_token(&oauth).await.unwrap();
        assert_eq!(
            store.find_token(&oauth.access_token).await.unwrap(),
            Some(StoredToken::OAuth(oauth))
        );
    }
}

/// Names, URLs and scopes are stored as given: case, spaces, non-ASCII, quotes.
async fn text_round_trips_unchanged(store: &dyn Store) {
    let odd = svc(
        "Ému's \"wps\"",
        "http://h/wps?a=1&b='2'",
        "WPS",
        "https://p/ö",
        false,
        "token",
        true,
    );
    store.save_service(&odd).await.unwrap();
    assert_eq!(
        store.service_by_name("Ému's \"wps\"").await.unwrap(),
        Some(odd.clone())
    );
    assert_eq!(
        store
            .service_by_url("http://h/wps?a=1&b='2'")
            .await
            .unwrap(),
        Some(odd)
    );
    let mut c = client("ü id");
    c.name = "名前".into();
    c.default_scope = "compute register".into();
    store.save_client(&c).await.unwrap();
    assert_eq!(store.client("ü id").await.unwrap(), Some(c));
}
