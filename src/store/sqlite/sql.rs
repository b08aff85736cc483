//! The SQL shared by the [`Store`](crate::store::Store) methods: `services` statements
//! built per verify column, and the update-then-insert every save runs.

use rusqlite::Connection;

/// `services` statements, built once at open time for the verify column(s) the file has.
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
            [single] => (*single).to_owned(),
            _ => "COALESCE(_verify, verify)".to_owned(),
        };
        let select =
            format!("SELECT name, url, type, purl, auth, public, {verify_read} FROM services");
        let insert_columns: String = verify_columns.iter().map(|c| format!(", {c}")).collect();
        let insert_values = ", ?7".repeat(verify_columns.len());
        let update_sets: String = verify_columns
            .iter()
            .map(|c| format!(", {c} = ?7"))
            .collect();
        ServiceSql {
            // `id` is the rowid alias in every twitcher schema: ordering by it is insertion order.
            by_name: format!("{select} WHERE name = ?1 ORDER BY id LIMIT 1"),
            by_url: format!("{select} WHERE url = ?1 ORDER BY id LIMIT 1"),
            list: format!("{select} ORDER BY id"),
            insert: format!(
                "INSERT INTO services (name, url, type, purl, auth, public{insert_columns}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6{insert_values})"
            ),
            update: format!(
                "UPDATE services SET url = ?2, type = ?3, purl = ?4, auth = ?5, public = ?6\
                 {update_sets} WHERE name = ?1"
            ),
        }
    }
}

/// Update-then-insert, inside the write's transaction (see `SqliteStore::write`).
pub(super) fn upsert(
    conn: &Connection,
    update: &str,
    insert: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<()> {
    let updated = conn.prepare_cached(update)?.execute(params)?;
    if updated == 0 {
        conn.prepare_cached(insert)?.execute(params)?;
    }
    Ok(())
}
