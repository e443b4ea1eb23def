//! A caching reverse proxy: hyper in front, `strata_tower::CacheLayer` in
//! the middle, a hyper client to the upstream behind it.
//!
//! ```text
//! cargo run --release -p strata-tower --example proxy -- \
//!     --upstream http://127.0.0.1:8080 --listen 127.0.0.1:3000 [--memory BYTES] \
//!     [--spill-dir DIR [--spill-bytes BYTES]] [--store-unsized]
//! ```
//!
//! Every method is forwarded; GET and HEAD are cached per RFC 9111; each
//! response carries `Cache-Status`. Responses without a `Content-Length`
//! stream through unstored unless `--store-unsized` (then they still
//! stream, and are stored once complete within the size limit). With
//! `--spill-dir`, stored responses are written to memory-mapped files in
//! that directory as well (up to `--spill-bytes`, default 1 GiB): the
//! memory budget holds the hot ones, and a restarted proxy (even after a
//! crash) serves what it had stored. With `--admin-listen` and
//! `--admin-token` (or `STRATA_ADMIN_TOKEN`), the admin API (`stats`,
//! `hot-keys`, `tags`, `invalidate`, `health`) answers under `/admin` on
//! its own listener. With `--redis URL`, several proxies share what they
//! store through Redis, and an invalidation on one (an unsafe method) is
//! heard by all. Without `--upstream`, a small demo
//! origin starts on a free port and the proxy prints what to `curl`.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use strata_tower::CacheLayer;
use tokio::net::TcpListener;

type UpstreamBody = Either<Incoming, Full<Bytes>>;

struct Args {
    upstream: Option<String>,
    listen: String,
    memory: u64,
    store_unsized: bool,
    spill_dir: Option<String>,
    spill_bytes: u64,
    admin_listen: Option<String>,
    admin_token: Option<String>,
    redis: Option<String>,
    compress_above: Option<usize>,
    compression: strata_tower::Compression,
}

fn usage(problem: &str) -> ! {
    eprintln!("proxy: {problem}");
    eprintln!(
        "usage: proxy [--upstream http://HOST:PORT] [--listen ADDR:PORT] [--memory BYTES] \
         [--spill-dir DIR [--spill-bytes BYTES]] [--store-unsized] \
         [--admin-listen ADDR:PORT --admin-token TOKEN] [--redis redis://HOST:PORT] \
         [--compress-above BYTES [--compression gzip|zstd]]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        upstream: None,
        listen: "127.0.0.1:3000".into(),
        memory: 256 << 20,
        store_unsized: false,
        spill_dir: None,
        spill_bytes: 1 << 30,
        admin_listen: None,
        admin_token: std::env::var("STRATA_ADMIN_TOKEN").ok(),
        redis: None,
        compress_above: None,
        compression: strata_tower::Compression::Gzip,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--upstream" => args.upstream = Some(value()),
            "--listen" => args.listen = value(),
            "--memory" => {
                let v = value();
                args.memory = v.parse().unwrap_or_else(|_| {
                    usage(&format!("--memory takes a number of bytes, got {v:?}"))
                });
            }
            "--store-unsized" => args.store_unsized = true,
            "--spill-dir" => args.spill_dir = Some(value()),
            "--admin-listen" => args.admin_listen = Some(value()),
            "--admin-token" => args.admin_token = Some(value()),
            "--redis" => args.redis = Some(value()),
            "--spill-bytes" => {
                let v = value();
                args.spill_bytes = v.parse().unwrap_or_else(|_| {
                    usage(&format!("--spill-bytes takes a number of bytes, got {v:?}"))
                });
            }
            "--compress-above" => {
                let v = value();
                args.compress_above = Some(v.parse().unwrap_or_else(|_| {
                    usage(&format!(
                        "--compress-above takes a number of bytes, got {v:?}"
                    ))
                }));
            }
            "--compression" => {
                args.compression = match value().as_str() {
                    "gzip" => strata_tower::Compression::Gzip,
                    "zstd" => strata_tower::Compression::Zstd,
                    other => usage(&format!("--compression is gzip or zstd, got {other:?}")),
                };
            }
            "-h" | "--help" => usage("a caching reverse proxy"),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    args
}

/// The upstream's scheme and authority, checked.
fn upstream_authority(url: &str) -> Result<String, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("--upstream {url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("--upstream {url:?} must be an http:// URL"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("--upstream {url:?} has no host"))?;
    Ok(authority.to_string())
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let upstream = match &args.upstream {
        Some(url) => upstream_authority(url).unwrap_or_else(|e| usage(&e)),
        None => {
            let origin = demo_origin().await;
            println!("demo origin on http://{origin}");
            origin.to_string()
        }
    };
    let listener = match TcpListener::bind(&args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("proxy: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    let here = listener.local_addr().unwrap();
    println!("caching proxy on http://{here} -> http://{upstream}");
    if args.upstream.is_none() {
        println!("try:");
        println!("  curl -si http://{here}/slow        # 500 ms, then instant from cache");
        println!("  curl -si http://{here}/etag        # revalidated: 304 from the origin");
        println!("  curl -si http://{here}/large -o /dev/null -w '%{{size_download}}\\n'");
        println!("  curl -si --compressed http://{here}/users.json   # with --compress-above 1024");
    }
    let mut layer = CacheLayer::builder()
        .max_capacity(args.memory)
        .buffer_unsized(args.store_unsized)
        // Responses with `stale-while-revalidate` are answered at once and
        // revalidated in the background.
        .spawner(|task| {
            tokio::spawn(task);
        });
    if let Some(dir) = &args.spill_dir {
        layer = layer.spill(strata::spill::SpillConfig::new(dir, args.spill_bytes));
    }
    if let Some(bytes) = args.compress_above {
        layer = layer.compress_above(bytes).compression(args.compression);
    }
    if let Some(url) = &args.redis {
        // Connects in the background: the proxy serves from memory (and
        // its origin) until Redis is reachable.
        let tier = strata_redis::RedisTier::builder(url.as_str())
            .namespace("strata-proxy")
            .connect_lazy()
            .unwrap_or_else(|e| usage(&format!("--redis {url:?}: {e}")));
        layer = layer.second_tier(tier);
        println!("sharing stored responses through {url}");
    }
    let layer = match layer.build() {
        Ok(layer) => layer,
        // A directory that cannot be opened (or is locked by another
        // proxy) is an operational error, not a usage one.
        Err(e @ strata::ConfigError::Spill(_)) => {
            eprintln!("proxy: {e}");
            std::process::exit(1);
        }
        Err(e) => usage(&e.to_string()),
    };
    if let Some(dir) = &args.spill_dir {
        println!(
            "spilling to {dir}: {} responses found there",
            layer.stats().spill.entries
        );
    }
    if let Some(addr) = &args.admin_listen {
        // An admin API without a token is refused (and so is starting).
        let token = args.admin_token.clone().unwrap_or_default();
        let router = layer.admin_router(token).unwrap_or_else(|e| {
            usage(&format!(
                "--admin-listen needs --admin-token (or STRATA_ADMIN_TOKEN): {e}"
            ))
        });
        let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| {
            eprintln!("proxy: cannot listen on {addr} for the admin API: {e}");
            std::process::exit(1);
        });
        println!(
            "admin API on http://{}/admin",
            listener.local_addr().unwrap()
        );
        let app = axum::Router::new().nest("/admin", router);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("proxy: the admin API stopped: {e}");
            }
        });
    }
    let client = Client::builder(TokioExecutor::new()).build_http::<Incoming>();
    let forward = tower::service_fn(move |mut request: Request<Incoming>| {
        let client = client.clone();
        let upstream = upstream.clone();
        async move {
            let target = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            match format!("http://{upstream}{target}").parse::<Uri>() {
                Ok(uri) => *request.uri_mut() = uri,
                Err(_) => return Ok::<_, Infallible>(error(StatusCode::BAD_REQUEST, "bad target")),
            }
            match client.request(request).await {
                Ok(response) => Ok(response.map(Either::Left)),
                Err(e) => Ok(error(
                    StatusCode::BAD_GATEWAY,
                    &format!("upstream {upstream} unreachable: {e}"),
                )),
            }
        }
    });
    let service = tower::ServiceBuilder::new().layer(layer).service(forward);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("proxy: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A 502 (or other) made here, saying why in `Proxy-Status` (RFC 9209).
fn error(status: StatusCode, why: &str) -> Response<UpstreamBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(format!("{why}\n")))));
    *response.status_mut() = status;
    let detail = format!("strata-proxy; error=connection_refused; details={why:?}");
    if let Ok(value) = HeaderValue::from_str(&detail) {
        response.headers_mut().insert("proxy-status", value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The demo origin: `/slow` (500 ms, fresh for 30 s), `/etag` (always
/// revalidated, answers If-None-Match with 304), `/large` (1 MiB),
/// `/users.json` (22 KB of JSON that varies on `Accept-Encoding`).
async fn demo_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let large = Bytes::from(vec![b'x'; 1 << 20]);
    let rows: Vec<String> = (0..300)
        .map(|i| format!(r#"{{"id":{i},"name":"user {i}","email":"user{i}@example.com"}}"#))
        .collect();
    let users = Bytes::from(format!("[{}]", rows.join(",")));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (large, users) = (large.clone(), users.clone());
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (large, users) = (large.clone(), users.clone());
                async move {
                    let mut response = Response::builder();
                    let body = match request.uri().path() {
                        "/slow" => {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            response = response.header(header::CACHE_CONTROL, "max-age=30");
                            Bytes::from_static(b"slow answer\n")
                        }
                        "/etag" => {
                            response = response
                                .header(header::CACHE_CONTROL, "no-cache")
                                .header(header::ETAG, "\"v1\"");
                            if request.headers().get(header::IF_NONE_MATCH)
                                == Some(&HeaderValue::from_static("\"v1\""))
                            {
                                response = response.status(StatusCode::NOT_MODIFIED);
                                Bytes::new()
                            } else {
                                Bytes::from_static(b"tagged answer\n")
                            }
                        }
                        "/large" => {
                            response = response.header(header::CACHE_CONTROL, "max-age=300");
                            large
                        }
                        "/users.json" => {
                            response = response
                                .header(header::CACHE_CONTROL, "max-age=60")
                                .header(header::CONTENT_TYPE, "application/json")
                                .header(header::VARY, "accept-encoding");
                            users
                        }
                        _ => {
                            response = response.status(StatusCode::NOT_FOUND);
                            Bytes::from_static(b"not found\n")
                        }
                    };
                    Ok::<_, Infallible>(
                        response
                            .header(header::CONTENT_LENGTH, body.len())
                            .body(Full::new(body))
                            .unwrap(),
                    )
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}
