//! The example proxy as a user runs it: a real process, real listeners,
//! a real HTTP client.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The example binary, built next to this test by `cargo test`.
fn proxy_binary() -> PathBuf {
    example("proxy")
}

fn example(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop(); // deps
    dir.pop(); // debug or release
    dir.join("examples").join(name)
}

struct Proxy {
    child: Child,
    addr: String,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the proxy with `args` and waits for its "caching proxy on" line.
fn start(args: &[&str]) -> Proxy {
    start_example("proxy", args, "caching proxy on http://")
}

fn start_example(name: &str, args: &[&str], banner: &str) -> Proxy {
    let mut child = Command::new(example(name))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the example is built by cargo test");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("proxy exited early").unwrap();
        if let Some(rest) = line.strip_prefix(banner) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Proxy { child, addr }
}

async fn fetch(url: &str) -> (http::response::Parts, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = Request::get(url).body(Empty::new()).unwrap();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn the_demo_origin_is_cached_through_real_sockets() {
    let proxy = start(&["--listen", "127.0.0.1:0"]);
    let url = format!("http://{}/slow", proxy.addr);
    let started = Instant::now();
    let (first, body) = fetch(&url).await;
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the origin is slow"
    );
    assert_eq!(body, "slow answer\n");
    assert!(first.headers["cache-status"]
        .to_str()
        .unwrap()
        .contains("stored"));
    let started = Instant::now();
    let (second, body) = fetch(&url).await;
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "served from cache"
    );
    assert_eq!(body, "slow answer\n");
    assert!(second.headers["cache-status"]
        .to_str()
        .unwrap()
        .contains("hit"));
    assert!(second.headers.contains_key("age"));

    let (etag, _) = fetch(&format!("http://{}/etag", proxy.addr)).await;
    assert_eq!(etag.status, StatusCode::OK);
    let (again, body) = fetch(&format!("http://{}/etag", proxy.addr)).await;
    assert_eq!(body, "tagged answer\n");
    assert!(
        again.headers["cache-status"]
            .to_str()
            .unwrap()
            .contains("fwd-status=304"),
        "revalidated"
    );
    let (_, large) = fetch(&format!("http://{}/large", proxy.addr)).await;
    assert_eq!(large.len(), 1 << 20);
}

#[tokio::test]
async fn the_proxy_keeps_json_compressed_and_sends_it_so_to_clients_that_take_it() {
    let proxy = start(&[
        "--listen",
        "127.0.0.1:0",
        "--compress-above",
        "1024",
        "--compression",
        "zstd",
    ]);
    let url = format!("http://{}/users.json", proxy.addr);
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let get = |accept: &'static str| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let request = Request::get(url)
                .header("accept-encoding", accept)
                .body(Empty::new())
                .unwrap();
            let (parts, body) = client.request(request).await.unwrap().into_parts();
            (parts, body.collect().await.unwrap().to_bytes())
        }
    };
    let (_, plain) = get("identity").await;
    assert!(
        plain.starts_with(b"[{\"id\":0"),
        "JSON as the origin sent it"
    );
    get("gzip, deflate, br, zstd").await;
    let (hit, packed) = get("gzip, deflate, br, zstd").await;
    let status = hit.headers["cache-status"].to_str().unwrap();
    assert!(status.contains("hit"), "{status}");
    assert_eq!(hit.headers["content-encoding"], "zstd");
    assert!(packed.len() * 8 < plain.len(), "{} bytes", packed.len());
    assert_eq!(zstd::decode_all(packed.as_ref()).unwrap(), plain.as_ref());
    let (again, body) = get("identity").await;
    assert!(again.headers["cache-status"]
        .to_str()
        .unwrap()
        .contains("hit"));
    assert!(!again.headers.contains_key("content-encoding"));
    assert_eq!(
        body, plain,
        "decompressed for a client that takes no coding"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_that_says_so() {
    // A port nothing listens on: bind, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let upstream = format!("http://127.0.0.1:{port}");
    let proxy = start(&["--upstream", &upstream, "--listen", "127.0.0.1:0"]);
    let (response, body) = fetch(&format!("http://{}/x", proxy.addr)).await;
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert!(String::from_utf8_lossy(&body).contains("unreachable"));
    assert!(response.headers["proxy-status"]
        .to_str()
        .unwrap()
        .contains("connection_refused"));
    assert!(response.headers.contains_key("cache-status"));
}

#[test]
fn bad_arguments_and_a_busy_port_are_clear_errors() {
    let bad_url = Command::new(proxy_binary())
        .args(["--upstream", "ftp://nope"])
        .output()
        .unwrap();
    assert_eq!(bad_url.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_url.stderr).contains("must be an http:// URL"));
    let bad_coding = Command::new(proxy_binary())
        .args(["--compress-above", "1024", "--compression", "brotli"])
        .output()
        .unwrap();
    assert_eq!(bad_coding.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_coding.stderr).contains("gzip or zstd"));

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let output = Command::new(proxy_binary())
        .args(["--upstream", "http://127.0.0.1:9", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot listen on"));
}

#[tokio::test]
async fn the_axum_example_caches_its_routes() {
    let app = start_example(
        "axum",
        &["127.0.0.1:0"],
        "axum with strata-tower on http://",
    );
    let url = format!("http://{}/report", app.addr);
    let (first, body) = fetch(&url).await;
    assert_eq!(body, "quarterly report\n");
    assert!(first.headers["cache-status"]
        .to_str()
        .unwrap()
        .contains("stored"));
    let started = Instant::now();
    let (second, _) = fetch(&url).await;
    assert!(second.headers["cache-status"]
        .to_str()
        .unwrap()
        .contains("hit"));
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn a_restarted_proxy_serves_what_it_spilled_to_disk() {
    let dir = std::env::temp_dir().join(format!("strata-proxy-spill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let dir_arg = dir.to_str().unwrap();
    let args = [
        "--listen",
        &listen,
        "--spill-dir",
        dir_arg,
        "--spill-bytes",
        "67108864",
    ];
    {
        let mut proxy = start(&args);
        let (first, _) = fetch(&format!("http://{}/slow", proxy.addr)).await;
        assert!(first.headers["cache-status"]
            .to_str()
            .unwrap()
            .contains("stored"));
        // A crash: no chance to write anything more.
        let _ = proxy.child.kill();
        let _ = proxy.child.wait();
    }
    // The same address (the authority is part of the key), a new process,
    // a new demo origin.
    let proxy = start(&args);
    let started = Instant::now();
    let (again, body) = fetch(&format!("http://{}/slow", proxy.addr)).await;
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "served from disk, not the slow origin"
    );
    assert_eq!(body, "slow answer\n");
    assert!(again.headers["cache-status"]
        .to_str()
        .unwrap()
        .contains("hit"));
    drop(proxy);

    // Another proxy on a locked directory is refused with a clear error.
    let holder = start(&args);
    let output = Command::new(proxy_binary())
        .args(["--listen", "127.0.0.1:0", "--spill-dir", dir_arg])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("spill"), "{stderr}");
    drop(holder);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_admin_api_answers_on_its_own_listener() {
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = format!("127.0.0.1:{admin_port}");
    let proxy = start(&[
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        &admin,
        "--admin-token",
        "t0k",
    ]);
    fetch(&format!("http://{}/etag", proxy.addr)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let stats = |token: &'static str| {
        Request::get(format!("http://{admin}/admin/stats"))
            .header("authorization", format!("Bearer {token}"))
            .body(Empty::new())
            .unwrap()
    };
    let denied = client.request(stats("nope")).await.unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    let response = client.request(stats("t0k")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("\"entries\":1"), "{body}");

    // No token, no admin API: the proxy refuses to start.
    let output = Command::new(proxy_binary())
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env_remove("STRATA_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("admin-token"));
}

#[path = "../../../adapter-redis/tests/support/server.rs"]
mod redis_server;

#[tokio::test]
async fn two_proxies_share_stored_responses_through_redis() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let url = server.url();
    // Both proxies serve the same virtual host (the authority is part of
    // the key), each with a demo origin of its own.
    let a = start(&["--listen", "127.0.0.1:0", "--redis", &url]);
    let b = start(&["--listen", "127.0.0.1:0", "--redis", &url]);
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let slow = |proxy: &Proxy| {
        Request::get(format!("http://{}/slow", proxy.addr))
            .header("host", "shared.example")
            .body(Empty::new())
            .unwrap()
    };
    let first = client.request(slow(&a)).await.unwrap();
    first.into_body().collect().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server
        .command("EXISTS strata-proxy:d:shared.example/slow")
        .as_deref()
        != Some(":1\r\n")
    {
        assert!(
            Instant::now() < deadline,
            "the response never reached Redis"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let second = client.request(slow(&b)).await.unwrap();
    let status = second.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = second.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "slow answer\n");
    assert!(status.contains("hit"), "{status}");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "not the slow origin"
    );
}
