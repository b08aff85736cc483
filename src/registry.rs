//! Service registration rules shared by the management interfaces (XML-RPC and REST):
//! name sanitizing, URL checks, boolean fields, the original's defaults, and what an
//! anonymous reader may see of a service URL.

use std::borrow::Cow;

use crate::config::parse_bool;
use crate::store::Service;

/// Longest name kept (before the digit prefix), as in the original.
const MAX_NAME_LEN: usize = 25;

/// Why a registration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The name is shorter than two characters after trimming.
    #[error("name must have at least 2 chars.")]
    NameTooShort,
    /// A boolean field (`verify`, `public`) holds something that is neither true nor
    /// false: refused rather than guessed, since `verify` guards the backend's TLS.
    #[error("{field} must be a boolean: true/false, yes/no, on/off, 1/0")]
    NotABoolean {
        /// The field's name.
        field: &'static str,
    },
}

/// Optional fields of a registration; `None` means "use the default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceFields {
    /// Service type (`WPS` when absent or empty).
    pub service_type: Option<String>,
    /// Public URL.
    pub purl: Option<String>,
    /// Public flag (string values read like Pyramid's `asbool`).
    pub public: Option<bool>,
    /// `token` or `cert` (`token` when absent or empty).
    pub auth: Option<String>,
    /// Verify backend TLS.
    pub verify: Option<bool>,
}

/// A boolean field given as text: the words of Pyramid's `asbool` in any case
/// (true/yes/on/y/t/1, false/no/off/n/f/0); empty means "not given" (the default).
/// Anything else is refused: 0.5 read unknown words as false (turning TLS checks off),
/// 0.6 as true, so no guess is safe for both.
pub fn text_flag(field: &'static str, value: &str) -> Result<Option<bool>, RegistryError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    parse_bool(value)
        .map(Some)
        .ok_or(RegistryError::NotABoolean { field })
}

/// A boolean field given as a number: 0 or 1, as 0.6 read JSON numbers (`str(n)`).
pub fn number_flag(field: &'static str, value: i64) -> Result<bool, RegistryError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(RegistryError::NotABoolean { field }),
    }
}

/// Who reads the registry: the management user sees service URLs whole, anyone else
/// without the password a URL may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Authenticated as the management user (or with a `register` token over REST).
    Manager,
    /// No valid management credentials.
    Anonymous,
}

impl Viewer {
    /// The service URL as this viewer may see it.
    pub fn url<'a>(self, url: &'a str) -> Cow<'a, str> {
        match self {
            Viewer::Manager => Cow::Borrowed(url),
            Viewer::Anonymous => mask_password(url),
        }
    }
}

/// `http://user:secret@host/wps` → `http://user:***@host/wps`; URLs without a password
/// are returned unchanged. Apart from the password the text is kept as stored (the url
/// crate only decides whether there is one: its serialization would normalise the rest).
pub fn mask_password(url: &str) -> Cow<'_, str> {
    const MASK: &str = "***";
    let Ok(parsed) = url::Url::parse(url) else {
        return Cow::Borrowed(url);
    };
    if parsed.password().is_none() {
        return Cow::Borrowed(url);
    }
    // The authority runs from `//` to the first `/`, `?`, `#` (or `\`, which special
    // schemes read as `/`); the password from the first `:` to the last `@` in it.
    let spliced = url.find("//").and_then(|start| {
        let start = start + 2;
        let end = url[start..]
            .find(['/', '?', '#', '\\'])
            .map_or(url.len(), |i| start + i);
        let at = start + url[start..end].rfind('@')?;
        let colon = start + url[start..at].find(':')?;
        Some(format!("{}{MASK}{}", &url[..=colon], &url[at..]))
    });
    // Should the text not show what the parser found, the parser's own form is masked:
    // a password is never shown.
    Cow::Owned(spliced.unwrap_or_else(|| {
        let mut masked = parsed.clone();
        // Only URLs that cannot have a password refuse one, and this one has one.
        let _ = masked.set_password(Some(MASK));
        masked.into()
    }))
}

/// The original's name rule: trim, at least 2 chars, lower-case, cut to 25 chars, every
/// non-word character becomes `_`, a leading digit gets a `_` prefix.
pub fn sanitize_name(name: &str) -> Result<String, RegistryError> {
    let trimmed = name.trim();
    if trimmed.chars().count() < 2 {
        return Err(RegistryError::NameTooShort);
    }
    let mut clean: String = trimmed
        .to_lowercase()
        .chars()
        .take(MAX_NAME_LEN)
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.starts_with(|c: char| c.is_numeric()) {
        clean.insert(0, '_');
    }
    Ok(clean)
}

/// The URL as stored: `scheme://netloc/path` of an http(s) URL with a host; None for
/// anything else (the original then registered nothing).
pub fn storable_url(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
        return None;
    }
    // `Url` invents a host for `http:/h/w` and `http:h/w`, and accepts `http:///path`; the
    // original wanted a real `//authority`.
    let after_scheme = url.trim().get(parsed.scheme().len() + 1..)?;
    let authority = after_scheme.strip_prefix("//")?;
    if authority.starts_with(['/', '?', '#']) || authority.is_empty() {
        return None;
    }
    // Rebuild from the original text's pieces rather than `Url`'s normalisation, so the
    // stored URL is what the user typed minus query and fragment.
    let text = url.trim();
    let end = text.find(['?', '#']).unwrap_or(text.len());
    Some(text[..end].to_string())
}

/// A service from a registration request. Returns `Ok(None)` when the URL is not an
/// http(s) URL (nothing is registered then, like the original).
pub fn build_service(
    name: &str,
    url: &str,
    fields: ServiceFields,
) -> Result<Option<Service>, RegistryError> {
    let name = sanitize_name(name)?;
    let Some(stored_url) = storable_url(url) else {
        return Ok(None);
    };
    let non_empty = |v: Option<String>, default: &str| {
        v.filter(|s| !s.is_empty())
            .unwrap_or_else(|| default.into())
    };
    Ok(Some(Service {
        name,
        url: stored_url,
        service_type: non_empty(fields.service_type, "WPS").into(),
        purl: fields.purl.unwrap_or_default(),
        public: fields.public.unwrap_or(false),
        auth: non_empty(fields.auth, "token").into(),
        verify: fields.verify.unwrap_or(true),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized_like_the_original() {
        let cases = [
            ("emu", "emu"),
            ("My Emu-1", "my_emu_1"),
            ("1abc", "_1abc"),
            ("a.b/c d", "a_b_c_d"),
            ("Vögel Dienst", "vögel_dienst"),
            ("  spaced  ", "spaced"),
            (
                "abcdefghijklmnopqrstuvwxyz0123",
                "abcdefghijklmnopqrstuvwxy",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(sanitize_name(input).as_deref(), Ok(expected), "{input:?}");
        }
        assert_eq!(sanitize_name("x"), Err(RegistryError::NameTooShort));
        assert_eq!(sanitize_name("  y  "), Err(RegistryError::NameTooShort));
    }

    #[test]
    fn only_http_urls_with_a_host_are_stored_without_query() {
        assert_eq!(
            storable_url("http://h/w?x=1#f").as_deref(),
            Some("http://h/w")
        );
        assert_eq!(
            storable_url("https://example.org:8443/wps").as_deref(),
            Some("https://example.org:8443/wps")
        );
        for bad in [
            "ftp://example.org/wps",
            "not a url",
            "/relative/wps",
            "http://",
            "file:///etc/passwd",
        ] {
            assert_eq!(storable_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn defaults_fill_empty_fields() {
        let s = build_service(
            "emu",
            "http://h/wps",
            ServiceFields {
                auth: Some(String::new()),
                ..Default::default()
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(s, Service::new("emu", "http://h/wps"));
        assert_eq!(
            build_service("emu", "ftp://h", ServiceFields::default()),
            Ok(None)
        );
    }

    #[test]
    fn boolean_fields_take_asbool_words_and_refuse_the_rest() {
        for word in ["true", "True", "TRUE", "yes", "on", "y", "t", "1", " true "] {
            assert_eq!(text_flag("verify", word), Ok(Some(true)), "{word:?}");
        }
        for word in [
            "false", "False", "FALSE", "no", "NO", "off", "Off", "n", "f", "0",
        ] {
            assert_eq!(text_flag("verify", word), Ok(Some(false)), "{word:?}");
        }
        for empty in ["", "  "] {
            assert_eq!(text_flag("verify", empty), Ok(None), "{empty:?}");
        }
        for junk in ["bogus", "2", "-1", "nope", "falsch", "0.0", "none", "null"] {
            assert_eq!(
                text_flag("verify", junk),
                Err(RegistryError::NotABoolean { field: "verify" }),
                "{junk:?}"
            );
        }
        assert_eq!(number_flag("public", 0), Ok(false));
        assert_eq!(number_flag("public", 1), Ok(true));
        assert_eq!(
            number_flag("public", 2).unwrap_err().to_string(),
            "public must be a boolean: true/false, yes/no, on/off, 1/0"
        );
    }

    #[test]
    fn passwords_in_urls_are_masked_for_anonymous_viewers() {
        let cases = [
            ("http://user:secret@host/wps", "http://user:***@host/wps"),
            ("https://u:p@h:8443/w?x=1#f", "https://u:***@h:8443/w?x=1#f"),
            ("http://user:pa:ss@host/wps", "http://user:***@host/wps"),
            ("http://user:p%40ss@host", "http://user:***@host"),
            ("http://u:p@x@host/wps", "http://u:***@host/wps"),
            ("HTTP://U:Secret@Host/W", "HTTP://U:***@Host/W"),
            ("http://:secret@host/", "http://:***@host/"),
            ("http://u:p@host\\path", "http://u:***@host\\path"),
            // Nothing to hide.
            ("http://host/wps", "http://host/wps"),
            ("http://user@host/wps", "http://user@host/wps"),
            ("http://user:@host/wps", "http://user:@host/wps"),
            ("http://host/a:b@c", "http://host/a:b@c"),
            ("not a url", "not a url"),
        ];
        for (stored, shown) in cases {
            assert_eq!(mask_password(stored), shown, "{stored}");
            assert_eq!(Viewer::Anonymous.url(stored), shown, "{stored}");
            assert_eq!(Viewer::Manager.url(stored), stored, "{stored}");
            // Whatever the text looked like, the parser finds no password in the result.
            if let Ok(parsed) = url::Url::parse(&mask_password(stored)) {
                assert!(matches!(parsed.password(), None | Some("***")), "{stored}");
            }
        }
    }
}
