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
