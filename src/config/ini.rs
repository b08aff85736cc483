//! A reader for the PasteDeploy INI files of the original (Python `configparser` rules):
//! sections, `key = value` / `key: value`, indented continuation lines, `#`/`;` comments,
//! and `%(name)s` interpolation with `here` and `__file__` predefined.

use std::collections::HashMap;

/// One parsed INI file: sections in file order, keys in file order.
#[derive(Debug, Default, Clone)]
pub struct Ini {
    sections: Vec<Section>,
}

/// A `[name]` section with its raw (uninterpolated) entries.
#[derive(Debug, Clone)]
pub struct Section {
    /// Section name without brackets.
    pub name: String,
    /// `(key, raw value, line number)` in file order; keys lower-cased like configparser.
    pub entries: Vec<(String, String, usize)>,
}

/// A syntax or interpolation error with the line it was found on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct IniError {
    /// 1-based line number (0 when not tied to a line).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl Ini {
    /// Parses INI text.
    pub fn parse(text: &str) -> Result<Ini, IniError> {
        let mut ini = Ini::default();
        let mut last_key: Option<(usize, usize)> = None;
        for (idx, raw_line) in text.lines().enumerate() {
            let line_no = idx + 1;
            let line = raw_line.trim_end();
            let trimmed = line.trim_start();
            if trimmed.is_empty() {
                last_key = None;
                continue;
            }
            if trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            let indented = line.len() != trimmed.len();
            if indented && let Some((s, e)) = last_key {
                let value = &mut ini.sections[s].entries[e].1;
                if !value.is_empty() {
                    value.push('\n');
                }
                value.push_str(trimmed);
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix('[') {
                let Some(name) = rest.strip_suffix(']') else {
                    return Err(IniError {
                        line: line_no,
                        message: "section header without ']'".into(),
                    });
                };
                ini.sections.push(Section {
                    name: name.trim().to_string(),
                    entries: Vec::new(),
                });
                last_key = None;
                continue;
            }
            let Some(section_idx) = ini.sections.len().checked_sub(1) else {
                return Err(IniError {
                    line: line_no,
                    message: "key outside of any section".into(),
                });
            };
            let Some(split) = trimmed.find(['=', ':']) else {
                return Err(IniError {
                    line: line_no,
                    message: format!("expected 'key = value', found {trimmed:?}"),
                });
            };
            let key = trimmed[..split].trim().to_ascii_lowercase();
            let value = strip_inline_comment(trimmed[split + 1..].trim()).to_string();
            let entries = &mut ini.sections[section_idx].entries;
            // A repeated key replaces the earlier one, as configparser (non-strict) does.
            entries.retain(|(k, _, _)| *k != key);
            entries.push((key, value, line_no));
            last_key = Some((section_idx, entries.len() - 1));
        }
        Ok(ini)
    }

    /// The section of that name, if present.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Interpolated `(key, value, line)` entries of a section, `DEFAULT` keys included.
    pub fn resolved(
        &self,
        name: &str,
        predefined: &HashMap<String, String>,
    ) -> Result<Vec<(String, String, usize)>, IniError> {
        let Some(section) = self.section(name) else {
            return Ok(Vec::new());
        };
        let mut vars: HashMap<String, String> = predefined.clone();
        if let Some(defaults) = self.section("DEFAULT") {
            for (k, v, _) in &defaults.entries {
                vars.insert(k.clone(), v.clone());
            }
        }
        for (k, v, _) in &section.entries {
            vars.insert(k.clone(), v.clone());
        }
        section
            .entries
            .iter()
            .map(|(k, v, line)| {
                interpolate(v, &vars, 0)
                    .map(|value| (k.clone(), value, *line))
                    .map_err(|message| IniError {
                        line: *line,
                        message,
                    })
            })
            .collect()
    }
}

/// configparser only treats `;`/`#` as inline comments when inline prefixes are configured;
/// PasteDeploy does not configure them, so values keep such characters. Only a trailing
/// ` #` after whitespace is dropped, which is what hand-edited development.ini files contain.
fn strip_inline_comment(value: &str) -> &str {
    match value.find(" #") {
        Some(pos) => value[..pos].trim_end(),
        None => value,
    }
}

fn interpolate(
    value: &str,
    vars: &HashMap<String, String>,
    depth: usize,
) -> Result<String, String> {
    if depth > 10 {
        return Err("interpolation is nested too deeply".into());
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('%') {
            out.push('%');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            let Some(end) = tail.find(")s") else {
                return Err(format!("bad interpolation syntax in {value:?}"));
            };
            let name = tail[..end].to_ascii_lowercase();
            let Some(replacement) = vars.get(&name) else {
                return Err(format!("unknown interpolation variable %({name})s"));
            };
            out.push_str(&interpolate(replacement, vars, depth + 1)?);
            rest = &tail[end + 2..];
        } else {
            return Err(format!("'%' must be followed by '%' or '(' in {value:?}"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> HashMap<String, String> {
        HashMap::from([("here".to_string(), "/etc/twitcher".to_string())])
    }

    #[test]
    fn reads_sections_keys_and_interpolation() {
        let ini = Ini::parse(
            "# comment\n[app:main]\nuse = egg:pyramid_twitcher\nsqlalchemy.url = sqlite:///%(here)s/twitcher.sqlite\n\
             Twitcher.URL: http://x\nfile_template = %%(year)d\n[server:main]\nlisten = 127.0.0.1:18060\n",
        )
        .unwrap();
        let app = ini.resolved("app:main", &here()).unwrap();
        let get = |k: &str| {
            app.iter()
                .find(|(key, _, _)| key == k)
                .map(|(_, v, _)| v.clone())
        };
        assert_eq!(
            get("sqlalchemy.url").as_deref(),
            Some("sqlite:////etc/twitcher/twitcher.sqlite")
        );
        assert_eq!(get("twitcher.url").as_deref(), Some("http://x"));
        assert_eq!(get("file_template").as_deref(), Some("%(year)d"));
        let server = ini.resolved("server:main", &here()).unwrap();
        assert_eq!(server[0].1, "127.0.0.1:18060");
    }

    #[test]
    fn continuation_lines_join_with_newlines() {
        let ini = Ini::parse("[a]\nkeys = one\n  two\n").unwrap();
        assert_eq!(ini.section("a").unwrap().entries[0].1, "one\ntwo");
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(Ini::parse("[a]\nnovalue\n").unwrap_err().line, 2);
        assert_eq!(Ini::parse("key = 1\n").unwrap_err().line, 1);
        let ini = Ini::parse("[a]\nx = %(nope)s\n").unwrap();
        let err = ini.resolved("a", &here()).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("nope"), "{}", err.message);
    }
}
