//! Helpers shared by the layer's integration tests: an origin built from
//! `service_fn` that counts its requests, and a one-call client.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use strata_tower::{CacheBody, CacheLayer, CacheService};
use tower::{Service, ServiceExt};

/// What the origin saw.
#[derive(Clone, Default)]
pub struct Seen {
    pub count: Arc<AtomicUsize>,
    pub headers: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Seen {
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub fn last(&self) -> HeaderMap {
        self.headers
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

pub type Origin = tower::util::BoxCloneSyncService<Request<()>, Response<Full<Bytes>>, Infallible>;

/// An origin answering every request with `respond(request, n)` (n counts
/// from 1).
pub fn origin(
    respond: impl Fn(&Request<()>, usize) -> Response<Full<Bytes>> + Send + Sync + 'static,
) -> (Origin, Seen) {
    let seen = Seen::default();
    let counter = seen.clone();
    let respond = Arc::new(respond);
    let svc = tower::service_fn(move |request: Request<()>| {
        let n = counter.count.fetch_add(1, Ordering::SeqCst) + 1;
        counter
            .headers
            .lock()
            .unwrap()
            .push(request.headers().clone());
        let response = respond(&request, n);
        async move { Ok::<_, Infallible>(response) }
    });
    (tower::util::BoxCloneSyncService::new(svc), seen)
}

/// A response with `body` and the given headers (and a Content-Length).
pub fn reply(body: &'static str, headers: &[(&str, &str)]) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().header("content-length", body.len());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

pub fn layered(layer: &CacheLayer, origin: Origin) -> CacheService<Origin> {
    tower::Layer::layer(layer, origin)
}

/// Sends `request` through `svc`; returns the response with its body.
pub async fn send(svc: &mut CacheService<Origin>, request: Request<()>) -> (Response<()>, Bytes) {
    let response: Response<CacheBody<Full<Bytes>>> =
        svc.ready().await.unwrap().call(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (Response::from_parts(parts, ()), bytes)
}

pub fn get(uri: &str) -> Request<()> {
    Request::get(uri)
        .header("host", "example.com")
        .body(())
        .unwrap()
}

/// The response's `Cache-Status`.
pub fn status(response: &Response<()>) -> String {
    response
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

pub fn layer() -> CacheLayer {
    CacheLayer::new(16 << 20).unwrap()
}

/// A GET of `uri` on example.com with one more header.
pub fn get_with(uri: &str, name: &str, value: &str) -> Request<()> {
    Request::get(uri)
        .header("host", "example.com")
        .header(name, value)
        .body(())
        .unwrap()
}

/// A HEAD of `uri` on example.com with more headers.
pub fn head(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::head(uri).header("host", "example.com");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

/// An answer to a HEAD: exactly the given headers (`Content-Length`
/// included, if any), no body.
pub fn head_reply(headers: &[(&str, &str)]) -> Response<Full<Bytes>> {
    let mut builder = Response::builder();
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(Bytes::new())).unwrap()
}
