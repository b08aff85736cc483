//! Print JSON-like results the way CPython prints the equivalent Python objects.
//!
//! The original `twitcherctl` handed its result (a dict, list, bool, …) to Python, which
//! printed it with `str()`: `{'name': 'emu', 'public': False}`. Scripts and people compare
//! against that text, so [`repr`] follows CPython's rules exactly: dict members in the order
//! the server sent them, `True`/`False`/`None`, strings quoted and escaped as `repr(str)` does,
//! floats as `repr(float)` does.

use std::fmt::Write as _;

use serde_json::{Number, Value};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// `str(value)` in Python: like [`repr`], except that a top-level string is printed bare
/// (this is what `print(obj)` and the original's `sys.exit(obj)` showed).
pub fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => repr(other),
    }
}

/// `repr(value)` in Python, for the value's natural Python counterpart
/// (object → dict, array → list, null → `None`, …).
pub fn repr(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, key);
                out.push_str(": ");
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else {
        out.push_str(&float_repr(n.as_f64().unwrap_or(f64::NAN)));
    }
}

/// `repr(s)` for a Python `str`: single quotes unless the text contains `'` and no `"`.
fn write_str(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c < ' ' || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_ascii() || is_printable(c) => out.push(c),
            c => {
                let code = c as u32;
                let _ = match code {
                    0..=0xff => write!(out, "\\x{code:02x}"),
                    0x100..=0xffff => write!(out, "\\u{code:04x}"),
                    _ => write!(out, "\\U{code:08x}"),
                };
            }
        }
    }
    out.push(quote);
}

/// CPython's `str.isprintable()` for one non-ASCII character: everything except the
/// "Other" and "Separator" general categories.
fn is_printable(c: char) -> bool {
    !matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::Surrogate
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::SpaceSeparator
    )
}

/// `repr(x)` for a Python `float`: the shortest digits that read back as `x`, in fixed
/// notation for decimal exponents -4..16 (`0.0001`, `1234.5`, `3600.0`) and in scientific
/// notation otherwise (`1e-05`, `1e+16`).
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // Rust's `{:e}` finds how many digits the shortest round-tripping form needs (`1.5e-5`,
    // `1e16`). When two such forms are equally close (x exactly halfway), Rust picks the
    // upper one and CPython the even one, so the digits come from the correctly rounded
    // (ties-to-even) formatting at that precision: 1951601819917218.25 → `…218.2`.
    let shortest = format!("{:e}", x.abs());
    let precision = shortest
        .split('e')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .count();
    let sci = format!("{:.*e}", precision.saturating_sub(1), x.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };

    if !(-4..16).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}{rest}e{exp_sign}{:02}", exponent.abs());
    }
    // Position of the decimal point counted from the start of `digits`.
    let point = exponent + 1;
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else {
        let point = point as usize;
        if point >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn service_list_as_the_original_printed_it() {
        let value: Value = serde_json::from_str(
            r#"[{"url": "http://localhost:15060/wps", "name": "emu", "type": "wps", "purl": "", "auth": "token", "public": false, "verify": true}]"#,
        )
        .unwrap();
        // Byte for byte the line of golden/v060 case 14.
        assert_eq!(
            repr(&value),
            "[{'url': 'http://localhost:15060/wps', 'name': 'emu', 'type': 'wps', 'purl': '', 'auth': 'token', 'public': False, 'verify': True}]"
        );
    }

    #[test]
    fn nested_structures() {
        let value = json!({
            "services": [
                {"name": "emu", "tags": ["a", "b"], "extra": {"deep": [1, [2, [3, {}]]]}},
                {"name": "other", "tags": [], "extra": null}
            ],
            "count": 2,
            "empty_list": [],
            "empty_dict": {}
        });
        insta::assert_snapshot!(repr(&value));
    }

    #[test]
    fn member_order_is_kept() {
        let value: Value = serde_json::from_str(r#"{"z": 1, "a": 2, "m": 3}"#).unwrap();
        assert_eq!(repr(&value), "{'z': 1, 'a': 2, 'm': 3}");
    }

    #[test]
    fn quotes() {
        let cases = [
            "plain",
            "it's",
            r#"say "hi""#,
            r#"both ' and ""#,
            "back\\slash",
            "'",
            "\"",
            "",
        ];
        let lines: Vec<String> = cases.iter().map(|s| repr(&json!(s))).collect();
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn control_characters() {
        let cases = [
            "tab\there",
            "new\nline",
            "cr\rhere",
            "nul\0",
            "bell\x07",
            "esc\x1b[0m",
            "del\x7f",
        ];
        let lines: Vec<String> = cases.iter().map(|s| repr(&json!(s))).collect();
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn unicode() {
        let cases = [
            "Grüße aus Köln",
            "日本語",
            "emoji 🦜",
            "nbsp\u{a0}here",
            "soft\u{ad}hyphen",
            "c1 \u{85} control",
            "zero\u{200b}width",
            "line\u{2028}sep",
            "bom\u{feff}",
            "private\u{e000}",
            "unassigned\u{378}",
            "plane16\u{10fffd}",
            "ideographic\u{3000}space",
        ];
        let lines: Vec<String> = cases.iter().map(|s| repr(&json!(s))).collect();
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn booleans_and_none() {
        assert_eq!(repr(&json!([true, false, null])), "[True, False, None]");
        assert_eq!(
            repr(&json!({"public": false, "purl": null})),
            "{'public': False, 'purl': None}"
        );
    }

    #[test]
    fn numbers() {
        let value = json!([0, -7, 3600, 1795899866, u64::MAX, i64::MIN]);
        assert_eq!(
            repr(&value),
            "[0, -7, 3600, 1795899866, 18446744073709551615, -9223372036854775808]"
        );
    }

    #[test]
    fn floats() {
        let cases = [
            0.0,
            -0.0,
            1.0,
            1.5,
            -2.25,
            3600.0,
            0.1,
            0.0001,
            0.00001,
            1.5e-5,
            123456789.125,
            1234567890123456.0,
            1e16,
            1.2345678901234568e17,
            1e22,
            1e100,
            5e-324,
            f64::MAX,
            1795900145.6934562,
            1795901186.793017,
            1951601819917218.0 + 0.25, // exactly halfway: CPython rounds to even
            34595157129853.75 + 0.0625,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        let lines: Vec<String> = cases.iter().map(|x| float_repr(*x)).collect();
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn floats_inside_values() {
        let value: Value =
            serde_json::from_str(r#"{"expires_at": 1795900149.1099513, "one": 1.0}"#).unwrap();
        assert_eq!(
            repr(&value),
            "{'expires_at': 1795900149.1099513, 'one': 1.0}"
        );
    }

    #[test]
    fn empty_containers() {
        assert_eq!(repr(&json!([])), "[]");
        assert_eq!(repr(&json!({})), "{}");
        assert_eq!(repr(&json!([[], {}])), "[[], {}]");
    }

    #[test]
    fn display_prints_top_level_strings_bare() {
        assert_eq!(
            display(&json!("{\"success\": False}")),
            "{\"success\": False}"
        );
        assert_eq!(display(&json!(["x"])), "['x']");
        assert_eq!(display(&json!(true)), "True");
    }
}
