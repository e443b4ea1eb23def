//! strata-tower in an axum application: one `.layer(...)` caches every
//! route's responses per their `Cache-Control`.
//!
//! ```text
//! cargo run --release -p strata-tower --example axum
//! curl -si http://127.0.0.1:3001/report   # slow the first time, then a hit
//! ```
#![forbid(unsafe_code)]

use std::time::Duration;

use axum::http::header::CACHE_CONTROL;
use axum::routing::get;
use axum::Router;
use strata_tower::CacheLayer;

async fn report() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    // An expensive page: fresh for a minute.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (
        [(CACHE_CONTROL, "max-age=60")],
        "quarterly report\n".to_owned(),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = CacheLayer::builder()
        .max_capacity(64 << 20)
        .spawner(|task| {
            tokio::spawn(task);
        })
        .build()?;
    let app = Router::new().route("/report", get(report)).layer(cache);
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3001".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "axum with strata-tower on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
