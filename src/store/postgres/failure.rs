//! What a PostgreSQL failure means: a connection that was already lost (retry on a new
//! one), the database's state (unavailable: the same request may succeed later), or a
//! failure of the statement itself; and each told in one line for the log.

use deadpool_postgres::ClientWrapper;
use tokio_postgres::error::SqlState;

/// The connection was gone before the statement ran: closed, or ended by the server
/// (`57P01` admin shutdown and friends arrive as the answer to the next statement).
pub(super) fn connection_lost(e: &tokio_postgres::Error, client: &ClientWrapper) -> bool {
    e.is_closed()
        || client.is_closed()
        || e.code().is_some_and(|code| {
            [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
            ]
            .contains(code)
        })
}

/// Failures that are the database's state, not the statement's: the connection is gone,
/// the server is shutting down or starting, read-only (a standby, `default_transaction_read_only`),
/// out of disk, memory or connections, or a transaction lost a conflict.
pub(super) fn is_transient(e: &tokio_postgres::Error) -> bool {
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection itself failed (closed, I/O, timeout).
        return e.is_closed() || e.as_db_error().is_none();
    };
    let code = code.code();
    code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources
        || code.starts_with("57P") // admin/crash shutdown, cannot connect now
        || code.starts_with("40") // serialization failure, deadlock
        || code == SqlState::READ_ONLY_SQL_TRANSACTION.code()
}

/// A statement's failure in one line: the server's message and SQLSTATE when it sent one.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} [{}]", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// A connection failure in one line, with the cause tokio-postgres keeps behind it.
pub(super) fn connect_reason(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let hint = if *db.code() == SqlState::INVALID_PASSWORD {
            " (check the user and password in sqlalchemy.url)"
        } else {
            ""
        };
        return format!("{}{hint}", db.message());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}
