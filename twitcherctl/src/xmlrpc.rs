//! XML-RPC encoding and decoding for the calls twitcherctl makes at `/RPC2`.
//!
//! Hand-built on quick-xml rather than with `dxr`: `dxr` keeps struct members in a
//! `BTreeMap`, which sorts them, and the output must show members in the order the server
//! sent them (`{'url': …, 'name': …, 'type': …}`). Values map onto `serde_json::Value`
//! (order-preserving objects) so that one printer serves REST and XML-RPC results alike.

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use quick_xml::reader::Reader;
use serde_json::{Map, Number, Value};

/// The server answered with an XML-RPC `<fault>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// `faultCode`, e.g. -32601 for an unknown method.
    pub code: i64,
    /// `faultString`, the server's explanation.
    pub message: String,
}

/// The body is not an XML-RPC method response.
#[derive(Debug, thiserror::Error)]
#[error("not an XML-RPC response: {0}")]
pub struct DecodeError(String);

/// The `<methodCall>` document for `method(params…)`.
pub fn encode_call(method: &str, params: &[Value]) -> String {
    let mut out = String::from("<?xml version=\"1.0\"?>\n<methodCall>\n<methodName>");
    out.push_str(&escape(method));
    out.push_str("</methodName>\n<params>\n");
    for param in params {
        out.push_str("<param>\n");
        encode_value(&mut out, param);
        out.push_str("\n</param>\n");
    }
    out.push_str("</params>\n</methodCall>\n");
    out
}

fn encode_value(out: &mut String, value: &Value) {
    out.push_str("<value>");
    match value {
        Value::Null => out.push_str("<nil/>"),
        Value::Bool(b) => {
            out.push_str(if *b {
                "<boolean>1</boolean>"
            } else {
                "<boolean>0</boolean>"
            });
        }
        Value::Number(n) => match n.as_i64() {
            Some(i) if i32::try_from(i).is_ok() => out.push_str(&format!("<int>{i}</int>")),
            Some(i) => out.push_str(&format!("<i8>{i}</i8>")),
            None => out.push_str(&format!("<double>{}</double>", n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => {
            out.push_str("<string>");
            out.push_str(&escape(s.as_str()));
            out.push_str("</string>");
        }
        Value::Array(items) => {
            out.push_str("<array><data>\n");
            for item in items {
                encode_value(out, item);
                out.push('\n');
            }
            out.push_str("</data></array>");
        }
        Value::Object(members) => {
            out.push_str("<struct>\n");
            for (name, item) in members {
                out.push_str("<member>\n<name>");
                out.push_str(&escape(name.as_str()));
                out.push_str("</name>\n");
                encode_value(out, item);
                out.push_str("\n</member>\n");
            }
            out.push_str("</struct>");
        }
    }
    out.push_str("</value>");
}

/// Decodes a `<methodResponse>`: the returned value, or the fault the server raised.
pub fn decode_response(body: &[u8]) -> Result<Result<Value, Fault>, DecodeError> {
    let root = parse_tree(body)?;
    if root.name != "methodResponse" {
        return Err(DecodeError(format!("root element is <{}>", root.name)));
    }
    if let Some(fault) = root.child("fault") {
        let value = decode_value(
            fault
                .child("value")
                .ok_or_else(|| missing("value in <fault>"))?,
        )?;
        let code = value.get("faultCode").and_then(Value::as_i64).unwrap_or(0);
        let message = value
            .get("faultString")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        return Ok(Err(Fault { code, message }));
    }
    let params = root
        .child("params")
        .ok_or_else(|| missing("<params> or <fault>"))?;
    match params.child("param").and_then(|p| p.child("value")) {
        Some(value) => Ok(Ok(decode_value(value)?)),
        None => Ok(Ok(Value::Null)),
    }
}

fn missing(what: &str) -> DecodeError {
    DecodeError(format!("missing {what}"))
}

fn decode_value(value: &Element) -> Result<Value, DecodeError> {
    // `<value>text</value>` without a type element is a string.
    let Some(typed) = value.children.first() else {
        return Ok(Value::String(value.text.clone()));
    };
    let text = typed.text.as_str();
    let number = |t: &str| -> Result<Value, DecodeError> {
        t.trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| DecodeError(format!("bad <{}> {t:?}", typed.name)))
    };
    match typed.name.as_str() {
        "string" => Ok(Value::String(text.to_owned())),
        "int" | "i4" | "i8" => number(text),
        "boolean" => match text.trim() {
            "1" => Ok(Value::Bool(true)),
            "0" => Ok(Value::Bool(false)),
            other => Err(DecodeError(format!("bad <boolean> {other:?}"))),
        },
        "double" => {
            let x: f64 = text
                .trim()
                .parse()
                .map_err(|_| DecodeError(format!("bad <double> {text:?}")))?;
            // JSON has no NaN or infinities; nothing twitcher sends needs them.
            Ok(Number::from_f64(x).map_or(Value::Null, Value::Number))
        }
        "nil" => Ok(Value::Null),
        // Shown as their text, as nothing twitcher answers uses them.
        "dateTime.iso8601" | "base64" => Ok(Value::String(text.trim().to_owned())),
        "array" => {
            let data = typed
                .child("data")
                .ok_or_else(|| missing("<data> in <array>"))?;
            data.children
                .iter()
                .map(decode_value)
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        "struct" => {
            let mut members = Map::new();
            for member in typed.children.iter().filter(|c| c.name == "member") {
                let name = member
                    .child("name")
                    .ok_or_else(|| missing("<name> in <member>"))?;
                let item = member
                    .child("value")
                    .ok_or_else(|| missing("<value> in <member>"))?;
                members.insert(name.text.clone(), decode_value(item)?);
            }
            Ok(Value::Object(members))
        }
        other => Err(DecodeError(format!("unknown value type <{other}>"))),
    }
}

/// Just enough of a DOM for XML-RPC: element names, children and text.
#[derive(Debug, Default)]
struct Element {
    name: String,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
}

fn parse_tree(body: &[u8]) -> Result<Element, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|e| DecodeError(e.to_string()))?;
    let mut reader = Reader::from_str(text);
    let bad = |e: &dyn std::fmt::Display| DecodeError(e.to_string());
    let mut stack: Vec<Element> = Vec::new();
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(start) => stack.push(Element {
                name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                ..Element::default()
            }),
            Event::Empty(start) => {
                let element = Element {
                    name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| DecodeError("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content().map_err(|e| bad(&e))?);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.decode().map_err(|e| bad(&e))?);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|e| bad(&e))?;
                        resolve_predefined_entity(&name)
                            .ok_or_else(|| DecodeError(format!("unknown entity &{name};")))?
                            .to_owned()
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => return Err(DecodeError("document ended early".into())),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn encodes_a_call_without_params() {
        assert_eq!(
            encode_call("list_services", &[]),
            "<?xml version=\"1.0\"?>\n<methodCall>\n<methodName>list_services</methodName>\n<params>\n</params>\n</methodCall>\n"
        );
    }

    #[test]
    fn encodes_register_service_like_the_05_client() {
        let data =
            json!({"type": "wps", "purl": "", "public": false, "auth": "token", "verify": "true"});
        let xml = encode_call(
            "register_service",
            &[json!("emu"), json!("http://x/wps?a=1&b=<2>"), data],
        );
        insta::assert_snapshot!(xml);
    }

    #[test]
    fn encodes_numbers_and_nil() {
        let xml = encode_call(
            "f",
            &[
                json!(24),
                json!(5_000_000_000_i64),
                json!(1.5),
                Value::Null,
                json!([1, "a"]),
            ],
        );
        assert!(xml.contains("<value><int>24</int></value>"));
        assert!(xml.contains("<value><i8>5000000000</i8></value>"));
        assert!(xml.contains("<value><double>1.5</double></value>"));
        assert!(xml.contains("<value><nil/></value>"));
        assert!(xml.contains("<array><data>\n<value><int>1</int></value>\n<value><string>a</string></value>\n</data></array>"));
    }

    #[test]
    fn decodes_a_struct_keeping_member_order() {
        // The response body of golden/v056 case 07.
        let body = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><struct>\n\
            <member>\n<name>url</name>\n<value><string>http://127.0.0.1:15056/wps</string></value>\n</member>\n\
            <member>\n<name>name</name>\n<value><string>emu</string></value>\n</member>\n\
            <member>\n<name>type</name>\n<value><string>WPS</string></value>\n</member>\n\
            <member>\n<name>purl</name>\n<value><string></string></value>\n</member>\n\
            <member>\n<name>public</name>\n<value><boolean>0</boolean></value>\n</member>\n\
            <member>\n<name>auth</name>\n<value><string>token</string></value>\n</member>\n\
            <member>\n<name>verify</name>\n<value><boolean>1</boolean></value>\n</member>\n\
            </struct></value>\n</param>\n</params>\n</methodResponse>";
        let value = decode_response(body.as_bytes()).unwrap().unwrap();
        assert_eq!(
            crate::pyrepr::repr(&value),
            "{'url': 'http://127.0.0.1:15056/wps', 'name': 'emu', 'type': 'WPS', 'purl': '', 'public': False, 'auth': 'token', 'verify': True}"
        );
    }

    #[test]
    fn decodes_scalars_arrays_and_escapes() {
        let body = "<methodResponse><params><param><value><array><data>\
            <value><i4> 7 </i4></value><value><int>-1</int></value><value><i8>5000000000</i8></value>\
            <value>untyped &amp; bare</value><value><string> a &lt;b&gt; &#233;&#x263A; </string></value>\
            <value><double>1.5</double></value><value><nil/></value><value><boolean>1</boolean></value>\
            <value><string><![CDATA[<raw>]]></string></value><value><array><data></data></array></value>\
            <value><struct></struct></value>\
            </data></array></value></param></params></methodResponse>";
        let value = decode_response(body.as_bytes()).unwrap().unwrap();
        assert_eq!(
            value,
            json!([
                7,
                -1,
                5_000_000_000_i64,
                "untyped & bare",
                " a <b> é☺ ",
                1.5,
                null,
                true,
                "<raw>",
                [],
                {}
            ])
        );
    }

    #[test]
    fn decodes_a_fault() {
        let body = "<?xml version=\"1.0\"?><methodResponse><fault><value><struct>\
            <member><name>faultCode</name><value><int>-32601</int></value></member>\
            <member><name>faultString</name><value><string>method not found: nosuch</string></value></member>\
            </struct></value></fault></methodResponse>";
        let fault = decode_response(body.as_bytes()).unwrap().unwrap_err();
        assert_eq!(
            fault,
            Fault {
                code: -32601,
                message: "method not found: nosuch".into()
            }
        );
    }

    #[test]
    fn rejects_what_is_not_a_method_response() {
        for body in [
            "",
            "not xml",
            "<ExceptionReport/>",
            "<methodResponse><params><param><value><int>x</int></value></param></params></methodResponse>",
            "<methodResponse><params><param><value><struct>",
        ] {
            assert!(decode_response(body.as_bytes()).is_err(), "{body:?}");
        }
    }

    #[test]
    fn round_trip() {
        let value = json!({"z": [1, true, "x"], "a": {"nested": null}, "f": 2.5});
        let xml = encode_call("m", std::slice::from_ref(&value));
        let response = xml
            .replace("<methodCall>", "<methodResponse>")
            .replace("</methodCall>", "</methodResponse>")
            .replace("<methodName>m</methodName>", "");
        assert_eq!(
            decode_response(response.as_bytes()).unwrap().unwrap(),
            value
        );
    }
}
