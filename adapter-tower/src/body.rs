//! The layer's response body: a stored body served from memory, or the
//! inner service's body streamed through untouched.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// Errors of the inner body, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project! {
    /// The body of a response from [`CacheService`](crate::CacheService):
    /// a stored (or just buffered) body served from memory, or the inner
    /// service's body passed through as it arrives.
    #[derive(Debug)]
    pub struct CacheBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

/// Called with the whole body once a teed body ends within its limit.
pub(crate) type Sink = Box<dyn FnOnce(Bytes) + Send>;

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Full { data: Option<Bytes> },
        Stream { #[pin] inner: B },
        // Passes frames through as they arrive and keeps copies; at the
        // end, if they stayed within `limit`, hands them to `sink`.
        Tee {
            #[pin]
            inner: B,
            copies: Vec<Bytes>,
            kept: usize,
            limit: usize,
            // The declared length: the body is complete once that much has
            // passed (servers stop polling a length-delimited body there).
            expected: Option<u64>,
            sink: Option<Sink>,
        },
    }
}

impl<B> std::fmt::Debug for Kind<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full { data } => f
                .debug_struct("Full")
                .field("len", &data.as_ref().map(Bytes::len))
                .finish(),
            Self::Stream { .. } => f.write_str("Stream"),
            Self::Tee { kept, limit, .. } => f
                .debug_struct("Tee")
                .field("kept", kept)
                .field("limit", limit)
                .finish_non_exhaustive(),
        }
    }
}

impl<B> CacheBody<B> {
    pub(crate) fn full(data: Bytes) -> Self {
        Self {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    pub(crate) fn empty() -> Self {
        Self {
            kind: Kind::Full { data: None },
        }
    }

    pub(crate) fn stream(inner: B) -> Self {
        Self {
            kind: Kind::Stream { inner },
        }
    }

    /// Streams `inner` through and, if it ends within `limit` bytes,
    /// hands a copy of the whole body to `sink` (to store it).
    pub(crate) fn tee(inner: B, limit: usize, expected: Option<u64>, sink: Sink) -> Self {
        Self {
            kind: Kind::Tee {
                inner,
                copies: Vec::new(),
                kept: 0,
                limit,
                expected,
                sink: Some(sink),
            },
        }
    }
}

impl<B> Body for CacheBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Stream { inner } => inner.poll_frame(cx).map_err(Into::into),
            KindProj::Tee {
                inner,
                copies,
                kept,
                limit,
                expected,
                sink,
            } => {
                let polled = inner.poll_frame(cx).map_err(Into::into);
                let complete = match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            *kept += data.len();
                            if *kept > *limit {
                                // Too large to store: stop copying.
                                sink.take();
                                copies.clear();
                            } else if sink.is_some() {
                                copies.push(data.clone());
                            }
                        }
                        *expected == Some(*kept as u64)
                    }
                    Poll::Ready(Some(Err(_))) => {
                        sink.take();
                        copies.clear();
                        false
                    }
                    Poll::Ready(None) => expected.is_none_or(|e| e == *kept as u64),
                    Poll::Pending => false,
                };
                if complete {
                    if let Some(sink) = sink.take() {
                        let whole = if copies.len() == 1 {
                            copies.pop().unwrap_or_default()
                        } else {
                            let mut joined = Vec::with_capacity(*kept);
                            for part in copies.drain(..) {
                                joined.extend_from_slice(&part);
                            }
                            Bytes::from(joined)
                        };
                        sink(whole);
                    }
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data } => data.is_none(),
            // A teed body must be polled to its end to store it.
            Kind::Stream { inner } => inner.is_end_stream(),
            Kind::Tee { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Stream { inner } | Kind::Tee { inner, .. } => inner.size_hint(),
        }
    }
}
