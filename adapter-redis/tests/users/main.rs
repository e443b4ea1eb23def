//! The `users` example as people run it: real processes sharing one SQLite
//! file and one `redis-server`, driven by a real HTTP client.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use support::{RedisServer, INVALIDATION_BOUND};

/// Reads repeated after the first fresh one, all of which must be fresh.
const REPEATS: usize = 200;

/// The example binary, built next to this test by `cargo test`.
fn example_binary() -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop(); // deps
    dir.pop(); // debug or release
    let path = dir.join("examples").join("users");
    assert!(
        path.exists(),
        "{} is missing: `cargo test -p strata-redis` builds it (or \
         `cargo build -p strata-redis --example users` before `--test users`)",
        path.display()
    );
    path
}

/// A SQLite file for one test, removed on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new(test: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "strata-users-test-{}-{test}.sqlite3",
            std::process::id()
        ));
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path()));
        }
    }
}

/// How an instance finds Redis.
enum Redis<'a> {
    None,
    Flag(&'a str),
    Env(&'a str),
}

/// A running instance of the example, killed on drop.
struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    /// Starts the example on a free port and waits for its first line.
    fn start(db: &TempDb, redis: Redis<'_>) -> Self {
        let mut cmd = Command::new(example_binary());
        cmd.args(["--db", db.path(), "--listen", "127.0.0.1:0"])
            .env_remove("REDIS_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match redis {
            Redis::None => {}
            Redis::Flag(url) => {
                cmd.args(["--redis", url]);
            }
            Redis::Env(url) => {
                cmd.env("REDIS_URL", url);
            }
        }
        let mut child = cmd.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let Some(base) = first.trim().strip_prefix("listening on ") else {
            let mut stderr = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
            let _ = child.kill();
            let _ = child.wait();
            panic!("the example did not start: stdout {first:?}, stderr {stderr:?}");
        };
        let base = base.to_owned();
        // Keep the pipes drained; pass the example's warnings through.
        std::thread::spawn(move || for _ in stdout.lines() {});
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("[users] {line}");
            }
        });
        Self { child, base }
    }
}

struct Reply {
    status: StatusCode,
    x_cache: Option<String>,
    body: Value,
}

impl Reply {
    fn name(&self) -> &str {
        self.body["name"].as_str().unwrap_or("")
    }
}

/// One keep-alive HTTP client.
struct Http(Client<HttpConnector, Full<Bytes>>);

impl Http {
    fn new() -> Self {
        Self(Client::builder(TokioExecutor::new()).build_http())
    }

    async fn send(&self, method: Method, url: &str, json: Option<&str>) -> Reply {
        let mut request = Request::builder().method(method).uri(url);
        if json.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = Full::new(Bytes::from(json.unwrap_or("").to_owned()));
        let response = self.0.request(request.body(body).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            x_cache: parts
                .headers
                .get("x-cache")
                .map(|v| v.to_str().unwrap().to_owned()),
            body: if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            },
        }
    }

    async fn get(&self, instance: &Instance, path: &str) -> Reply {
        self.send(Method::GET, &format!("{}{path}", instance.base), None)
            .await
    }

    async fn stats(&self, instance: &Instance) -> Value {
        self.get(instance, "/stats").await.body
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_instance_is_never_served_stale_by_another() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let db = TempDb::new("tiered");
    let a = Instance::start(&db, Redis::Flag(&url));
    let b = Instance::start(&db, Redis::Env(&url));
    let http = Http::new();

    // B loads the user from the database, then serves it from its L1.
    let first = http.get(&b, "/users/1").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.name(), "Ada Lovelace");
    assert_eq!(first.x_cache.as_deref(), Some("db"));
    let second = http.get(&b, "/users/1").await;
    assert_eq!(second.name(), "Ada Lovelace");
    assert_eq!(second.x_cache.as_deref(), Some("l1"));
    let stats = http.stats(&b).await;
    assert_eq!(stats["mode"], "l1+redis");
    assert_eq!(
        (stats["l1_hits"].as_u64(), stats["loads"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        stats["l2_writes"].as_u64(),
        Some(1),
        "the load went to Redis"
    );

    // A finds it in Redis without touching the database.
    let from_a = http.get(&a, "/users/1").await;
    assert_eq!(from_a.name(), "Ada Lovelace");
    assert_eq!(from_a.x_cache.as_deref(), Some("l2"));
    let stats = http.stats(&a).await;
    assert_eq!(
        (stats["l2_hits"].as_u64(), stats["loads"].as_u64()),
        (Some(1), Some(0))
    );

    // A updates the user; B may serve the old row only until its L1 hears.
    let put = http
        .send(
            Method::PUT,
            &format!("{}/users/1", a.base),
            Some(r#"{"name":"Ada King","email":"ada.king@example.com"}"#),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(put.name(), "Ada King");
    let written = Instant::now();
    let mut stale_reads = 0;
    let took = loop {
        let reply = http.get(&b, "/users/1").await;
        assert_eq!(reply.status, StatusCode::OK);
        if reply.name() == "Ada King" {
            break written.elapsed();
        }
        assert_eq!(reply.name(), "Ada Lovelace", "only the old or the new row");
        stale_reads += 1;
        assert!(
            written.elapsed() < INVALIDATION_BOUND,
            "B still serves the old row {INVALIDATION_BOUND:?} after the PUT"
        );
    };
    println!("PUT on A -> first fresh read on B: {took:?} ({stale_reads} stale reads before)");
    for i in 0..REPEATS {
        let reply = http.get(&b, "/users/1").await;
        assert_eq!(
            reply.name(),
            "Ada King",
            "read {i} after the first fresh one"
        );
        assert_eq!(reply.body["email"], "ada.king@example.com");
    }
    let stats = http.stats(&b).await;
    assert!(stats["invalidated_keys"].as_u64() >= Some(1), "{stats}");
    let own = http.get(&a, "/users/1").await;
    assert_eq!(own.name(), "Ada King");
    assert_eq!(
        own.x_cache.as_deref(),
        Some("l1"),
        "the writer keeps what it wrote"
    );

    // A deletes the user; B answers 404 within the bound, then always.
    let delete = http
        .send(Method::DELETE, &format!("{}/users/1", a.base), None)
        .await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT);
    let deleted = Instant::now();
    let took = loop {
        let reply = http.get(&b, "/users/1").await;
        if reply.status == StatusCode::NOT_FOUND {
            break deleted.elapsed();
        }
        assert_eq!(reply.name(), "Ada King");
        assert!(
            deleted.elapsed() < INVALIDATION_BOUND,
            "B still serves the user {INVALIDATION_BOUND:?} after the DELETE"
        );
    };
    println!("DELETE on A -> first 404 on B: {took:?}");
    for _ in 0..REPEATS {
        assert_eq!(http.get(&b, "/users/1").await.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(http.get(&a, "/users/1").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_example_caches_in_l1_alone() {
    let db = TempDb::new("local");
    let app = Instance::start(&db, Redis::None);
    let http = Http::new();

    let first = http.get(&app, "/users/2").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.name(), "Alan Turing");
    assert_eq!(first.x_cache.as_deref(), Some("db"));
    let second = http.get(&app, "/users/2").await;
    assert_eq!(second.name(), "Alan Turing");
    assert_eq!(second.x_cache.as_deref(), Some("l1"));
    let stats = http.stats(&app).await;
    assert_eq!(stats["mode"], "l1");
    assert_eq!(
        (stats["l1_hits"].as_u64(), stats["loads"].as_u64()),
        (Some(1), Some(1))
    );

    let put = http
        .send(
            Method::PUT,
            &format!("{}/users/2", app.base),
            Some(r#"{"name":"A. M. Turing","email":"amt@example.com"}"#),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);
    let after = http.get(&app, "/users/2").await;
    assert_eq!(after.name(), "A. M. Turing");
    assert_eq!(
        after.x_cache.as_deref(),
        Some("l1"),
        "the PUT cached the row"
    );

    // Misses are not cached: each one asks the database.
    for _ in 0..2 {
        assert_eq!(
            http.get(&app, "/users/999").await.status,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(http.stats(&app).await["loads"].as_u64(), Some(3));

    assert_eq!(
        http.get(&app, "/users/abc").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        http.get(&app, "/users/0").await.status,
        StatusCode::BAD_REQUEST
    );
    let bad_body = http
        .send(
            Method::PUT,
            &format!("{}/users/2", app.base),
            Some(r#"{"name":"x"}"#),
        )
        .await;
    assert_eq!(bad_body.status, StatusCode::BAD_REQUEST);
    assert!(bad_body.body["error"].as_str().unwrap().contains("email"));

    let delete = http
        .send(Method::DELETE, &format!("{}/users/2", app.base), None)
        .await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT);
    assert_eq!(
        http.get(&app, "/users/2").await.status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn a_bad_or_unreachable_redis_stops_the_example_with_a_message() {
    let db = TempDb::new("bad-redis");
    // A port nothing listens on: bind, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("redis://127.0.0.1:{port}");
    for (url, message) in [
        ("not a url", "invalid Redis address"),
        (closed.as_str(), "cannot connect to Redis"),
    ] {
        let output = Command::new(example_binary())
            .args(["--db", db.path(), "--listen", "127.0.0.1:0"])
            .env("REDIS_URL", url)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{url}: {stderr}");
        assert!(stderr.contains(message), "{url}: {stderr}");
        assert!(output.stdout.is_empty(), "it never listened");
    }
}
