//! State the recordings reached by steps that are not replayed here (SETUP sections,
//! held-out cases, twitcherctl runs, the capture script), restored before the case that
//! first depends on it.

use std::path::Path;

use serde_json::Value;
use twitcher::store::Service;

use crate::Res;
use crate::bodies::rpc_member;
use crate::env::Env;
use crate::group::Family;
use crate::transcript::{Case, recorded};

/// Restores, before a case, the state the recording reached by steps that are not replayed
/// here: the SETUP of T05 case 4, held-out cases (T05 10 and 13, T06 101 and 102), the CLI
/// runs (T06 9 and 19: a client and its token; 129) and the capture script (T06: the
/// services of 130, the clients of 131–134 whose `default_scope` it set in the database).
pub async fn prepare(env: &Env, case: &Case, cases: &[Case], root: &Path) -> Res<()> {
    match (env.family, case.number) {
        (Family::T05, _) if !case.setup.is_empty() => {
            // `token = T (from generate_token())`: ours comes from our generate_token.
            for line in &case.setup {
                let Some(token) = line
                    .strip_prefix("token = ")
                    .and_then(|l| l.strip_suffix(" (from generate_token())"))
                else {
                    return Err(format!("SETUP line not understood: {line:?}"));
                };
                let ours = rpc_generate_token(env).await?;
                env.learn(vec![(token.trim().to_string(), ours)]);
            }
            Ok(())
        }
        // Held-out cases 10 and 13 registered what case 19 lists between emu_two and dup.
        (Family::T05, 14) => {
            let listed = rpc_services(&recorded(cases, 19, 1)?.response.body);
            fill(env, &listed, Some("dup")).await
        }
        (Family::T06, 53) => t06_cli_state(env, cases, root).await,
        // Held-out cases 101 and 102 registered what 109 lists between formsvc and 103's.
        (Family::T06, 103) => {
            let listed = json_services(&recorded(cases, 109, 1)?.response.body)?;
            fill(env, &listed, Some("abcdefghijklmnopqrstuvwxy")).await
        }
        // After the clear of 125: `emu` of the CLI run 129, the rest by the capture script.
        (Family::T06, 130) => {
            let listed = json_services(&recorded(cases, 130, 1)?.response.body)?;
            fill(env, &listed, None).await
        }
        (Family::T06, 131) => db_scoped_clients(env, cases).await,
        _ => Ok(()),
    }
}

/// Stores the listed services (in order, up to the one named `upto`) that are not stored.
async fn fill(env: &Env, listed: &[Service], upto: Option<&str>) -> Res<()> {
    let store = &env.app.store;
    for service in listed {
        if Some(service.name.as_str()) == upto {
            return Ok(());
        }
        let known = store
            .service_by_name(&service.name)
            .await
            .map_err(|e| e.to_string())?;
        if known.is_none() {
            store
                .save_service(service)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    match upto {
        Some(name) => Err(format!("{name} is not in the recorded list")),
        None => Ok(()),
    }
}

/// T06 before case 53: the client of the tutorial's `add` (case 9) and the compute token of
/// its `gentoken` (case 19), made through our endpoints; the services case 86 lists.
async fn t06_cli_state(env: &Env, cases: &[Case], root: &Path) -> Res<()> {
    let dir = root.join("compat/golden/v060/transcripts");
    let stderr = |file: &str| -> Res<String> {
        let path = dir.join(file);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
        Ok(v["stderr"].as_str().unwrap_or_default().to_string())
    };
    let add = stderr("09-tut-add.json")?;
    let field = |text: &str, key: &str| {
        py_str(text, key).ok_or_else(|| format!("no {key} in the recorded result"))
    };
    let (id, secret) = our_client(env, &field(&add, "name")?).await?;
    env.learn(vec![
        (field(&add, "client_id")?, id.clone()),
        (field(&add, "client_secret")?, secret.clone()),
    ]);
    let gentoken = stderr("19-tut-gentoken-compute.json")?;
    let token = our_token(env, &id, &secret, "compute").await?;
    env.learn(vec![(field(&gentoken, "access_token")?, token)]);
    let listed = json_services(&recorded(cases, 86, 1)?.response.body)?;
    fill(env, &listed, None).await
}

/// T06 before case 131: the capture script made two clients and set their `default_scope`
/// in the database (`register`: 131–132; `compute register`: 133–134). Ours are made through
/// `/oauth/client` and changed through the store.
async fn db_scoped_clients(env: &Env, cases: &[Case]) -> Res<()> {
    for (number, scope) in [(131, "register"), (133, "compute register")] {
        let body = recorded(cases, number, 1)?.body.clone();
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
        let field = |key: &str| {
            form.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("case {number} sends no {key}"))
        };
        let (id, secret) = our_client(env, "db-scoped").await?;
        let store = &env.app.store;
        let mut client = store
            .client(&id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the new client is not stored")?;
        client.default_scope = scope.to_string();
        store
            .save_client(&client)
            .await
            .map_err(|e| e.to_string())?;
        env.learn(vec![
            (field("client_id")?, id),
            (field("client_secret")?, secret),
        ]);
    }
    Ok(())
}

/// A client registered through our `/oauth/client` (basic auth demo / demo, as T06 ran).
async fn our_client(env: &Env, name: &str) -> Res<(String, String)> {
    let response = env
        .app
        .client
        .get(format!("{}/oauth/client", env.app.base))
        .query(&[("name", name)])
        .basic_auth("demo", Some("demo"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&body)
        .map_err(|e| format!("/oauth/client answered {status}: {body}: {e}"))?;
    let text = |key: &str| {
        v[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("/oauth/client answered {status} without {key}: {body}"))
    };
    Ok((text("client_id")?, text("client_secret")?))
}

/// A token from our `/oauth/token` (client credentials grant).
async fn our_token(env: &Env, id: &str, secret: &str, scope: &str) -> Res<String> {
    let response = env
        .app
        .client
        .post(format!("{}/oauth/token", env.app.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", scope),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["access_token"].as_str().map(str::to_string))
        .ok_or_else(|| format!("/oauth/token answered {status}: {body}"))
}

/// A token from our XML-RPC `generate_token()`.
async fn rpc_generate_token(env: &Env) -> Res<String> {
    let call = "<?xml version='1.0'?>\n<methodCall>\n<methodName>generate_token</methodName>\n<params>\n</params>\n</methodCall>\n";
    let response = env
        .app
        .client
        .post(format!("{}/RPC2", env.app.base))
        .header("Content-Type", "text/xml")
        .body(call)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    rpc_member(&body, "access_token")
        .ok_or_else(|| format!("generate_token answered {}", String::from_utf8_lossy(&body)))
}

/// The value of `'key': '…'` in a Python dict printed by twitcherctl.
fn py_str(text: &str, key: &str) -> Option<String> {
    let at = text.find(&format!("'{key}': '"))? + key.len() + 5;
    let end = text[at..].find('\'')?;
    Some(text[at..at + end].to_string())
}

/// The services of an XML-RPC `list_services` answer.
fn rpc_services(body: &[u8]) -> Vec<Service> {
    let text = String::from_utf8_lossy(body);
    text.split("<value><struct>")
        .skip(1)
        .filter_map(|item| {
            let item = item.as_bytes();
            let text = |k: &str| rpc_member(item, k);
            let flag = |k: &str| text(k).map(|v| v == "1");
            Some(Service {
                name: text("name")?,
                url: text("url")?,
                service_type: text("type")?.into(),
                purl: text("purl")?,
                public: flag("public")?,
                auth: text("auth")?.into(),
                verify: flag("verify")?,
            })
        })
        .collect()
}

/// The services of a REST `GET /services` answer.
fn json_services(body: &[u8]) -> Res<Vec<Service>> {
    let listed: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(listed
        .as_array()
        .into_iter()
        .flatten()
        .map(service_from_json)
        .collect())
}

/// A service of a REST listing (missing fields empty or false).
fn service_from_json(s: &Value) -> Service {
    let text = |k: &str| {
        s.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let flag = |k: &str| s.get(k).and_then(Value::as_bool).unwrap_or_default();
    Service {
        name: text("name"),
        url: text("url"),
        service_type: text("type").into(),
        purl: text("purl"),
        public: flag("public"),
        auth: text("auth").into(),
        verify: flag("verify"),
    }
}
