//! Structured cache-event logs: one sampled JSON line per decision.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};

use http::{HeaderName, Request};
use strata_tower::{CacheEvent, CacheLayer, EventLog};
use support::{layered, origin, reply, send};

fn logged(log: impl Fn(EventLog) -> EventLog) -> (CacheLayer, Arc<Mutex<Vec<CacheEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let layer = CacheLayer::builder()
        .tags_from_header(HeaderName::from_static("cache-tag"))
        .event_log(log(EventLog::new(move |event: &CacheEvent| {
            sink.lock().unwrap().push(event.clone());
        })))
        .build()
        .unwrap();
    (layer, events)
}

fn request(path: &str, id: Option<&str>) -> Request<()> {
    let mut builder = Request::get(path)
        .header("host", "example.com")
        .header("authorization", "Bearer secret-never-logged")
        .header("cookie", "session=also-never-logged");
    if let Some(id) = id {
        builder = builder.header("x-request-id", id);
    }
    builder.body(()).unwrap()
}

#[tokio::test]
async fn one_event_per_decision_with_the_documented_fields() {
    let (layer, events) = logged(|log| log);
    let (origin, _) = origin(|_, _| {
        reply(
            "hello",
            &[
                ("cache-control", "public, max-age=60"),
                ("cache-tag", "greeting"),
            ],
        )
    });
    let mut svc = layered(&layer, origin);
    send(&mut svc, request("/a?x=1", Some("req-1"))).await;
    send(&mut svc, request("/a?x=1", None)).await;

    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 2);
    let (miss, hit) = (&events[0], &events[1]);
    assert_eq!((miss.operation, miss.tier), ("miss", "origin"));
    assert_eq!((hit.operation, hit.tier), ("hit", "memory"));
    assert_eq!(miss.request_id, "req-1");
    assert_eq!(hit.request_id.len(), 16, "a made-up id");
    assert_eq!(hit.key, "example.com/a?x=1");
    assert_eq!(hit.tags, ["greeting"]);
    assert_eq!((hit.status, hit.size), (200, Some(5)));
    assert!(hit.timestamp_ms > 1_700_000_000_000);
    let line = hit.to_json();
    assert!(
        line.starts_with("{\"timestamp_ms\":") && line.ends_with('}'),
        "{line}"
    );
    assert!(line.contains("\"operation\":\"hit\""), "{line}");
    for secret in ["secret-never-logged", "also-never-logged"] {
        assert!(!miss.to_json().contains(secret) && !line.contains(secret));
    }
}

#[tokio::test]
async fn sampling_and_hashed_keys() {
    let (layer, events) = logged(|log| log.sample_rate(0.1).hash_keys(true));
    let (origin, _) = origin(|_, _| reply("x", &[("cache-control", "public, max-age=60")]));
    let mut svc = layered(&layer, origin);
    for _ in 0..50 {
        send(&mut svc, request("/private?token=abc", None)).await;
    }
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 5, "one in ten");
    for event in &events {
        assert!(event.key_is_hash);
        assert_eq!(event.key.len(), 16);
        let line = event.to_json();
        assert!(
            line.contains("\"key_hash\":") && !line.contains("token=abc"),
            "{line}"
        );
    }
}
