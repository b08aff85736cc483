//! Value conversions between SQLite and the store types: lenient column reads, and the
//! naive-UTC `DATETIME` text of `token.expires`.

use rusqlite::Row;
use rusqlite::types::ValueRef;

use crate::store::Service;

// ---- reading rows leniently: SQLite columns hold whatever was written into them ----

/// Any value as text: numbers formatted, bytes decoded leniently.
pub(super) fn text(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<String>> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Null => None,
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
    })
}

/// A boolean stored as 0/1 (or, leniently, as text read like Pyramid's `asbool`).
pub(super) fn flag(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<bool>> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i != 0),
        ValueRef::Real(f) => Some(f != 0.0),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            let value = String::from_utf8_lossy(bytes).trim().to_ascii_lowercase();
            Some(matches!(
                value.as_str(),
                "true" | "yes" | "on" | "y" | "t" | "1"
            ))
        }
    })
}

/// Epoch seconds from an INTEGER column (or a DATETIME text, for `token.expires`).
pub(super) fn epoch(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<i64>> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i),
        // `as` saturates; fractions of a second do not matter for expiry.
        ValueRef::Real(f) => Some(f as i64),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            let value = String::from_utf8_lossy(bytes);
            let value = value.trim();
            value.parse().ok().or_else(|| parse_datetime(value))
        }
    })
}

/// A row of the `services` SELECTs of [`ServiceSql`](super::sql::ServiceSql), NULLs read as
/// the defaults of [`Service::new`].
pub(super) fn service_from_row(row: &Row<'_>) -> rusqlite::Result<Service> {
    let defaults = Service::new("", "");
    Ok(Service {
        name: text(row, 0)?.unwrap_or_default(),
        url: text(row, 1)?.unwrap_or_default(),
        service_type: text(row, 2)?.map_or(defaults.service_type, Into::into),
        purl: text(row, 3)?.unwrap_or(defaults.purl),
        auth: text(row, 4)?.map_or(defaults.auth, Into::into),
        public: flag(row, 5)?.unwrap_or(defaults.public),
        verify: flag(row, 6)?.unwrap_or(defaults.verify),
    })
}

/// The expiry, or the epoch (already expired, with a warning) when it was missing or unreadable.
pub(super) fn expiry_or_expired(value: Option<i64>, what: &str) -> i64 {
    value.unwrap_or_else(|| {
        tracing::warn!(
            what,
            "missing or unreadable expiry in the database; treating the token as expired"
        );
        0
    })
}

// ---- SQLAlchemy's naive-UTC DATETIME text ↔ epoch seconds, in integer arithmetic ----

/// Seconds in a day.
const SECONDS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12; // March = 0 … February = 11
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Length of a month of the proleptic Gregorian calendar.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` as SQLAlchemy writes it. Clamped to Python's `datetime`
/// range (years 1–9999) so the original can always read it back.
pub(super) fn format_datetime(epoch: i64) -> String {
    let min = days_from_civil(1, 1, 1) * SECONDS_PER_DAY;
    let max = days_from_civil(9999, 12, 31) * SECONDS_PER_DAY + SECONDS_PER_DAY - 1;
    let epoch = epoch.clamp(min, max);
    let (year, month, day) = civil_from_days(epoch.div_euclid(SECONDS_PER_DAY));
    let secs = epoch.rem_euclid(SECONDS_PER_DAY);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.000000",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Reads `YYYY-MM-DD[ HH:MM[:SS[.f…]]]` (also with `T`) as UTC; the fraction is dropped,
/// which floors to whole seconds. `None` for anything else.
pub(super) fn parse_datetime(text: &str) -> Option<i64> {
    fn number(part: &str, max_digits: usize) -> Option<i64> {
        let ok = !part.is_empty()
            && part.len() <= max_digits
            && part.bytes().all(|b| b.is_ascii_digit());
        if ok { part.parse().ok() } else { None }
    }
    let (date, time) = match text.split_once([' ', 'T']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut date_parts = date.split('-');
    let year = number(date_parts.next()?, 4)?;
    let month = number(date_parts.next()?, 2)?;
    let day = number(date_parts.next()?, 2)?;
    if date_parts.next().is_some()
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
    {
        return None;
    }
    let mut seconds = 0;
    if let Some(time) = time {
        let (clock, fraction) = match time.split_once('.') {
            Some((clock, fraction)) => (clock, Some(fraction)),
            None => (time, None),
        };
        if let Some(fraction) = fraction {
            number(fraction, 9)?;
        }
        let mut clock_parts = clock.split(':');
        let hour = number(clock_parts.next()?, 2)?;
        let minute = number(clock_parts.next()?, 2)?;
        let second = match clock_parts.next() {
            Some(part) => number(part, 2)?,
            None => 0,
        };
        if clock_parts.next().is_some() || hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        seconds = hour * 3600 + minute * 60 + second;
    }
    Some(days_from_civil(year, month, day) * SECONDS_PER_DAY + seconds)
}
