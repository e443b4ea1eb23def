//! Streamed responses pass through as they arrive and are not stored.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use strata_tower::CacheLayer;
use tokio::sync::mpsc;
use tower::{Service, ServiceExt};

/// A body fed by a channel: the origin sends chunks when the test says.
mod tokio_stream_shim {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub(crate) struct Receiver(pub(crate) mpsc::Receiver<Bytes>);

    impl http_body::Body for Receiver {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
        }
    }
}

/// An origin whose one response body is fed through the returned sender.
fn channel_origin() -> (
    impl Service<
            Request<()>,
            Response = Response<tokio_stream_shim::Receiver>,
            Error = Infallible,
            Future = impl Send,
        > + Clone
        + Send
        + 'static,
    mpsc::Sender<Bytes>,
) {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let rx = std::sync::Arc::new(std::sync::Mutex::new(Some(rx)));
    let origin = tower::service_fn(move |_req: Request<()>| {
        let rx = rx.lock().unwrap().take().expect("one request");
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", "max-age=60")
                    .body(tokio_stream_shim::Receiver(rx))
                    .unwrap(),
            )
        }
    });
    (origin, tx)
}

#[tokio::test]
async fn an_unsized_body_streams_through_unbuffered() {
    let (origin, tx) = channel_origin();
    let layer = CacheLayer::new(1 << 20).unwrap();
    let mut svc = tower::Layer::layer(&layer, origin);
    let request = Request::get("/live")
        .header("host", "example.com")
        .body(())
        .unwrap();
    let response = svc.ready().await.unwrap().call(request).await.unwrap();
    assert!(response.headers()["cache-status"]
        .to_str()
        .unwrap()
        .contains("fwd=uri-miss"));
    let mut body = response.into_body();
    tx.send(Bytes::from_static(b"first")).await.unwrap();
    // The first chunk arrives while the origin is still sending.
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("not buffered")
        .unwrap()
        .unwrap();
    assert_eq!(frame.into_data().unwrap(), "first");
    tx.send(Bytes::from_static(b"second")).await.unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "second");
    assert_eq!(layer.stats().entries, 0, "not stored");
}

#[tokio::test]
async fn opted_in_unsized_bodies_stream_and_are_stored_when_complete() {
    let (origin, tx) = channel_origin();
    let layer = CacheLayer::builder().buffer_unsized(true).build().unwrap();
    let mut svc = tower::Layer::layer(&layer, origin);
    let request = || {
        Request::get("/live")
            .header("host", "example.com")
            .body(())
            .unwrap()
    };
    let response = svc.ready().await.unwrap().call(request()).await.unwrap();
    let mut body = response.into_body();
    tx.send(Bytes::from_static(b"first ")).await.unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("streamed, not buffered")
        .unwrap()
        .unwrap();
    assert_eq!(frame.into_data().unwrap(), "first ");
    assert_eq!(layer.stats().entries, 0, "stored only once complete");
    tx.send(Bytes::from_static(b"second")).await.unwrap();
    drop(tx);
    assert_eq!(body.collect().await.unwrap().to_bytes(), "second");
    assert_eq!(layer.stats().entries, 1);
    // The origin would panic on a second request: this one is a hit.
    let hit = svc.ready().await.unwrap().call(request()).await.unwrap();
    assert!(hit.headers()["cache-status"]
        .to_str()
        .unwrap()
        .contains("hit"));
    assert_eq!(
        hit.into_body().collect().await.unwrap().to_bytes(),
        "first second"
    );
}

#[tokio::test]
async fn excluded_content_types_stream_through_unstored() {
    let layer = CacheLayer::builder()
        .excluded_content_types(["video/*", "application/pdf"])
        .build()
        .unwrap();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&calls);
    let origin = tower::service_fn(move |request: Request<()>| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let content_type = match request.uri().path() {
            "/movie" => "VIDEO/mp4; codecs=avc1",
            "/paper" => "application/pdf",
            "/page" => "text/html; charset=utf-8",
            _ => "application/pdf-like",
        };
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", "max-age=600")
                    .header("content-type", content_type)
                    .header("content-length", "4")
                    .body(http_body_util::Full::new(Bytes::from_static(b"data")))
                    .unwrap(),
            )
        }
    });
    let svc = tower::Layer::layer(&layer, origin);
    for (path, stored) in [
        ("/movie", false),
        ("/paper", false),
        ("/page", true),
        ("/other", true),
    ] {
        let before = calls.load(std::sync::atomic::Ordering::SeqCst);
        for _ in 0..2 {
            let request = Request::get(path)
                .header("host", "example.com")
                .body(())
                .unwrap();
            let response = svc.clone().oneshot(request).await.unwrap();
            assert_eq!(
                response.into_body().collect().await.unwrap().to_bytes(),
                "data"
            );
        }
        let asked = calls.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert_eq!(asked, if stored { 1 } else { 2 }, "{path}");
    }
}
