//! Metrics and tracing (features `metrics`, `tracing`): what requests emit,
//! through a recorder and a subscriber that keep everything they are given.
#![allow(clippy::unwrap_used)]

#[path = "../../../adapter-redis/tests/support/server.rs"]
mod server;
#[path = "../support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use http::Request;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use support::{get, layer, layered, origin, reply, send};
use tracing_subscriber::layer::{Context, SubscriberExt};

#[derive(Default)]
struct Captured {
    counters: Mutex<HashMap<String, u64>>,
    histograms: Mutex<HashMap<String, Vec<f64>>>,
}

impl Captured {
    fn counter(&self, key: &str) -> u64 {
        self.counters.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

/// `name{label=value,...}`, labels sorted.
fn describe(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

struct Handle {
    name: String,
    into: &'static Captured,
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        *self
            .into
            .counters
            .lock()
            .unwrap()
            .entry(self.name.clone())
            .or_default() += value;
    }

    fn absolute(&self, value: u64) {
        self.into
            .counters
            .lock()
            .unwrap()
            .insert(self.name.clone(), value);
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.into
            .histograms
            .lock()
            .unwrap()
            .entry(self.name.clone())
            .or_default()
            .push(value);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, _: f64) {}
    fn decrement(&self, _: f64) {}
    fn set(&self, _: f64) {}
}

struct KeepAll(&'static Captured);

impl Recorder for KeepAll {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Handle {
            name: describe(key),
            into: self.0,
        }))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Arc::new(Handle {
            name: describe(key),
            into: self.0,
        }))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Handle {
            name: describe(key),
            into: self.0,
        }))
    }
}

fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<&'static Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured: &'static Captured = Box::leak(Box::default());
        metrics::set_global_recorder(KeepAll(captured)).unwrap();
        captured
    })
}

/// Keeps the names of spans opened and the `cache_status` of events.
#[derive(Clone, Default)]
struct Spans {
    opened: Arc<Mutex<Vec<String>>>,
    decisions: Arc<Mutex<Vec<String>>>,
}

struct CacheStatus(Option<String>);

impl tracing::field::Visit for CacheStatus {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "cache_status" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        self.opened
            .lock()
            .unwrap()
            .push(attrs.metadata().name().to_owned());
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut status = CacheStatus(None);
        event.record(&mut status);
        if let Some(status) = status.0 {
            self.decisions.lock().unwrap().push(status);
        }
    }
}

// One test: the recorder is global to this process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_emit_counters_latencies_spans_and_decisions() {
    let metrics = captured();
    let spans = Spans::default();
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));

    let (small_origin, _) = origin(|_, _| reply("hello", &[("cache-control", "max-age=60")]));
    let mut svc = layered(&layer(), small_origin);
    send(&mut svc, get("/a")).await;
    send(&mut svc, get("/a")).await;
    send(&mut svc, get("/a")).await;
    let post = Request::post("/a")
        .header("host", "example.com")
        .body(())
        .unwrap();
    send(&mut svc, post).await;

    assert_eq!(
        metrics.counter("strata_http_responses_total{outcome=miss}"),
        1
    );
    assert_eq!(
        metrics.counter("strata_http_responses_total{outcome=hit}"),
        2
    );
    assert_eq!(
        metrics.counter("strata_http_responses_total{outcome=method}"),
        1
    );
    assert_eq!(metrics.counter("strata_http_stores_total{}"), 1);
    let upstream = metrics
        .histograms
        .lock()
        .unwrap()
        .get("strata_http_upstream_seconds{result=ok,tier=origin}")
        .cloned()
        .unwrap_or_default();
    assert_eq!(upstream.len(), 2, "the miss and the POST went upstream");
    assert!(upstream.iter().all(|&s| (0.0..10.0).contains(&s)));

    let opened = spans.opened.lock().unwrap().clone();
    assert_eq!(
        opened
            .iter()
            .filter(|n| *n == "strata_tower.request")
            .count(),
        4
    );
    assert_eq!(
        opened
            .iter()
            .filter(|n| *n == "strata_tower.upstream")
            .count(),
        2
    );
    let decisions = spans.decisions.lock().unwrap().clone();
    assert_eq!(decisions.len(), 4, "{decisions:?}");
    assert!(decisions[0].starts_with("fwd=uri-miss") && decisions[1].starts_with("hit"));

    // Evictions: 1.6 MB of responses through a store of 1 MiB.
    let small = strata_tower::CacheLayer::builder()
        .max_capacity(1 << 20)
        .build()
        .unwrap();
    let (big, _) = origin(|_, _| {
        let body: &'static str = Box::leak("x".repeat(8_000).into_boxed_str());
        reply(body, &[("cache-control", "max-age=60")])
    });
    let mut svc = layered(&small, big);
    for i in 0..200 {
        send(&mut svc, get(&format!("/big{i}"))).await;
    }
    assert!(metrics.counter("strata_http_evictions_total{}") > 0);

    // Second-tier calls: their own latency samples and spans.
    let Some(mut redis) = server::RedisServer::start() else {
        return;
    };
    let with_tier = || async {
        let tier = strata_redis::RedisTier::builder(redis.url())
            .namespace("telemetry")
            .timeout(std::time::Duration::from_millis(100))
            .connect()
            .await
            .unwrap();
        strata_tower::CacheLayer::builder()
            .spawner(|task| {
                tokio::spawn(task);
            })
            .second_tier(tier)
            .build()
            .unwrap()
    };
    let (writer, reader) = (with_tier().await, with_tier().await);
    let samples = |result: &str| {
        metrics
            .histograms
            .lock()
            .unwrap()
            .get(&format!(
                "strata_http_upstream_seconds{{result={result},tier=l2}}"
            ))
            .map_or(0, Vec::len)
    };
    let tier_spans = || {
        spans
            .opened
            .lock()
            .unwrap()
            .iter()
            .filter(|n| *n == "strata_tower.tier")
            .count()
    };
    let (doc, seen) = origin(|_, _| reply("shared", &[("cache-control", "max-age=60")]));
    send(&mut layered(&writer, doc.clone()), get("/shared")).await;
    assert_eq!(
        (samples("ok"), tier_spans()),
        (1, 1),
        "the writer's miss in Redis"
    );
    let mut written = false;
    for _ in 0..200 {
        if writer.second_tier_stats().unwrap().writes == 1 {
            written = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(written);
    let (_, body) = send(&mut layered(&reader, doc.clone()), get("/shared")).await;
    assert_eq!((body.as_ref(), seen.count()), (&b"shared"[..], 1));
    assert_eq!(
        (samples("ok"), tier_spans()),
        (2, 2),
        "the reader's hit in Redis"
    );
    redis.kill();
    send(&mut layered(&reader, doc), get("/other")).await;
    assert_eq!(samples("error"), 1, "a call to a dead Redis");
    let failed = metrics
        .histograms
        .lock()
        .unwrap()
        .get("strata_http_upstream_seconds{result=error,tier=l2}")
        .cloned()
        .unwrap_or_default();
    assert!(failed[0] < 1.0, "bounded by the tier's timeout: {failed:?}");
}
