//! What may be stored and reused, and for how long: `Cache-Control`
//! parsing and the RFC 9111 freshness model.

mod directives;
pub(crate) mod freshness;

pub use directives::Directives;
