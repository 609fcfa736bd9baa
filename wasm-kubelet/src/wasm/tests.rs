//! End-to-end runs of real wasm: core modules written in WAT, and the example components
//! (`examples/`) when they have been built for wasm32-wasip2.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::*;
use crate::logs;

/// A runtime with its epoch ticking for as long as the value lives.
struct Fixture {
    rt: Runtime,
    dir: tempfile::TempDir,
    shutdown: CancellationToken,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::new(RuntimeConfig {
            cache_dir: dir.path().join("wasmtime-cache"),
            max_instances: 16,
        })
        .unwrap();
        let shutdown = CancellationToken::new();
        let ticker = tokio::spawn({
            let rt = rt.clone();
            let shutdown = shutdown.clone();
            async move { rt.tick_epochs(shutdown).await }
        });
        Fixture {
            rt,
            dir,
            shutdown,
            ticker: Some(ticker),
        }
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.ticker.take() {
            t.await.unwrap();
        }
    }

    async fn load_wat(&self, name: &str, wat: &str) -> Workload {
        let path = self.dir.path().join(format!("{name}.wat"));
        std::fs::write(&path, wat).unwrap();
        self.rt
            .load(&format!("sha256:{name}"), &path)
            .await
            .unwrap()
    }

    fn log_path(&self) -> PathBuf {
        logs::path(self.dir.path(), "app", 0)
    }

    fn launch(&self) -> Launch {
        let log = LogWriter::create(&self.log_path()).unwrap();
        Launch {
            args: vec!["app".to_owned()],
            env: vec![],
            mounts: vec![],
            stdout: log.clone(),
            stderr: log,
            memory_limit: None,
            cpu_limit_millis: None,
            listen: None,
            outbound: false,
            services: None,
        }
    }

    fn log(&self) -> Vec<logs::Entry> {
        logs::read(&self.log_path()).unwrap()
    }
}

const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from wasm\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

const EXIT_3: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))"#;

const SPIN: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $l (br $l))))"#;

const MEMBOMB: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $l
      (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
      (br $l))))"#;

/// Opens `path` relative to the first preopen (fd 3) and exits with the errno (0: opened).
fn open_module(path: &str, create: bool) -> String {
    // O_CREAT with fd_read|fd_write rights, or just fd_read.
    let (oflags, rights) = if create { (1, 0x42) } else { (0, 0x2) };
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{path}")
  (func (export "_start")
    (call $exit (call $open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const {len})
      (i32.const {oflags}) (i64.const {rights}) (i64.const {rights}) (i32.const 0) (i32.const 0)))))"#,
        len = path.len()
    )
}

#[tokio::test]
async fn hello_completes_and_logs_its_line() {
    let f = Fixture::new();
    let w = f.load_wat("hello", HELLO).await;
    assert_eq!(w.kind(), WorkloadKind::Command);
    let exit = w.run(&f.rt, f.launch(), CancellationToken::new()).await;
    assert_eq!(exit.reason, ExitReason::Completed, "{exit:?}");
    assert_eq!(exit.code, 0);
    let log = f.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].stream, logs::Stream::Stdout);
    assert_eq!(log[0].content, "hello from wasm");
    f.stop().await;
}

#[tokio::test]
async fn exit_code_is_reported() {
    let f = Fixture::new();
    let w = f.load_wat("exit3", EXIT_3).await;
    let exit = w.run(&f.rt, f.launch(), CancellationToken::new()).await;
    assert_eq!((exit.reason, exit.code), (ExitReason::Error, 3), "{exit:?}");
    f.stop().await;
}

#[tokio::test]
async fn trap_is_an_error_with_its_message_in_the_log() {
    let f = Fixture::new();
    let w = f
        .load_wat("trap", r#"(module (func (export "_start") unreachable))"#)
        .await;
    let exit = w.run(&f.rt, f.launch(), CancellationToken::new()).await;
    assert_eq!(exit.reason, ExitReason::Error, "{exit:?}");
    assert_eq!(exit.code, TRAP_CODE);
    let message = exit.message.unwrap();
    assert!(message.contains("unreachable"), "{message}");
    assert!(
        f.log()
            .iter()
            .any(|e| e.stream == logs::Stream::Stderr && e.content.contains("unreachable"))
    );
    f.stop().await;
}

#[tokio::test]
async fn stop_kills_a_busy_loop_promptly() {
    let f = Fixture::new();
    let w = f.load_wat("spin", SPIN).await;
    let stop = CancellationToken::new();
    let run = w.run(&f.rt, f.launch(), stop.clone());
    let stopper = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.cancel();
        Instant::now()
    };
    let (exit, stopped_at) = tokio::join!(run, stopper);
    assert_eq!((exit.reason, exit.code), (ExitReason::Killed, KILLED_CODE));
    assert!(stopped_at.elapsed() < Duration::from_millis(500));
    f.stop().await;
}

/// On a single-threaded runtime, a busy guest must still let other tasks run: with a CPU
/// limit it sleeps most of the time; without one it yields every tick.
#[tokio::test(flavor = "current_thread")]
async fn busy_loop_does_not_starve_other_tasks() {
    let f = Fixture::new();
    let w = f.load_wat("spin", SPIN).await;
    for cpu in [Some(100), None] {
        let stop = CancellationToken::new();
        let mut launch = f.launch();
        launch.cpu_limit_millis = cpu;
        let run = w.run(&f.rt, launch, stop.clone());
        let counter = async {
            let started = Instant::now();
            let mut ticks = 0u32;
            while started.elapsed() < Duration::from_millis(500) {
                tokio::time::sleep(Duration::from_millis(1)).await;
                ticks += 1;
            }
            stop.cancel();
            ticks
        };
        let (exit, ticks) = tokio::join!(run, counter);
        assert_eq!(exit.reason, ExitReason::Killed);
        // Unthrottled, the loop still yields every 10 ms tick, so the counter gets about
        // one turn per tick (fewer on a loaded machine; a loop that never yielded would give
        // it none and hang this test); throttled to 100m it gets most of the time.
        let floor = if cpu.is_some() { 100 } else { 5 };
        assert!(ticks >= floor, "cpu {cpu:?}: only {ticks} ticks in 500 ms");
    }
    f.stop().await;
}

#[tokio::test]
async fn memory_bomb_is_oom_killed() {
    let f = Fixture::new();
    let w = f.load_wat("membomb", MEMBOMB).await;
    let mut launch = f.launch();
    launch.memory_limit = Some(1 << 20);
    let exit = w.run(&f.rt, launch, CancellationToken::new()).await;
    assert_eq!(
        (exit.reason, exit.code),
        (ExitReason::OOMKilled, KILLED_CODE),
        "{exit:?}"
    );
    f.stop().await;
}

#[tokio::test]
async fn guest_sees_only_its_preopens() {
    let f = Fixture::new();
    let data = f.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("inside.txt"), b"in").unwrap();
    std::fs::write(f.dir.path().join("secret.txt"), b"secret").unwrap();
    let run = |name: &'static str, path: &'static str, read_only: bool, create: bool| {
        let f = &f;
        let data = data.clone();
        async move {
            let w = f.load_wat(name, &open_module(path, create)).await;
            let mut launch = f.launch();
            launch.mounts = vec![Mount {
                host: data,
                guest: "/data".to_owned(),
                read_only,
            }];
            w.run(&f.rt, launch, CancellationToken::new()).await.code
        }
    };
    assert_eq!(run("inside", "inside.txt", true, false).await, 0);
    assert_ne!(run("outside", "../secret.txt", true, false).await, 0);
    assert_ne!(run("absolute", "/etc/passwd", true, false).await, 0);
    // Read-only mounts refuse new files; writable ones take them.
    assert_ne!(run("create-ro", "new.txt", true, true).await, 0);
    assert_eq!(run("create-rw", "new.txt", false, true).await, 0);
    assert!(data.join("new.txt").exists());
    f.stop().await;
}

#[tokio::test]
async fn missing_volume_directory_cannot_run() {
    let f = Fixture::new();
    let w = f.load_wat("hello", HELLO).await;
    let mut launch = f.launch();
    launch.mounts = vec![Mount {
        host: f.dir.path().join("absent"),
        guest: "/data".to_owned(),
        read_only: false,
    }];
    let exit = w.run(&f.rt, launch, CancellationToken::new()).await;
    assert_eq!(
        (exit.reason, exit.code),
        (ExitReason::Error, CANNOT_RUN_CODE)
    );
    assert!(exit.message.unwrap().contains("volume"));
    assert!(
        f.log()
            .iter()
            .any(|e| e.content.contains("cannot open the volume directory"))
    );
    f.stop().await;
}

#[tokio::test]
async fn modules_without_an_entry_point_are_refused() {
    let f = Fixture::new();
    let path = f.dir.path().join("lib.wat");
    std::fs::write(&path, r#"(module (func (export "add")))"#).unwrap();
    let err = f.rt.load("sha256:lib", &path).await.err().unwrap();
    assert!(matches!(err, Error::NoEntryPoint), "{err}");
    std::fs::write(&path, "not wasm").unwrap();
    let err = f.rt.load("sha256:junk", &path).await.err().unwrap();
    assert!(matches!(err, Error::Compile { .. }), "{err}");
    f.stop().await;
}

#[tokio::test]
async fn loads_are_memoised_by_digest() {
    let f = Fixture::new();
    let a = f.load_wat("hello", HELLO).await;
    // Same digest, file gone: served from memory without reading or compiling.
    std::fs::remove_file(f.dir.path().join("hello.wat")).unwrap();
    let b =
        f.rt.load("sha256:hello", &f.dir.path().join("hello.wat"))
            .await
            .unwrap();
    assert!(Arc::ptr_eq(&a.inner, &b.inner));
    // And compiled code went to the on-disk cache, for the next agent start.
    let cache = f.dir.path().join("wasmtime-cache");
    assert!(
        count_files(&cache) > 0,
        "nothing cached in {}",
        cache.display()
    );
    f.stop().await;
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => count_files(&e.path()),
                Ok(_) => 1,
                Err(_) => 0,
            })
            .sum()
    })
}

/// The pool reserves address space (not memory) for every slot up front: a node sized for a
/// thousand concurrent guests must still start.
#[test]
fn a_large_pool_can_be_reserved() {
    let dir = tempfile::tempdir().unwrap();
    Runtime::new(RuntimeConfig {
        cache_dir: dir.path().to_owned(),
        max_instances: 1000,
    })
    .unwrap();
}

/// Where `cargo build --target wasm32-wasip2 -p NAME` puts the example components.
fn example(file: &str) -> Option<PathBuf> {
    let mut dirs = vec![];
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        dirs.push(PathBuf::from(t));
    }
    if let Ok(home) = std::env::var("HOME") {
        dirs.push(Path::new(&home).join(".cache/sextant/target"));
    }
    let found = dirs
        .into_iter()
        .map(|d| d.join("wasm32-wasip2/debug").join(file))
        .find(|p| p.exists());
    if found.is_none() {
        eprintln!("skipped: {file} is not built (cargo build --target wasm32-wasip2)");
    }
    found
}

#[tokio::test]
async fn component_command_runs_with_its_env() {
    let Some(path) = example("hello.wasm") else {
        return;
    };
    let f = Fixture::new();
    let w = f.rt.load("sha256:hello-component", &path).await.unwrap();
    assert_eq!(w.kind(), WorkloadKind::Command);
    let mut launch = f.launch();
    launch.env = vec![("NAME".to_owned(), "sextant".to_owned())];
    let exit = w.run(&f.rt, launch, CancellationToken::new()).await;
    assert_eq!(exit.reason, ExitReason::Completed, "{exit:?}");
    assert!(
        f.log().iter().any(|e| e.content == "hello, sextant!"),
        "{:?}",
        f.log()
    );
    f.stop().await;
}

#[tokio::test]
async fn component_memory_bomb_is_oom_killed() {
    let Some(path) = example("membomb.wasm") else {
        return;
    };
    let f = Fixture::new();
    let w = f.rt.load("sha256:membomb-component", &path).await.unwrap();
    let mut launch = f.launch();
    launch.memory_limit = Some(32 << 20);
    let exit = w.run(&f.rt, launch, CancellationToken::new()).await;
    assert_eq!(exit.reason, ExitReason::OOMKilled, "{exit:?}");
    f.stop().await;
}

#[tokio::test]
async fn component_cannot_escape_its_preopens() {
    let Some(path) = example("escape.wasm") else {
        return;
    };
    let f = Fixture::new();
    let w = f.rt.load("sha256:escape", &path).await.unwrap();
    let data = f.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut launch = f.launch();
    launch.mounts = vec![Mount {
        host: data,
        guest: "/data".to_owned(),
        read_only: false,
    }];
    let exit = w.run(&f.rt, launch, CancellationToken::new()).await;
    assert_eq!(exit.reason, ExitReason::Completed, "{exit:?} {:?}", f.log());
    f.stop().await;
}

/// A raw HTTP/1.1 GET (no client library needed): the status code and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn http_component_serves_until_stopped() {
    let Some(path) = example("http_echo.wasm") else {
        return;
    };
    let f = Fixture::new();
    let w = f.rt.load("sha256:http-echo", &path).await.unwrap();
    assert_eq!(w.kind(), WorkloadKind::HttpService);
    let addr = free_addr();
    let mut launch = f.launch();
    launch.listen = Some(addr);
    launch.env = vec![("GREETING".to_owned(), "hi".to_owned())];
    let stop = CancellationToken::new();
    let serve = w.run(&f.rt, launch, stop.clone());
    let client = async {
        // The listener comes up as soon as the run starts.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let healthz = get(addr, "/healthz").await;
        let env = get(addr, "/env/GREETING").await;
        // Each request is a fresh instance: concurrent requests all succeed.
        let many = futures::future::join_all((0..8).map(|_| get(addr, "/healthz"))).await;
        stop.cancel();
        (healthz, env, many)
    };
    let (exit, (healthz, env, many)) = tokio::join!(serve, client);
    assert_eq!(healthz, (200, "ok".to_owned()));
    assert_eq!(env, (200, "hi".to_owned()));
    assert!(many.iter().all(|r| r.0 == 200), "{many:?}");
    assert_eq!(exit.reason, ExitReason::Killed);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    f.stop().await;
}

#[tokio::test]
async fn http_component_reports_a_taken_port() {
    let Some(path) = example("http_echo.wasm") else {
        return;
    };
    let f = Fixture::new();
    let w = f.rt.load("sha256:http-echo", &path).await.unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut launch = f.launch();
    launch.listen = Some(addr);
    let exit = w.run(&f.rt, launch, CancellationToken::new()).await;
    assert_eq!(exit.reason, ExitReason::Error);
    assert!(
        exit.message
            .unwrap()
            .starts_with(&format!("cannot listen on {addr}")),
    );
    f.stop().await;
}
