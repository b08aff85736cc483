//! The XML-RPC methods of the 0.5 series, with the original's argument defaults and
//! result shapes. Reads show service URLs as the caller may see them ([`Viewer`]).

use dxr::Value;

use super::RpcFault;
use super::xml::RpcValue;
use crate::app::App;
use crate::registry::{self, RegistryError, ServiceFields, Viewer};
use crate::store::{AccessToken, Service};

/// Runs one call.
pub async fn dispatch(
    app: &App,
    method: &str,
    params: Vec<Value>,
    viewer: Viewer,
) -> Result<RpcValue, RpcFault> {
    let args = Args { method, params };
    let store = app.store.as_ref();
    let failed = RpcFault::from;
    match method {
        "generate_token" => {
            args.at_most(1)?;
            let hours = match args.params.first() {
                None => 1.0,
                Some(v) => number(v).ok_or_else(|| args.invalid("valid_in_hours", "a number"))?,
            };
            let expires_at = expiry(now_f64(), hours)?;
            let token = uuid::Uuid::new_v4().simple().to_string();
            store
                .save_access_token(&AccessToken {
                    token: token.clone(),
                    expires_at: expires_at.into(),
                })
                .await
                .map_err(failed)?;
            Ok(RpcValue::Struct(vec![
                ("access_token", RpcValue::Str(token)),
                ("expires_at", RpcValue::Int(expires_at)),
            ]))
        }
        "revoke_token" => {
            args.exactly(&["token"])?;
            let token = args.string(0, "token")?;
            Ok(RpcValue::Bool(
                store.delete_access_token(&token).await.map_err(failed)?,
            ))
        }
        "revoke_all_tokens" => {
            args.exactly(&[])?;
            store.clear_access_tokens().await.map_err(failed)?;
            Ok(RpcValue::Bool(true))
        }
        "register_service" => {
            args.between(&["name", "url"], 1)?;
            let name = args.string(0, "name")?;
            let url = args.string(1, "url")?;
            let fields = match args.params.get(2) {
                None => ServiceFields::default(),
                Some(Value::Struct(data)) => service_fields(data)?,
                Some(_) => return Err(args.invalid("data", "a struct")),
            };
            let service = registry::build_service(&name, &url, fields)
                .map_err(|e| RpcFault::Application(e.to_string()))?;
            let Some(service) = service else {
                return Ok(RpcValue::Struct(Vec::new()));
            };
            store.save_service(&service).await.map_err(failed)?;
            // The original answered with the URL as given (query included) but stored it
            // without. The caller sent that URL: it is answered whole.
            Ok(service_value(&Service { url, ..service }, Viewer::Manager))
        }
        "unregister_service" => {
            args.exactly(&["name"])?;
            let name = args.string(0, "name")?;
            Ok(RpcValue::Bool(
                store.delete_service(&name).await.map_err(failed)?,
            ))
        }
        "get_service_by_name" => {
            args.exactly(&["name"])?;
            let found = store
                .service_by_name(&args.string(0, "name")?)
                .await
                .map_err(failed)?;
            Ok(found
                .as_ref()
                .map_or(RpcValue::Struct(Vec::new()), |s| service_value(s, viewer)))
        }
        "get_service_by_url" => {
            args.exactly(&["url"])?;
            let found = store
                .service_by_url(&args.string(0, "url")?)
                .await
                .map_err(failed)?;
            Ok(found
                .as_ref()
                .map_or(RpcValue::Struct(Vec::new()), |s| service_value(s, viewer)))
        }
        "list_services" => {
            args.exactly(&[])?;
            let services = store.list_services().await.map_err(failed)?;
            Ok(RpcValue::Array(
                services.iter().map(|s| service_value(s, viewer)).collect(),
            ))
        }
        "clear_services" => {
            args.exactly(&[])?;
            store.clear_services().await.map_err(failed)?;
            Ok(RpcValue::Bool(true))
        }
        other => Err(RpcFault::MethodNotFound(other.to_string())),
    }
}

/// A service as the original's XML-RPC interface returned it (member order matters), its
/// URL as `viewer` may see it.
pub fn service_value(s: &Service, viewer: Viewer) -> RpcValue {
    RpcValue::Struct(vec![
        ("url", RpcValue::str(viewer.url(&s.url))),
        ("name", RpcValue::str(&s.name)),
        ("type", RpcValue::str(s.service_type.as_str())),
        ("purl", RpcValue::str(&s.purl)),
        ("public", RpcValue::Bool(s.public)),
        ("auth", RpcValue::str(s.auth.as_str())),
        ("verify", RpcValue::Bool(s.verify)),
    ])
}

/// The parameters of one call, with checks that name the method and argument.
struct Args<'a> {
    method: &'a str,
    params: Vec<Value>,
}

impl Args<'_> {
    fn at_most(&self, n: usize) -> Result<(), RpcFault> {
        if self.params.len() > n {
            return Err(RpcFault::InvalidParams(format!(
                "{}: too many arguments",
                self.method
            )));
        }
        Ok(())
    }

    fn exactly(&self, names: &[&str]) -> Result<(), RpcFault> {
        self.between(names, 0)
    }

    /// `names` are required, up to `optional` more may follow.
    fn between(&self, names: &[&str], optional: usize) -> Result<(), RpcFault> {
        self.at_most(names.len() + optional)?;
        match names.get(self.params.len()) {
            Some(missing) => Err(RpcFault::InvalidParams(format!(
                "{}: argument {missing} was omitted",
                self.method
            ))),
            None => Ok(()),
        }
    }

    fn string(&self, index: usize, name: &str) -> Result<String, RpcFault> {
        match self.params.get(index) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(self.invalid(name, "a string")),
        }
    }

    fn invalid(&self, name: &str, expected: &str) -> RpcFault {
        RpcFault::InvalidParams(format!(
            "{}: argument {name} must be {expected}",
            self.method
        ))
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(i) => Some(f64::from(*i)),
        Value::Long(l) => Some(*l as f64),
        Value::Double(d) if d.is_finite() => Some(*d),
        Value::Boolean(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

fn now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// `int(now + hours * 3600)`, refused when XML-RPC's 32-bit integers cannot carry it
/// (Python's `xmlrpc.client` would fail to send such a value back).
fn expiry(now: f64, hours: f64) -> Result<i32, RpcFault> {
    let at = (now + hours * 3600.0).trunc();
    if at >= f64::from(i32::MIN) && at <= f64::from(i32::MAX) {
        Ok(at as i32)
    } else {
        Err(RpcFault::InvalidParams(
            "generate_token: valid_in_hours is out of range (expires_at must fit a 32-bit XML-RPC integer)".into(),
        ))
    }
}

/// The optional `data` struct of `register_service`; unknown keys are ignored.
fn service_fields(
    data: &std::collections::BTreeMap<String, Value>,
) -> Result<ServiceFields, RpcFault> {
    let text = |key: &str| -> Result<Option<String>, RpcFault> {
        match data.get(key) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(RpcFault::InvalidParams(format!(
                "register_service: data.{key} must be a string"
            ))),
        }
    };
    let flag = |key: &'static str| -> Result<Option<bool>, RpcFault> {
        let read = match data.get(key) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(Value::Integer(i)) => registry::number_flag(key, i64::from(*i)).map(Some),
            Some(Value::Long(l)) => registry::number_flag(key, *l).map(Some),
            Some(Value::String(s)) => registry::text_flag(key, s),
            Some(_) => Err(RegistryError::NotABoolean { field: key }),
        };
        read.map_err(|e| RpcFault::InvalidParams(format!("register_service: data.{e}")))
    };
    Ok(ServiceFields {
        service_type: text("type")?,
        purl: text("purl")?,
        public: flag("public")?,
        auth: text("auth")?,
        verify: flag("verify")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_truncates_and_checks_the_range() {
        assert_eq!(expiry(1000.7, 1.5).unwrap(), 6400);
        assert_eq!(expiry(1000.0, -1.0).unwrap(), -2600);
        assert!(expiry(1_700_000_000.0, 1_000_000.0).is_err());
    }
}
