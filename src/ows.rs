//! Pure OWS logic, free of HTTP framework types: parsing requests ([`request`]),
//! rendering exception reports ([`exception`]) and rewriting backend XML
//! ([`capabilities`]).

pub mod body;
pub mod capabilities;
pub mod exception;
pub mod request;
