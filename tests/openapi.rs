//! `GET /__api__`: the OpenAPI document describes exactly the routes the server has, and
//! its schemas describe what the server really answers.

mod common;

use std::collections::BTreeSet;

use common::TestApp;
use reqwest::Method;
use serde_json::Value;
use twitcher::store::Service;

/// Operation keys of an OpenAPI 3 path item.
const OPERATIONS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Methods probed on every route. HEAD is answered wherever GET is (and implied by it in
/// the document); TRACE is not served anywhere.
const PROBED: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// twitcher with a management user, a registered `emu` for `{name}`, and its document.
async fn setup() -> (TestApp, Value) {
    let app = TestApp::start_with(|c| {
        c.username = Some("demo".into());
        c.password = Some("demo".into());
    })
    .await;
    app.register(Service::new("emu", "http://127.0.0.1:1/wps"))
        .await;
    let response = app.get("/__api__").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let doc: Value = serde_json::from_str(&response.text().await.unwrap()).expect("valid JSON");
    (app, doc)
}

/// Sends `method` to a path of the document with `{name}` = `emu` and the management
/// user's credentials; returns the status.
async fn probe(app: &TestApp, method: &str, path: &str) -> u16 {
    let concrete = path.replace("{name}", "emu");
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app
        .client
        .request(method.clone(), format!("{}{concrete}", app.base))
        .basic_auth("demo", Some("demo"));
    if method == Method::POST || method == Method::PUT || method == Method::PATCH {
        request = request
            .header("Content-Type", "application/json")
            .body("{}");
    }
    request.send().await.expect("request").status().as_u16()
}

/// A route answers a method when it neither falls through to the not-found fallback (404)
/// nor refuses the method (405).
fn answered(status: u16) -> bool {
    status != 404 && status != 405
}

/// The `(path, method)` operations the document lists, methods in upper case.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for op in OPERATIONS {
            if item.get(op).is_some() {
                out.insert((path.clone(), op.to_ascii_uppercase()));
            }
        }
    }
    out
}

/// `(method, path)` pairs of `route` the server answers but the document does not list.
async fn undocumented(app: &TestApp, doc: &Value, route: &str) -> Vec<String> {
    let listed = documented(doc);
    let mut missing = Vec::new();
    for method in PROBED {
        if answered(probe(app, method, route).await)
            && !listed.contains(&(route.to_string(), method.to_string()))
        {
            missing.push(format!("{method} {route}"));
        }
    }
    missing
}

#[tokio::test]
async fn the_document_is_openapi_3_json() {
    let (app, doc) = setup().await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "openapi: {}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert!(!doc["paths"].as_object().expect("paths").is_empty());

    // Every `$ref` points at something in the document.
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
    // Every operation says what it answers.
    for (path, method) in documented(&doc) {
        let op = &doc["paths"][&path][method.to_ascii_lowercase()];
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path} has no responses"
        );
    }

    let head = app
        .client
        .head(format!("{}/__api__", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "application/json");
    assert_eq!(
        app.client
            .post(format!("{}/__api__", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
}

#[tokio::test]
async fn every_documented_operation_is_a_real_route() {
    let (app, doc) = setup().await;
    // The probe tells routes from non-routes.
    assert_eq!(probe(&app, "GET", "/nosuch/route").await, 404);
    assert_eq!(probe(&app, "PUT", "/services").await, 405);
    assert_eq!(probe(&app, "PUT", "/services/{name}").await, 405);

    let operations = documented(&doc);
    assert!(operations.len() >= 9, "{operations:?}");
    let mut unrouted = Vec::new();
    // DELETE last, so `{name}` still exists for the other methods.
    let mut ordered: Vec<_> = operations.iter().collect();
    ordered.sort_by_key(|(path, method)| (method == "DELETE", path.clone()));
    for (path, method) in ordered {
        let status = probe(&app, method, path).await;
        if !answered(status) {
            unrouted.push(format!("{method} {path} -> {status}"));
        }
    }
    assert!(
        unrouted.is_empty(),
        "documented but not served: {unrouted:?}"
    );
}

#[tokio::test]
async fn the_registry_routes_are_documented_with_every_method() {
    let (app, doc) = setup().await;
    let mut missing = undocumented(&app, &doc, "/services").await;
    missing.extend(undocumented(&app, &doc, "/services/{name}").await);
    assert!(missing.is_empty(), "served but not documented: {missing:?}");
    // And each of them really is in the document (the probe found them answered).
    let listed = documented(&doc);
    for (path, method) in [
        ("/services", "GET"),
        ("/services", "POST"),
        ("/services", "DELETE"),
        ("/services/{name}", "GET"),
        ("/services/{name}", "DELETE"),
    ] {
        assert!(
            listed.contains(&(path.into(), method.into())),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn the_oauth_client_route_is_documented_with_every_method() {
    let (app, doc) = setup().await;
    let missing = undocumented(&app, &doc, "/oauth/client").await;
    assert!(missing.is_empty(), "served but not documented: {missing:?}");
    assert!(documented(&doc).contains(&("/oauth/client".into(), "GET".into())));
}

#[tokio::test]
async fn the_oauth_token_route_is_documented_with_every_method() {
    let (app, doc) = setup().await;
    let missing = undocumented(&app, &doc, "/oauth/token").await;
    assert!(missing.is_empty(), "served but not documented: {missing:?}");
}

#[tokio::test]
async fn the_verify_route_is_documented_for_get_and_post() {
    let (app, doc) = setup().await;
    let listed = documented(&doc);
    for method in ["GET", "POST"] {
        assert!(answered(probe(&app, method, "/ows/verify/{name}").await));
        assert!(
            listed.contains(&("/ows/verify/{name}".into(), method.into())),
            "{method} /ows/verify/{{name}} is served but not documented"
        );
    }
}

/// The keys of a schema's `properties` and its `required` list.
fn schema_keys(doc: &Value, schema: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let s = &doc["components"]["schemas"][schema];
    let properties = s["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema {schema} has no properties"))
        .keys()
        .cloned()
        .collect();
    let required = s["required"]
        .as_array()
        .map(|r| r.iter().map(|k| k.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    (properties, required)
}

/// How closely an answer must follow its schema.
#[derive(Clone, Copy, PartialEq)]
enum Keys {
    /// Every property is always answered, and the schema requires all of them.
    AllRequired,
    /// Every property is answered here (some are optional in general).
    All,
    /// Only documented properties, at least the required ones.
    Subset,
}

/// Checks the keys of a JSON object answered by the server against a schema, and that
/// each value has the documented type.
fn assert_matches_schema(doc: &Value, schema: &str, answer: &Value, expect: Keys) {
    let object = answer
        .as_object()
        .unwrap_or_else(|| panic!("{schema}: {answer}"));
    let keys: BTreeSet<String> = object.keys().cloned().collect();
    let (properties, required) = schema_keys(doc, schema);
    assert!(
        keys.is_subset(&properties),
        "{schema}: undocumented keys {:?}",
        keys.difference(&properties).collect::<Vec<_>>()
    );
    assert!(
        required.is_subset(&keys),
        "{schema}: required {required:?}, got {keys:?}"
    );
    if expect != Keys::Subset {
        assert_eq!(
            keys, properties,
            "{schema}: answered keys vs. documented properties"
        );
    }
    if expect == Keys::AllRequired {
        assert_eq!(
            required, properties,
            "{schema}: every key is always present"
        );
    }
    for (key, value) in object {
        let documented = &doc["components"]["schemas"][schema]["properties"][key];
        let ty = documented["type"].as_str().unwrap_or_default();
        let ok = match value {
            Value::String(_) => ty == "string",
            Value::Bool(_) => ty == "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => ty == "integer" || ty == "number",
            Value::Number(_) => ty == "number",
            Value::Array(_) => ty == "array",
            Value::Object(_) => ty == "object",
            Value::Null => documented["nullable"] == true,
        };
        assert!(ok, "{schema}.{key}: {value} is not documented type {ty:?}");
    }
}

#[tokio::test]
async fn the_service_schema_is_what_service_json_produces() {
    let (app, doc) = setup().await;
    let created = app
        .client
        .post(format!("{}/services", app.base))
        .basic_auth("demo", Some("demo"))
        .body(r#"{"name": "full", "url": "http://h/w", "type": "wms", "purl": "http://p/w", "auth": "cert", "verify": false, "public": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let created: Value = serde_json::from_str(&created.text().await.unwrap()).unwrap();
    let read = app.get("/services/full").await.text().await.unwrap();
    let read: Value = serde_json::from_str(&read).unwrap();
    assert_eq!(read, created);
    assert_matches_schema(&doc, "Service", &read, Keys::AllRequired);
    let list = app.get("/services").await.text().await.unwrap();
    let list: Value = serde_json::from_str(&list).unwrap();
    for service in list.as_array().unwrap() {
        assert_matches_schema(&doc, "Service", service, Keys::AllRequired);
    }
    // The list and single reads of the paths refer to that schema.
    let list_schema = &doc["paths"]["/services"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    assert_eq!(list_schema["items"]["$ref"], "#/components/schemas/Service");
    // Registration fields are the service's fields (minus the derived nothing).
    let (registration, required) = schema_keys(&doc, "ServiceRegistration");
    let (service, _) = schema_keys(&doc, "Service");
    assert_eq!(registration, service);
    assert_eq!(
        required,
        BTreeSet::from(["name".to_string(), "url".to_string()])
    );
}

#[tokio::test]
async fn the_other_schemas_are_what_the_server_answers() {
    let (app, doc) = setup().await;
    let json = |text: String| -> Value { serde_json::from_str(&text).unwrap() };

    // 400 validation error and its items.
    let invalid = app
        .client
        .post(format!("{}/services", app.base))
        .basic_auth("demo", Some("demo"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    let invalid = json(invalid.text().await.unwrap());
    assert_matches_schema(&doc, "ValidationError", &invalid, Keys::All);
    let item_keys: BTreeSet<String> = doc["components"]["schemas"]["ValidationError"]["properties"]
        ["errors"]["items"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for error in invalid["errors"].as_array().unwrap() {
        let keys: BTreeSet<String> = error.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, item_keys);
    }

    // 401 of a management route.
    let refused = app
        .client
        .delete(format!("{}/services", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_matches_schema(
        &doc,
        "HttpError",
        &json(refused.text().await.unwrap()),
        Keys::All,
    );

    // The OAuth client and token.
    let client = app
        .client
        .post(format!("{}/oauth/client", app.base))
        .basic_auth("demo", Some("demo"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("name=doc&redirect_uri=http%3A%2F%2Fr")
        .send()
        .await
        .unwrap();
    assert_eq!(client.status(), 200);
    let client = json(client.text().await.unwrap());
    assert_matches_schema(&doc, "Client", &client, Keys::All);
    let token = app
        .client
        .post(format!("{}/oauth/token", app.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&state=s1",
            client["client_id"].as_str().unwrap(),
            client["client_secret"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    assert_matches_schema(
        &doc,
        "TokenResponse",
        &json(token.text().await.unwrap()),
        Keys::All,
    );
    let error = app
        .client
        .post(format!("{}/oauth/token", app.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=password")
        .send()
        .await
        .unwrap();
    assert_eq!(error.status(), 400);
    assert_matches_schema(
        &doc,
        "OAuthError",
        &json(error.text().await.unwrap()),
        Keys::Subset,
    );

    // The access decision, both ways.
    for query in [
        "service=WPS&request=GetCapabilities",
        "service=WPS&request=Execute&version=1.0.0",
    ] {
        let decision = app.get(&format!("/ows/verify/emu?{query}")).await;
        assert!(matches!(decision.status().as_u16(), 200 | 403));
        assert_matches_schema(
            &doc,
            "AccessDecision",
            &json(decision.text().await.unwrap()),
            Keys::AllRequired,
        );
    }
}
