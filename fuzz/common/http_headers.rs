// Shared by the fuzz target and the corpus replay test (`include!`d).

/// Arbitrary request and response headers (cut from the input at newlines,
/// names and values at the first ':'; values may hold any bytes a header
/// value may) sent twice through a `CacheLayer`: parsing `Cache-Control`,
/// `Age`, `Expires`, `Date`, `Vary`, `If-None-Match`, `If-Modified-Since`,
/// `Surrogate-Control`, `Location` and the rest never panics, and every
/// answer is a well-formed response.
pub fn check_http_headers(data: &[u8]) {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use bytes::Bytes;
    use http::{HeaderName, HeaderValue, Method, Request, Response};
    use http_body_util::{BodyExt, Full};
    use tower::{Layer, Service};

    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    fn headers(text: &[u8]) -> Vec<(HeaderName, HeaderValue)> {
        text.split(|&b| b == b'\n')
            .filter_map(|line| {
                let at = line.iter().position(|&b| b == b':')?;
                let name = HeaderName::from_bytes(&line[..at]).ok()?;
                let value = HeaderValue::from_bytes(&line[at + 1..]).ok()?;
                Some((name, value))
            })
            .collect()
    }

    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (request_part, response_part) = data.split_at(split);
    let request_headers = headers(request_part);
    let response_headers = headers(response_part.get(1..).unwrap_or(&[]));
    let method = match data.first().map(|b| b % 4) {
        Some(0) => Method::POST,
        Some(1) => Method::HEAD,
        _ => Method::GET,
    };
    let origin = tower::service_fn(move |_request: Request<()>| {
        let mut response = Response::new(Full::new(Bytes::from_static(b"body")));
        for (name, value) in &response_headers {
            response.headers_mut().append(name.clone(), value.clone());
        }
        async move { Ok::<_, Infallible>(response) }
    });
    let layer = strata_tower::CacheLayer::new(1 << 20).expect("layer");
    let mut service = layer.layer(origin);
    for _ in 0..2 {
        for m in [method.clone(), Method::GET] {
            let mut request = Request::builder().method(m).uri("/fuzz");
            for (name, value) in &request_headers {
                request = request.header(name, value);
            }
            let Ok(request) = request.body(()) else { return };
            let response = block_on(service.call(request)).expect("infallible");
            let _ = block_on(response.into_body().collect());
        }
    }
}
