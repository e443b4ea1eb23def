//! Cross-instance invalidation: RESP3 client tracking in broadcast mode,
//! kept on across reconnects.
//!
//! ```text
//!   push: invalidate [keys]  ──► L1 drops those keys
//!   push: invalidate nil     ──► L1 cleared (FLUSHALL / FLUSHDB)
//!   push: disconnection      ──► L1 cleared; retry CLIENT TRACKING ON until it
//!                                 succeeds (backoff 25 ms .. 1 s); L1 cleared again
//!   every check interval     ──► CLIENT TRACKINGINFO; tracking off ⇒ as a disconnection
//! ```

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::{PushInfo, PushKind, RedisError, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::tier::Inner;

/// Turns broadcast tracking of the data prefix on (on every master of a
/// cluster); "already on" counts as success.
pub(crate) async fn enable(inner: &Inner) -> Result<(), RedisError> {
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(inner.data_prefix.as_slice())
        .arg("NOLOOP");
    let reply = match connection(inner) {
        Ok(mut conn) => bounded(inner, conn.everywhere(cmd)).await,
        Err(error) => Err(error),
    };
    match reply {
        Ok(reply) => first_error(&reply).map_or(Ok(()), Err),
        Err(error) if already_on(&error.to_string()) => Ok(()),
        Err(error) => Err(error),
    }
}

/// Whether any server reports tracking off for this connection.
async fn tracking_off(inner: &Inner) -> Result<bool, RedisError> {
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("TRACKINGINFO");
    let mut conn = connection(inner)?;
    let reply = bounded(inner, conn.everywhere(cmd)).await?;
    Ok(flags_off(&reply))
}

fn connection(inner: &Inner) -> Result<crate::tier::Conn, RedisError> {
    inner.conn.read().clone().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotConnected, "not connected yet").into()
    })
}

async fn bounded<T>(
    inner: &Inner,
    call: impl std::future::Future<Output = Result<T, RedisError>>,
) -> Result<T, RedisError> {
    // Tracking calls may wait for a reconnect: allow a few timeouts.
    match tokio::time::timeout(inner.timeout.saturating_mul(4), call).await {
        Ok(result) => result,
        Err(_) => {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "tracking call timed out").into())
        }
    }
}

fn already_on(message: &str) -> bool {
    message.contains("overlaps")
}

/// The first error reply in a (cluster) reply, other than "already on".
fn first_error(reply: &Value) -> Option<RedisError> {
    match reply {
        Value::ServerError(error) => {
            let text = format!("{error:?}");
            (!already_on(&text)).then(|| RedisError::from(error.clone()))
        }
        Value::Map(entries) => entries.iter().find_map(|(_, value)| first_error(value)),
        Value::Array(values) => values.iter().find_map(first_error),
        _ => None,
    }
}

/// Whether a `CLIENT TRACKINGINFO` reply (or a map of them) has a
/// `flags` entry saying `off`.
fn flags_off(reply: &Value) -> bool {
    match reply {
        Value::Map(entries) => entries.iter().any(|(key, value)| {
            if is_text(key, "flags") {
                match value {
                    Value::Set(flags) | Value::Array(flags) => {
                        flags.iter().any(|f| is_text(f, "off"))
                    }
                    other => is_text(other, "off"),
                }
            } else {
                flags_off(value)
            }
        }),
        Value::Array(values) => values.iter().any(flags_off),
        _ => false,
    }
}

fn is_text(value: &Value, text: &str) -> bool {
    match value {
        Value::BulkString(bytes) => bytes.as_slice() == text.as_bytes(),
        Value::SimpleString(s) => s == text,
        _ => false,
    }
}

/// An invalidation push: `[[key, …]]`, or `[nil]` for a flush.
fn on_invalidate(inner: &Inner, data: &[Value]) {
    inner.counters.messages.fetch_add(1, Ordering::Relaxed);
    for value in data {
        match value {
            Value::Array(keys) | Value::Set(keys) => {
                let keys: Vec<&[u8]> = keys
                    .iter()
                    .filter_map(|key| match key {
                        Value::BulkString(bytes) => Some(bytes.as_slice()),
                        _ => None,
                    })
                    .collect();
                inner.invalidate(&keys);
            }
            Value::BulkString(key) => inner.invalidate(&[key.as_slice()]),
            // Nil, or anything this version cannot read: assume the worst.
            _ => inner.flush_all(),
        }
    }
}

/// Clears L1, turns tracking back on (retrying until it works or the tier
/// is dropped), and clears L1 again.
async fn restore(weak: &Weak<Inner>) {
    if let Some(inner) = weak.upgrade() {
        inner.counters.up.store(false, Ordering::Relaxed);
        inner.flush_all();
    }
    let mut backoff = Duration::from_millis(25);
    loop {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        if enable(&inner).await.is_ok() {
            inner.counters.up.store(true, Ordering::Relaxed);
            inner.counters.restored.fetch_add(1, Ordering::Relaxed);
            // Entries loaded while tracking was off may be stale.
            inner.flush_all();
            return;
        }
        drop(inner);
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(Duration::from_secs(1));
    }
}

/// Starts the task that applies pushes and checks tracking; it ends when
/// the tier is dropped.
pub(crate) fn start(inner: &Arc<Inner>, mut pushes: UnboundedReceiver<PushInfo>, check: Duration) {
    let weak = Arc::downgrade(inner);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(check.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                push = pushes.recv() => {
                    let Some(push) = push else { return };
                    match push.kind {
                        PushKind::Invalidate => {
                            let Some(inner) = weak.upgrade() else { return };
                            on_invalidate(&inner, &push.data);
                        }
                        PushKind::Disconnection => restore(&weak).await,
                        _ => {}
                    }
                }
                _ = ticker.tick() => {
                    let Some(inner) = weak.upgrade() else { return };
                    let off = tracking_off(&inner).await;
                    drop(inner);
                    // A failed check means Redis is unreachable: the
                    // disconnection push (or a later check) handles that.
                    if matches!(off, Ok(true)) {
                        restore(&weak).await;
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn reads_tracking_flags_of_one_server_and_of_a_cluster() {
        let on = Value::Map(vec![
            (text("flags"), Value::Set(vec![text("on"), text("bcast")])),
            (text("redirect"), Value::Int(0)),
        ]);
        let off = Value::Map(vec![(text("flags"), Value::Set(vec![text("off")]))]);
        assert!(!flags_off(&on));
        assert!(flags_off(&off));
        let cluster = Value::Map(vec![(text("a:1"), on.clone()), (text("b:2"), off)]);
        assert!(flags_off(&cluster));
        assert!(!flags_off(&Value::Map(vec![(text("a:1"), on)])));
    }
}
