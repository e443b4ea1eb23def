//! A users service: SQLite as the source of truth, strata as an in-process
//! L1, Redis as a shared L2, and every instance's L1 kept coherent by Redis
//! client tracking.
//!
//! ```text
//! cargo run -p strata-redis --example users -- --db /tmp/users.sqlite3 --listen 127.0.0.1:3000
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p strata-redis --example users -- --db /tmp/users.sqlite3 --listen 127.0.0.1:3001
//! curl -si http://127.0.0.1:3001/users/1          # x-cache: db, then l1
//! curl -si -X PUT -H 'content-type: application/json' \
//!      -d '{"name":"Ada L.","email":"ada@example.com"}' http://127.0.0.1:3001/users/1
//! curl -si -X DELETE http://127.0.0.1:3001/users/1
//! curl -s http://127.0.0.1:3001/stats
//! ```
//!
//! Cache-aside, done so that the cache never turns into the problem:
//!
//! - a Redis failure or timeout (100 ms) is a miss, never a failed request,
//!   and a dead Redis is not called at all for a while (the circuit
//!   breaker);
//! - concurrent misses of one user make one Redis read and at most one
//!   database read (single flight);
//! - values are typed (`Serde<User>`) inside checksummed records: garbage
//!   in Redis is a miss, not a wrong user;
//! - writes go to the database first, then to the cache: `PUT` stores the
//!   row the database returned, `DELETE` removes the key; either way every
//!   other instance drops the key from its L1 within milliseconds;
//! - missing users are not cached: a user created by another writer is
//!   visible at once;
//! - everything expires (L1 after a minute, Redis after ten), which bounds
//!   any staleness the above does not rule out: a cache write that failed
//!   after its database write, or two instances writing one user at the
//!   same moment (the cache may keep the older of the two rows).
//!
//! Without `REDIS_URL` (or `--redis`) the service runs with the L1 only,
//! through the same code.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use strata::codec::Serde;
use strata::tiered::{TierError, TieredCache};
use strata::{Cache, LoadError};
use strata_redis::RedisTier;

const USAGE: &str = "usage: users [--db PATH] [--redis URL] [--listen ADDR]

  --db PATH      the SQLite database (created and seeded if empty);
                 default: a file in the temp directory
  --redis URL    Redis for the shared L2 and cross-instance invalidation;
                 default: $REDIS_URL; without either, L1 only
  --listen ADDR  default: 127.0.0.1:3000 (port 0: any free port)";

/// How long a user stays in an instance's L1.
const L1_TTL: Duration = Duration::from_secs(60);
/// How long a user stays in Redis.
const L2_TTL: Duration = Duration::from_secs(600);
/// The bound on every Redis call.
const REDIS_TIMEOUT: Duration = Duration::from_millis(100);

const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// A row of `users`, as cached and as served.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    email: String,
}

/// The body of a `PUT`.
#[derive(Debug, Deserialize)]
struct UserBody {
    name: String,
    email: String,
}

// ---------------------------------------------------------------- database

/// One SQLite connection, used from blocking threads.
#[derive(Clone)]
struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (creating and seeding if needed) the database at `path`.
    fn open(path: &std::path::Path) -> rusqlite::Result<Self> {
        let mut conn = Connection::open(path)?;
        // Several instances share the file: wait for each other's locks.
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |row| {
            row.get::<_, String>(0)
        })?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS users (
                 id INTEGER PRIMARY KEY,
                 name TEXT NOT NULL,
                 email TEXT NOT NULL
             )",
        )?;
        let count: i64 = tx.query_row("SELECT COUNT(*) FROM users", [], |row| row.get(0))?;
        if count == 0 {
            tx.execute_batch(
                "INSERT INTO users (id, name, email) VALUES
                     (1, 'Ada Lovelace', 'ada@example.com'),
                     (2, 'Alan Turing', 'alan@example.com'),
                     (3, 'Grace Hopper', 'grace@example.com')",
            )?;
        }
        tx.commit()?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection in a blocking thread.
    async fn run<R, F>(&self, f: F) -> Result<R, String>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let joined = tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves the connection usable.
            let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn)
        })
        .await;
        match joined {
            Ok(result) => result.map_err(|e| format!("database error: {e}")),
            Err(e) => Err(format!("database task failed: {e}")),
        }
    }

    async fn find(&self, id: u64) -> Result<Option<User>, String> {
        let sql_id = sql_id(id)?;
        self.run(move |conn| {
            conn.query_row(
                "SELECT name, email FROM users WHERE id = ?1",
                [sql_id],
                |row| {
                    Ok(User {
                        id,
                        name: row.get(0)?,
                        email: row.get(1)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    /// Creates or replaces a user; the row as stored.
    async fn upsert(&self, id: u64, body: UserBody) -> Result<User, String> {
        let sql_id = sql_id(id)?;
        self.run(move |conn| {
            conn.query_row(
                "INSERT INTO users (id, name, email) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email
                 RETURNING name, email",
                rusqlite::params![sql_id, body.name, body.email],
                |row| {
                    Ok(User {
                        id,
                        name: row.get(0)?,
                        email: row.get(1)?,
                    })
                },
            )
        })
        .await
    }

    /// Deletes a user; whether there was one.
    async fn delete(&self, id: u64) -> Result<bool, String> {
        let sql_id = sql_id(id)?;
        self.run(move |conn| conn.execute("DELETE FROM users WHERE id = ?1", [sql_id]))
            .await
            .map(|deleted| deleted > 0)
    }
}

fn sql_id(id: u64) -> Result<i64, String> {
    i64::try_from(id).map_err(|_| format!("user id {id} is out of range"))
}

// ------------------------------------------------------------------- cache

/// The user cache: L1 in front of Redis, or L1 alone.
enum Users {
    Tiered(TieredCache<u64, Serde<User>, RedisTier>),
    Local(Cache<u64, Serde<User>>),
}

/// Why the loader found no user.
#[derive(Debug)]
enum Missing {
    NotFound,
    Db(String),
}

/// Where a response's user came from (`x-cache`).
#[derive(Clone, Copy, Debug)]
enum Source {
    L1,
    L2,
    Db,
}

impl Source {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::L1 => "l1",
            Self::L2 => "l2",
            Self::Db => "db",
        })
    }
}

impl Users {
    fn l1(&self) -> &Cache<u64, Serde<User>> {
        match self {
            Self::Tiered(cache) => cache.l1(),
            Self::Local(cache) => cache,
        }
    }

    /// The user from L1, Redis, or the database (one load per key at a
    /// time, across all concurrent requests).
    async fn get(&self, id: u64, db: &Db, loads: &AtomicU64) -> Result<(User, Source), ApiError> {
        let loaded_here = AtomicBool::new(false);
        let load = || async {
            loaded_here.store(true, Ordering::Relaxed);
            loads.fetch_add(1, Ordering::Relaxed);
            match db.find(id).await {
                Ok(Some(user)) => Ok(Serde(user)),
                Ok(None) => Err(Missing::NotFound),
                Err(e) => Err(Missing::Db(e)),
            }
        };
        // Only for the `x-cache` label: an invalidation landing between
        // this check and the lookup can mislabel one response, never
        // change which value it carries.
        let in_l1 = self.l1().contains_key(&id);
        let result = match self {
            Self::Tiered(cache) => cache.try_get_or_load(id, load).await,
            Self::Local(cache) => cache.try_get_or_load(id, load).await,
        };
        let source = if loaded_here.load(Ordering::Relaxed) {
            Source::Db
        } else if in_l1 {
            Source::L1
        } else if matches!(self, Self::Tiered(_)) {
            // Redis, or a concurrent request's lookup of the same user.
            Source::L2
        } else {
            // A concurrent request's database read.
            Source::Db
        };
        match result {
            Ok(Serde(user)) => Ok((user, source)),
            Err(LoadError::Failed(missing)) => Err(match &*missing {
                Missing::NotFound => ApiError::NotFound(id),
                Missing::Db(e) => ApiError::Internal(e.clone()),
            }),
            Err(_) => Err(ApiError::Internal(
                "the lookup of this user failed in a concurrent request".to_owned(),
            )),
        }
    }

    /// Caches `user` after its row was written; other instances drop
    /// their copies.
    async fn put(&self, user: User) -> Result<(), TierError> {
        match self {
            Self::Tiered(cache) => cache.insert(user.id, Serde(user)).await,
            Self::Local(cache) => {
                // Refused only when heavier than an entry may be: then it
                // is simply not cached.
                let _ = cache.insert(user.id, Serde(user));
                Ok(())
            }
        }
    }

    /// Forgets `id` after its row was deleted, here and everywhere.
    async fn remove(&self, id: u64) -> Result<(), TierError> {
        match self {
            Self::Tiered(cache) => cache.remove(&id).await,
            Self::Local(cache) => {
                cache.remove(&id);
                Ok(())
            }
        }
    }

    fn stats(&self, loads: u64) -> serde_json::Value {
        let l1 = self.l1().stats();
        match self {
            Self::Tiered(cache) => {
                let s = cache.stats();
                let redis = cache.tier().stats();
                serde_json::json!({
                    "mode": "l1+redis",
                    "l1_hits": s.l1_hits,
                    "l2_hits": s.l2_hits,
                    "l2_misses": s.l2_misses,
                    "l2_errors": s.l2_errors,
                    "l2_skipped": s.l2_skipped,
                    "l2_corrupt": s.l2_corrupt,
                    "l2_writes": s.l2_writes,
                    "l2_write_errors": s.l2_write_errors,
                    "loads": s.loads,
                    "promotions": s.promotions,
                    "invalidated_keys": s.invalidated_keys,
                    "flushes": s.flushes,
                    "fills_dropped": s.fills_dropped,
                    "breaker_open": s.breaker_open,
                    "l1_entries": l1.entries,
                    "redis_invalidation_messages": redis.invalidation_messages,
                    "redis_tracking_up": redis.tracking_up,
                })
            }
            Self::Local(_) => serde_json::json!({
                "mode": "l1",
                "l1_hits": l1.hits,
                "l1_misses": l1.misses,
                "loads": loads,
                "l1_entries": l1.entries,
            }),
        }
    }
}

// ---------------------------------------------------------------- handlers

struct App {
    db: Db,
    users: Users,
    /// Database reads by the loader (both modes).
    loads: AtomicU64,
}

type Shared = State<Arc<App>>;

enum ApiError {
    BadRequest(String),
    NotFound(u64),
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            Self::NotFound(id) => (StatusCode::NOT_FOUND, format!("no user {id}")),
            Self::Internal(message) => (StatusCode::INTERNAL_SERVER_ERROR, message),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// A user id from the path: 1 to `i64::MAX` (SQLite's rowid range).
fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .ok()
        .filter(|&id| id >= 1 && i64::try_from(id).is_ok())
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "user id must be an integer from 1 to {}, not {raw:?}",
                i64::MAX
            ))
        })
}

async fn get_user(State(app): Shared, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let (user, source) = app.users.get(id, &app.db, &app.loads).await?;
    Ok(([(X_CACHE, source.header())], Json(user)).into_response())
}

async fn put_user(
    State(app): Shared,
    Path(raw): Path<String>,
    body: Result<Json<UserBody>, JsonRejection>,
) -> Result<Json<User>, ApiError> {
    let id = parse_id(&raw)?;
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if body.name.trim().is_empty() || body.email.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "name and email must not be empty".to_owned(),
        ));
    }
    // The database first: a reader that misses meanwhile loads the new row.
    let user = app.db.upsert(id, body).await.map_err(ApiError::Internal)?;
    if let Err(e) = app.users.put(user.clone()).await {
        // The write is committed; other instances may serve the old row
        // until it expires (L1_TTL, L2_TTL).
        eprintln!("warning: user {id} was saved but the cache was not updated: {e}");
    }
    Ok(Json(user))
}

async fn delete_user(State(app): Shared, Path(raw): Path<String>) -> Result<StatusCode, ApiError> {
    let id = parse_id(&raw)?;
    let deleted = app.db.delete(id).await.map_err(ApiError::Internal)?;
    // Even when there was no row: a stale copy somewhere is then healed.
    if let Err(e) = app.users.remove(id).await {
        eprintln!("warning: user {id} was deleted but the cache was not updated: {e}");
    }
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(id))
    }
}

async fn stats(State(app): Shared) -> Json<serde_json::Value> {
    Json(app.users.stats(app.loads.load(Ordering::Relaxed)))
}

// -------------------------------------------------------------------- main

struct Args {
    db: PathBuf,
    /// Whether `db` is our own temp file, removed at exit.
    db_is_temp: bool,
    redis: Option<String>,
    listen: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        db: std::env::temp_dir().join(format!("strata-users-{}.sqlite3", std::process::id())),
        db_is_temp: true,
        redis: std::env::var("REDIS_URL")
            .ok()
            .filter(|url| !url.is_empty()),
        listen: "127.0.0.1:3000".to_owned(),
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let mut value = || iter.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--db" => {
                args.db = PathBuf::from(value()?);
                args.db_is_temp = false;
            }
            "--redis" => args.redis = Some(value()?),
            "--listen" => args.listen = value()?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn cache_l1() -> Result<Cache<u64, Serde<User>>, strata::ConfigError> {
    Cache::builder()
        .max_capacity(10_000)
        .time_to_live(L1_TTL)
        .build()
}

async fn users_cache(redis: Option<&str>) -> Result<Users, String> {
    let l1 = cache_l1().map_err(|e| format!("cannot build the cache: {e}"))?;
    let Some(url) = redis else {
        return Ok(Users::Local(l1));
    };
    let tier = RedisTier::builder(url)
        .namespace("users")
        .timeout(REDIS_TIMEOUT)
        .connect()
        .await
        .map_err(|e| format!("cannot use Redis at {url}: {e}"))?;
    TieredCache::builder(l1, tier)
        .l2_ttl(Some(L2_TTL))
        .build()
        .map(Users::Tiered)
        .map_err(|e| format!("cannot build the cache: {e}"))
}

async fn run(args: Args) -> Result<(), String> {
    let users = users_cache(args.redis.as_deref()).await?;
    let db_path = args.db.clone();
    let db = tokio::task::spawn_blocking(move || Db::open(&db_path))
        .await
        .map_err(|e| format!("opening the database failed: {e}"))?
        .map_err(|e| format!("cannot open the database {}: {e}", args.db.display()))?;
    let mode = match users {
        Users::Tiered(_) => "L1 + Redis",
        Users::Local(_) => "L1 only",
    };
    let app = Arc::new(App {
        db,
        users,
        loads: AtomicU64::new(0),
    });
    let router = Router::new()
        .route(
            "/users/{id}",
            get(get_user).put(put_user).delete(delete_user),
        )
        .route("/stats", get(stats))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    // The first line of stdout: tests (and people) read the port from it.
    println!("listening on http://{addr}");
    eprintln!("database {}, cache: {mode}", args.db.display());
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| format!("the server failed: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let temp_db = args.db_is_temp.then(|| args.db.clone());
    let result = run(args).await;
    if let Some(path) = temp_db {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
