//! XML-RPC responses written byte for byte as Python's `xmlrpc.client.dumps` wrote them
//! for the original: struct members keep their order (Python clients build dicts in
//! document order, and scripts print them), one element per line, `&`, `<`, `>` escaped.

use std::fmt::Write;

/// A result value; structs are ordered member lists.
#[derive(Debug, Clone, PartialEq)]
pub enum RpcValue {
    /// `<int>`: only values within the 32-bit XML-RPC range may be written.
    Int(i32),
    /// `<boolean>`.
    Bool(bool),
    /// `<string>`.
    Str(String),
    /// `<struct>` with members in order.
    Struct(Vec<(&'static str, RpcValue)>),
    /// `<array>`.
    Array(Vec<RpcValue>),
}

impl RpcValue {
    /// A string value.
    pub fn str(s: impl Into<String>) -> RpcValue {
        RpcValue::Str(s.into())
    }
}

/// A `methodResponse` carrying one value.
pub fn method_response(value: &RpcValue) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n");
    write_value(&mut out, value);
    out.push_str("</param>\n</params>\n</methodResponse>\n");
    out
}

/// A `methodResponse` carrying a fault.
pub fn fault_response(code: i32, message: &str) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version='1.0'?>\n<methodResponse>\n<fault>\n");
    write_value(
        &mut out,
        &RpcValue::Struct(vec![
            ("faultCode", RpcValue::Int(code)),
            ("faultString", RpcValue::str(message)),
        ]),
    );
    out.push_str("</fault>\n</methodResponse>\n");
    out
}

fn write_value(out: &mut String, value: &RpcValue) {
    match value {
        RpcValue::Int(i) => {
            let _ = writeln!(out, "<value><int>{i}</int></value>");
        }
        RpcValue::Bool(b) => {
            let _ = writeln!(out, "<value><boolean>{}</boolean></value>", u8::from(*b));
        }
        RpcValue::Str(s) => {
            out.push_str("<value><string>");
            escape_into(out, s);
            out.push_str("</string></value>\n");
        }
        RpcValue::Struct(members) => {
            out.push_str("<value><struct>\n");
            for (name, member) in members {
                out.push_str("<member>\n<name>");
                escape_into(out, name);
                out.push_str("</name>\n");
                write_value(out, member);
                out.push_str("</member>\n");
            }
            out.push_str("</struct></value>\n");
        }
        RpcValue::Array(items) => {
            out.push_str("<value><array><data>\n");
            for item in items {
                write_value(out, item);
            }
            out.push_str("</data></array></value>\n");
        }
    }
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // Characters XML 1.0 cannot carry would make the whole response unreadable for
            // the client; they can only come from stored data, so they are replaced.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_struct_matches_the_recorded_bytes() {
        let service = RpcValue::Struct(vec![
            ("url", RpcValue::str("http://127.0.0.1:15056/wps")),
            ("name", RpcValue::str("emu")),
            ("type", RpcValue::str("wps")),
            ("purl", RpcValue::str("")),
            ("public", RpcValue::Bool(false)),
            ("auth", RpcValue::str("token")),
            ("verify", RpcValue::Bool(true)),
        ]);
        let expected = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><struct>\n<member>\n<name>url</name>\n<value><string>http://127.0.0.1:15056/wps</string></value>\n</member>\n<member>\n<name>name</name>\n<value><string>emu</string></value>\n</member>\n<member>\n<name>type</name>\n<value><string>wps</string></value>\n</member>\n<member>\n<name>purl</name>\n<value><string></string></value>\n</member>\n<member>\n<name>public</name>\n<value><boolean>0</boolean></value>\n</member>\n<member>\n<name>auth</name>\n<value><string>token</string></value>\n</member>\n<member>\n<name>verify</name>\n<value><boolean>1</boolean></value>\n</member>\n</struct></value>\n</param>\n</params>\n</methodResponse>\n";
        assert_eq!(method_response(&service), expected);
    }

    #[test]
    fn strings_are_escaped() {
        let body = method_response(&RpcValue::Array(vec![
            RpcValue::str("a<b>&c\u{1}"),
            RpcValue::Int(-3),
        ]));
        assert_eq!(
            body,
            "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><array><data>\n<value><string>a&lt;b&gt;&amp;c\u{fffd}</string></value>\n<value><int>-3</int></value>\n</data></array></value>\n</param>\n</params>\n</methodResponse>\n"
        );
    }
}
