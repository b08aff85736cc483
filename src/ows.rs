//! Pure OWS logic, free of HTTP framework types: parsing requests ([`request`]) of the
//! service types and operations in [`operations`],
//! rendering exception reports ([`exception`]) and rewriting backend XML
//! ([`capabilities`]).

pub mod body;
pub mod capabilities;
pub mod exception;
pub mod operations;
pub mod request;
