//! `sqlalchemy.url` for PostgreSQL, read the way SQLAlchemy and libpq read it: the
//! `postgresql://`, `postgres://` and `postgresql+DRIVER://` forms, `sslmode` and
//! `sslrootcert` handled here, every other libpq parameter passed to `tokio-postgres`.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::SslMode;

use super::tls::ServerCheck;

/// How long a connection attempt may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the database is and how to reach it.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// Host, port, user, password, database and libpq options.
    pub(super) config: tokio_postgres::Config,
    /// What the server's certificate must prove (ignored when TLS is off).
    pub(super) check: ServerCheck,
    /// The URL without its password, for messages.
    pub(super) location: String,
}

impl Target {
    /// Reads a `postgresql://` URL; the error says what is wrong with it.
    pub(super) fn parse(url: &str) -> Result<Target, String> {
        let location = super::super::redact_password(url);
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "not a URL (postgresql://USER:PASSWORD@HOST/DATABASE)".to_string())?;
        // SQLAlchemy names the Python driver after a `+`: no meaning here.
        let dialect = scheme.split('+').next().unwrap_or_default();
        if !matches!(dialect, "postgresql" | "postgres") {
            return Err(format!("{scheme}:// is not a PostgreSQL URL"));
        }
        let (base, query) = match rest.split_once('?') {
            Some((base, query)) => (base, query),
            None => (rest, ""),
        };
        let mut sslmode = None;
        let mut rootcert = None;
        let mut passed = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "sslmode" => sslmode = Some(value.into_owned()),
                "sslrootcert" => rootcert = Some(std::path::PathBuf::from(&*value)),
                _ => {
                    passed.append_pair(&key, &value);
                }
            }
        }
        let passed = passed.finish();
        let rebuilt = if passed.is_empty() {
            format!("postgresql://{base}")
        } else {
            format!("postgresql://{base}?{passed}")
        };
        let mut config = tokio_postgres::Config::from_str(&rebuilt).map_err(|e| {
            // The Display of a parse error hides which parameter it was.
            match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            }
        })?;
        let (mode, check) = match sslmode.as_deref().unwrap_or("prefer") {
            "disable" => (SslMode::Disable, ServerCheck::None),
            "allow" | "prefer" => (SslMode::Prefer, ServerCheck::None),
            "require" => (SslMode::Require, ServerCheck::None),
            // verify-ca is checked like verify-full (host name included): stricter, never weaker.
            "verify-ca" | "verify-full" => {
                (SslMode::Require, ServerCheck::Verified { roots: rootcert })
            }
            other => {
                return Err(format!(
                    "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ));
            }
        };
        config.ssl_mode(mode);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("twitcher");
        }
        Ok(Target {
            config,
            check,
            location,
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio_postgres::config::Host;

    use super::*;

    #[test]
    fn the_forms_sqlalchemy_accepts() {
        for url in [
            "postgresql://tw:s3cret@db.example:6543/twitcher",
            "postgres://tw:s3cret@db.example:6543/twitcher",
            "postgresql+psycopg2://tw:s3cret@db.example:6543/twitcher",
        ] {
            let target = Target::parse(url).unwrap();
            assert_eq!(target.config.get_user(), Some("tw"), "{url}");
            assert_eq!(target.config.get_password(), Some(&b"s3cret"[..]));
            assert_eq!(target.config.get_dbname(), Some("twitcher"));
            assert_eq!(target.config.get_hosts(), [Host::Tcp("db.example".into())]);
            assert_eq!(target.config.get_ports(), [6543]);
            assert_eq!(target.config.get_ssl_mode(), SslMode::Prefer);
            assert_eq!(target.check, ServerCheck::None);
            assert!(!target.location.contains("s3cret"), "{}", target.location);
        }
    }

    #[test]
    fn sslmode_and_other_parameters() {
        let target = Target::parse(
            "postgresql://tw@h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=2",
        )
        .unwrap();
        assert_eq!(target.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(
            target.check,
            ServerCheck::Verified {
                roots: Some("/etc/ca.pem".into())
            }
        );
        assert_eq!(
            target.config.get_connect_timeout(),
            Some(&Duration::from_secs(2))
        );
        let disabled = Target::parse("postgresql://tw@h/db?sslmode=disable").unwrap();
        assert_eq!(disabled.config.get_ssl_mode(), SslMode::Disable);
        assert_eq!(
            disabled.config.get_connect_timeout(),
            Some(&CONNECT_TIMEOUT)
        );
        let required = Target::parse("postgresql://tw@h/db?sslmode=require").unwrap();
        assert_eq!(required.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(required.check, ServerCheck::None);
    }

    #[test]
    fn what_is_refused() {
        for (url, says) in [
            ("postgresql://h/db?sslmode=sometimes", "sslmode=sometimes"),
            ("mysql://h/db", "not a PostgreSQL URL"),
            ("postgresql://h/db?no_such_option=1", "no_such_option"),
        ] {
            let err = Target::parse(url).unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
        }
    }
}
