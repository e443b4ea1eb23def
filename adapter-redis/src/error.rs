//! Errors of the Redis tier.

/// Why a [`RedisTier`](crate::RedisTier) could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL or node list is not usable.
    #[error("invalid Redis address {address:?}: {source}")]
    Address {
        /// The address given.
        address: String,
        /// Why it was refused.
        #[source]
        source: redis::RedisError,
    },
    /// Redis could not be reached, or refused the connection.
    #[error("cannot connect to Redis: {0}")]
    Connect(#[source] redis::RedisError),
    /// Connecting took longer than the connect timeout.
    #[error("connecting to Redis timed out after {0:?}")]
    ConnectTimeout(std::time::Duration),
    /// Client tracking (needed for cross-instance invalidation) could not
    /// be turned on; Redis 6 or later is required.
    #[error("cannot enable client tracking (Redis 6+ is required): {0}")]
    Tracking(#[source] redis::RedisError),
    /// A namespace that is empty or contains `:`.
    #[error("namespace {0:?} must be non-empty and contain no ':'")]
    Namespace(String),
}
