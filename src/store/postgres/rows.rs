//! Row values to store types, leniently: columns are read as text (whatever integer,
//! boolean or character type a database has), NULLs as the defaults of [`Service::new`],
//! a missing or unreadable expiry as already expired. Also the range a written expiry
//! is clamped to, so the original can read it back.

use tokio_postgres::Row;

use crate::store::Service;

/// A text column (any type cast to `text` in the query); NULL is `None`.
pub(super) fn text(row: &Row, idx: usize) -> Option<String> {
    row.get(idx)
}

/// A boolean stored as 0/1 (or as `true`/`false`, read like Pyramid's `asbool`).
pub(super) fn flag(row: &Row, idx: usize) -> Option<bool> {
    let value = text(row, idx)?;
    let value = value.trim().to_ascii_lowercase();
    Some(match value.parse::<f64>() {
        Ok(number) => number != 0.0,
        Err(_) => matches!(value.as_str(), "true" | "yes" | "on" | "y" | "t"),
    })
}

/// Epoch seconds from a column cast to text (an integer, possibly with a fraction).
pub(super) fn epoch(row: &Row, idx: usize, what: &str) -> i64 {
    let parsed = text(row, idx).and_then(|value| {
        let value = value.trim();
        // `as` saturates; fractions of a second do not matter for expiry.
        value
            .parse::<i64>()
            .ok()
            .or_else(|| value.parse::<f64>().ok().map(|f| f.floor() as i64))
    });
    parsed.unwrap_or_else(|| {
        tracing::warn!(
            what,
            "missing or unreadable expiry in the database; treating the token as expired"
        );
        0
    })
}

/// A row of the `services` SELECTs of [`ServiceSql`](super::sql::ServiceSql).
pub(super) fn service(row: &Row) -> Service {
    let defaults = Service::new("", "");
    Service {
        name: text(row, 0).unwrap_or_default(),
        url: text(row, 1).unwrap_or_default(),
        service_type: text(row, 2).map_or(defaults.service_type, Into::into),
        purl: text(row, 3).unwrap_or(defaults.purl),
        auth: text(row, 4).map_or(defaults.auth, Into::into),
        public: flag(row, 5).unwrap_or(defaults.public),
        verify: flag(row, 6).unwrap_or(defaults.verify),
    }
}

/// `access_tokens.expires_at` is a 32-bit INTEGER in the original's schema (until 2038).
pub(super) fn clamp_to_integer(epoch: i64) -> i64 {
    epoch.clamp(i64::from(i32::MIN), i64::from(i32::MAX))
}

/// `token.expires` within Python's `datetime` (years 1–9999), which the original reads it as.
pub(super) fn clamp_to_datetime(epoch: i64) -> i64 {
    const YEAR_1: i64 = -62_135_596_800; // 0001-01-01 00:00:00
    const YEAR_9999_END: i64 = 253_402_300_799; // 9999-12-31 23:59:59
    epoch.clamp(YEAR_1, YEAR_9999_END)
}
