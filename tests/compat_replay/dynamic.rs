//! Values the original made up (client ids, secrets, tokens) mapped to the ones twitcher
//! made: learnt from responses, put into later requests and recorded bodies.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use crate::bodies::rpc_member;
use crate::bytes::{find, replace_bytes};
use crate::env::Env;
use crate::wire::Message;

/// The kinds of values that differ from run to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dynamic {
    /// OAuth client ids and secrets, XML-RPC tokens: uuid4 as 32 lower-case hex digits.
    Hex32,
    /// OAuth access tokens (`random_token`): 30 characters `[A-Za-z0-9]`.
    OAuthToken,
}

impl Dynamic {
    /// Whether `value` is of this kind.
    pub fn fits(self, value: &str) -> bool {
        match self {
            Dynamic::Hex32 => {
                value.len() == 32
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            }
            Dynamic::OAuthToken => {
                value.len() == 30 && value.bytes().all(|b| b.is_ascii_alphanumeric())
            }
        }
    }
}

impl std::fmt::Display for Dynamic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dynamic::Hex32 => "32 lower-case hex digits",
            Dynamic::OAuthToken => "30 characters [A-Za-z0-9]",
        })
    }
}

/// Learns the dynamic values of a response: where the recording shows a client id, secret
/// or token and ours shows one of the same kind, later requests and recorded bodies get ours
/// instead (`Env::map`). Values of the wrong kind are problems.
pub fn learn(env: &Env, recorded: &Message, got: &Message) -> Vec<String> {
    let mut found: Vec<(String, String, Dynamic, &str)> = Vec::new();
    let json = |m: &Message| serde_json::from_slice::<Value>(&m.body).ok();
    if let (Some(r), Some(g)) = (json(recorded), json(got)) {
        for (key, kind) in [
            ("client_id", Dynamic::Hex32),
            ("client_secret", Dynamic::Hex32),
            ("access_token", Dynamic::OAuthToken),
        ] {
            if let (Some(r), Some(g)) = (
                r.get(key).and_then(Value::as_str),
                g.get(key).and_then(Value::as_str),
            ) {
                found.push((r.to_string(), g.to_string(), kind, key));
            }
        }
    }
    if let (Some(r), Some(g)) = (
        rpc_member(&recorded.body, "access_token"),
        rpc_member(&got.body, "access_token"),
    ) {
        found.push((r, g, Dynamic::Hex32, "access_token"));
    }
    let mut problems = Vec::new();
    let mut pairs = Vec::new();
    let learnt = env.learnt();
    for (recorded, ours, kind, key) in found {
        let reused = learnt.iter().find(|(r, o)| *o == ours && *r != recorded);
        if !kind.fits(&ours) {
            problems.push(format!("{key} {ours:?} is not {kind}"));
        } else if let Some((earlier, _)) = reused {
            // The recording shows a new value here; ours must be new too.
            problems.push(format!(
                "{key} {ours:?} was given before (for the recorded {earlier:?})"
            ));
        } else {
            pairs.push((recorded, ours));
        }
    }
    env.learn(pairs);
    problems
}

/// A recorded request with the learnt values put in: in the head, the body, and inside
/// basic credentials; `Content-Length` follows the body.
pub fn substitute_request(env: &Env, raw: &[u8]) -> Vec<u8> {
    let learnt = env.learnt();
    let Some(end) = find(raw, b"\r\n\r\n") else {
        return raw.to_vec();
    };
    if learnt.is_empty() {
        return raw.to_vec();
    }
    let swap = |text: &str| {
        learnt.iter().fold(text.to_string(), |t, (from, to)| {
            t.replace(from.as_str(), to)
        })
    };
    let body = learnt
        .iter()
        .fold(raw[end + 4..].to_vec(), |b, (from, to)| {
            replace_bytes(&b, from.as_bytes(), to.as_bytes())
        });
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut out = String::new();
    for line in head.split("\r\n") {
        let line = swap(line);
        let line = match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("authorization") => {
                let value = value.trim();
                match value
                    .strip_prefix("Basic ")
                    .map(|b| BASE64.decode(b.trim()))
                {
                    Some(Ok(decoded)) => {
                        let credentials = swap(&String::from_utf8_lossy(&decoded));
                        format!("{name}: Basic {}", BASE64.encode(credentials))
                    }
                    _ => line.clone(),
                }
            }
            Some((name, _)) if name.eq_ignore_ascii_case("content-length") => {
                format!("{name}: {}", body.len())
            }
            _ => line,
        };
        out.push_str(&line);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend(body);
    bytes
}
