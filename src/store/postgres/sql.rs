//! The SQL of the [`Store`](crate::store::Store) methods. Every column is read cast to
//! `text` (see [`rows`](super::rows)); `services` statements are built once per verify
//! column layout; every write also notifies [`CHANNEL`](super::listen::CHANNEL).

/// `services` statements, built once at open time for the verify column(s) the table has.
pub(super) struct ServiceSql {
    pub(super) by_name: String,
    pub(super) by_url: String,
    pub(super) list: String,
    pub(super) insert: String,
    pub(super) update: String,
}

impl ServiceSql {
    /// The statements for a `services` table with these verify column(s).
    pub(super) fn new(verify_columns: &[&str]) -> Self {
        // Both columns only exist in a hand-made database; prefer the 0.6 one when set.
        let verify_read = match verify_columns {
            [single] => format!("{single}::text"),
            _ => "COALESCE(_verify, verify)::text".to_owned(),
        };
        let select = format!(
            "SELECT name::text, url::text, type::text, purl::text, auth::text, public::text, \
             {verify_read} FROM services"
        );
        let insert_columns: String = verify_columns.iter().map(|c| format!(", {c}")).collect();
        let insert_values = ", $7::integer".repeat(verify_columns.len());
        let update_sets: String = verify_columns
            .iter()
            .map(|c| format!(", {c} = $7::integer"))
            .collect();
        ServiceSql {
            // `id` comes from a sequence in every twitcher schema: insertion order.
            by_name: format!("{select} WHERE name = $1::text ORDER BY id LIMIT 1"),
            by_url: format!("{select} WHERE url = $1::text ORDER BY id LIMIT 1"),
            list: format!("{select} ORDER BY id"),
            insert: format!(
                "INSERT INTO services (name, url, type, purl, auth, public{insert_columns}) \
                 VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::integer{insert_values})"
            ),
            update: format!(
                "UPDATE services SET url = $2::text, type = $3::text, purl = $4::text, \
                 auth = $5::text, public = $6::integer{update_sets} WHERE name = $1::text"
            ),
        }
    }
}

/// Tells every listening instance about a write (delivered when the transaction commits)
/// and counts the listeners that will acknowledge it (those of this database and user:
/// `pg_stat_activity` hides other users' application names).
pub(super) const NOTIFY: &str = "SELECT (SELECT count(*) FROM pg_stat_activity \
     WHERE datname = current_database() AND application_name = 'twitcher-listen') \
     FROM pg_notify('twitcher_changes', $1::text)";

pub(super) const ACCESS_TOKEN: &str =
    "SELECT token::text, expires_at::text FROM access_tokens WHERE token = $1::text LIMIT 1";
pub(super) const ACCESS_TOKEN_UPDATE: &str =
    "UPDATE access_tokens SET expires_at = $2::bigint WHERE token = $1::text";
pub(super) const ACCESS_TOKEN_INSERT: &str =
    "INSERT INTO access_tokens (token, expires_at) VALUES ($1::text, $2::bigint)";
pub(super) const ACCESS_TOKEN_DELETE: &str = "DELETE FROM access_tokens WHERE token = $1::text";
pub(super) const ACCESS_TOKENS_CLEAR: &str = "DELETE FROM access_tokens";

pub(super) const SERVICE_DELETE: &str = "DELETE FROM services WHERE name = $1::text";
pub(super) const SERVICES_CLEAR: &str = "DELETE FROM services";

pub(super) const CLIENT: &str = "SELECT client_id::text, client_secret::text, name::text, \
     _redirect_uris::text, default_scope::text FROM client WHERE client_id = $1::text LIMIT 1";
pub(super) const CLIENT_UPDATE: &str = "UPDATE client SET client_secret = $2::text, \
     name = $3::text, _redirect_uris = $4::text, default_scope = $5::text \
     WHERE client_id = $1::text";
pub(super) const CLIENT_INSERT: &str = "INSERT INTO client \
     (client_id, client_secret, name, _redirect_uris, default_scope) \
     VALUES ($1::text, $2::text, $3::text, $4::text, $5::text)";

/// `token.expires` is a naive UTC timestamp, as SQLAlchemy's `DateTime` writes it.
const EXPIRES_EPOCH: &str = "floor(extract(epoch FROM expires))::bigint::text";

pub(super) const OAUTH_TOKEN_UPDATE: &str = "UPDATE token SET client_id = $2::text, \
     token_type = 'Bearer', expires = to_timestamp($3::bigint) AT TIME ZONE 'UTC', \
     scope = $4::text WHERE access_token = $1::text";
pub(super) const OAUTH_TOKEN_INSERT: &str = "INSERT INTO token \
     (client_id, token_type, access_token, refresh_token, expires, scope) \
     VALUES ($2::text, 'Bearer', $1::text, NULL, to_timestamp($3::bigint) AT TIME ZONE 'UTC', $4::text)";
pub(super) const OAUTH_TOKEN_DELETE: &str = "DELETE FROM token WHERE access_token = $1::text";

/// An issued OAuth2 token: access_token, client_id, scope, expiry.
pub(super) fn oauth_token() -> String {
    format!(
        "SELECT access_token::text, client_id::text, scope::text, {EXPIRES_EPOCH} FROM token \
         WHERE access_token = $1::text ORDER BY id LIMIT 1"
    )
}

/// Either kind of token in one round trip: kind (0 XML-RPC, 1 OAuth2), expiry, client, scope.
pub(super) fn find_token() -> String {
    format!(
        "SELECT 0, expires_at::text, NULL::text, NULL::text FROM access_tokens \
         WHERE token = $1::text \
         UNION ALL \
         SELECT 1, {EXPIRES_EPOCH}, client_id::text, scope::text FROM token \
         WHERE access_token = $1::text \
         ORDER BY 1 LIMIT 1"
    )
}

#[cfg(test)]
mod tests {
    use super::super::listen::{APPLICATION_NAME, CHANNEL};
    use super::*;

    #[test]
    fn writes_notify_the_channel_listeners_listen_on_and_count_them_by_name() {
        assert!(
            NOTIFY.contains(&format!("pg_notify('{CHANNEL}'")),
            "{NOTIFY}"
        );
        assert!(
            NOTIFY.contains(&format!("application_name = '{APPLICATION_NAME}'")),
            "{NOTIFY}"
        );
    }
}
