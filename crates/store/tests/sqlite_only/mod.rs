//! SQLite-specific behaviour: crash durability, refusing foreign files,
//! reopening, automatic compaction, bounded files, slow watchers.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use store::sqlite::{SqliteOptions, SqliteStore};
use store::{Store, StoreError, WatchItem};
use tokio::time::Instant;

use crate::common::{WAIT, b, next_event, next_item, sqlite_options};

const CRASH_CHILD_ENV: &str = "FLOTILLA_STORE_CRASH_DB";

fn open(path: &Path, opts: SqliteOptions) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(path, opts).expect("open sqlite store"))
}

/// The writer half of `crash_durability`: does nothing unless started by it.
/// Writes from several tasks and prints every acknowledged write until it is
/// killed.
#[test]
fn crash_writer_child() {
    let Some(path) = std::env::var_os(CRASH_CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    rt.expect("runtime").block_on(async move {
        let store = open(Path::new(&path), SqliteOptions::default());
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let s = Arc::clone(&store);
                tokio::spawn(async move {
                    let counter = format!("/crash/{t}/counter");
                    let mut c = s.create(&counter, b("0")).await.expect("create counter");
                    for i in 0u64.. {
                        let key = format!("/crash/{t}/{i}");
                        let kv = s
                            .create(&key, b(&format!("value-{t}-{i}")))
                            .await
                            .expect("create");
                        c = s
                            .update(&counter, b(&i.to_string()), c.mod_revision)
                            .await
                            .expect("update");
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {key} {} {}", kv.mod_revision, c.mod_revision).unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_durability() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let stderr = std::fs::File::create(dir.path().join("child.log")).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sqlite_only::crash_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_ENV, &path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // (key, revision of the create, revision of the counter update)
    let mut acks: Vec<(String, i64, i64)> = Vec::new();
    let parse = |line: &str| -> Option<(String, i64, i64)> {
        let mut f = line.strip_prefix("ACK ")?.split(' ');
        Some((
            f.next()?.to_string(),
            f.next()?.parse().ok()?,
            f.next()?.parse().ok()?,
        ))
    };
    while acks.len() < 600 {
        let line = tokio::time::timeout(WAIT, rx.recv()).await;
        let Ok(Some(line)) = line else {
            let log = std::fs::read_to_string(dir.path().join("child.log")).unwrap_or_default();
            panic!("the writer child stopped acknowledging writes:\n{log}");
        };
        acks.extend(parse(&line));
    }
    // SIGKILL mid-stream, then collect what it acknowledged before dying.
    child.kill().unwrap();
    child.wait().unwrap();
    while let Some(line) = rx.recv().await {
        acks.extend(parse(&line));
    }
    reader.join().unwrap();

    let store = open(&path, sqlite_options());
    let mut counters = std::collections::HashMap::new();
    for (key, rev, counter_rev) in &acks {
        let kv = store.get(key, None).await.unwrap();
        let kv = kv.unwrap_or_else(|| panic!("acknowledged write {key}@{rev} lost"));
        assert_eq!(kv.mod_revision, *rev);
        let task = key.split('/').nth(2).unwrap().to_string();
        let e = counters.entry(task).or_insert(0);
        *e = (*e).max(*counter_rev);
    }
    for (task, rev) in counters {
        let kv = store
            .get(&format!("/crash/{task}/counter"), None)
            .await
            .unwrap()
            .unwrap();
        assert!(
            kv.mod_revision >= rev,
            "acknowledged counter update {rev} lost"
        );
    }
    let max = acks.iter().map(|a| a.1.max(a.2)).max().unwrap();
    assert!(store.current_revision().await.unwrap() >= max);
    // The store keeps working after recovery.
    let now = store.current_revision().await.unwrap();
    assert_eq!(
        store
            .create("/after/crash", b("ok"))
            .await
            .unwrap()
            .mod_revision,
        now + 1
    );
}

fn sidecars(path: &Path) -> Vec<PathBuf> {
    ["-wal", "-shm", "-journal"]
        .iter()
        .map(|s| PathBuf::from(format!("{}{s}", path.display())))
        .filter(|p| p.exists())
        .collect()
}

fn assert_refused(path: &Path) {
    let before = std::fs::read(path).unwrap();
    match SqliteStore::open(path, sqlite_options()) {
        Err(StoreError::Corrupt(msg)) => {
            assert!(
                msg.contains(&path.display().to_string()),
                "message names the file: {msg}"
            );
        }
        other => panic!("expected Corrupt for {}, got {other:?}", path.display()),
    }
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "{} was modified",
        path.display()
    );
    assert_eq!(
        sidecars(path),
        Vec::<PathBuf>::new(),
        "files created next to {}",
        path.display()
    );
}

#[test]
fn foreign_and_corrupt_files_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text.db");
    std::fs::write(&text, "this is not a database\n".repeat(200)).unwrap();
    assert_refused(&text);

    let tiny = dir.path().join("tiny.db");
    std::fs::write(&tiny, "SQLite").unwrap();
    assert_refused(&tiny);

    let garbage = dir.path().join("garbage.db");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend(std::iter::repeat_n(0xab, 4080));
    std::fs::write(&garbage, bytes).unwrap();
    assert_refused(&garbage);

    // Another program's database, without and with an application id.
    let other = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&other).unwrap();
    conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(conn);
    assert_refused(&other);

    let other_wal = dir.path().join("other-wal.db");
    let conn = rusqlite::Connection::open(&other_wal).unwrap();
    conn.execute_batch(
        "PRAGMA application_id = 1234; PRAGMA journal_mode = WAL; CREATE TABLE t (x);
         INSERT INTO t VALUES (1);",
    )
    .unwrap();
    drop(conn);
    assert_refused(&other_wal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_state_and_excludes_a_second_opener() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/state.db");
    let store = open(&path, sqlite_options());
    let a = store.create("/a", b("1")).await.unwrap();
    let a = store.update("/a", b("2"), a.mod_revision).await.unwrap();
    store.create("/b", b("b")).await.unwrap();
    let (_, last) = store.delete("/b", None).await.unwrap();
    // The newest revision is a delete, then everything is compacted: the
    // revision must survive although that row may be gone.
    store.compact(last).await.unwrap();
    match SqliteStore::open(&path, sqlite_options()) {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("in use"), "{msg}"),
        other => panic!("a second open must fail, got {other:?}"),
    }
    drop(store);

    let store = open(&path, sqlite_options());
    assert_eq!(store.current_revision().await.unwrap(), last);
    assert_eq!(store.get("/a", None).await.unwrap(), Some(a.clone()));
    assert_eq!(store.get("/b", None).await.unwrap(), None);
    assert!(matches!(
        store.get("/a", Some(last - 1)).await,
        Err(StoreError::Compacted { compacted, .. }) if compacted == last
    ));
    let c = store.create("/c", b("c")).await.unwrap();
    assert_eq!(c.mod_revision, last + 1);
    drop(store);
    let store = store::open(None, &dir.path().join("data")).await.unwrap();
    store.create("/x", b("x")).await.unwrap();
    assert!(dir.path().join("data/db/state.db").exists());
}

fn fast_maintenance(history_revisions: i64, history_age: Duration) -> SqliteOptions {
    SqliteOptions {
        history_revisions,
        history_age,
        maintenance_interval: Duration::from_millis(50),
        compaction_step: 100,
        ..sqlite_options()
    }
}

/// Polls `f` until it holds: compaction runs on its own schedule and there is
/// no event to wait for.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_compaction_keeps_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        &dir.path().join("state.db"),
        fast_maintenance(50, Duration::ZERO),
    );
    let mut kv = store.create("/k", b("0")).await.unwrap();
    let first = kv.mod_revision;
    for i in 1..300 {
        kv = store
            .update("/k", b(&i.to_string()), kv.mod_revision)
            .await
            .unwrap();
    }
    let now = kv.mod_revision;
    let s = Arc::clone(&store);
    eventually("compaction to the revision window", || {
        let s = Arc::clone(&s);
        async move {
            matches!(s.get("/k", Some(now - 51)).await,
                Err(StoreError::Compacted { compacted, .. }) if compacted == now - 50)
        }
    })
    .await;
    assert!(matches!(
        store.get("/k", Some(first)).await,
        Err(StoreError::Compacted { .. })
    ));
    assert_eq!(
        store
            .get("/k", Some(now - 50))
            .await
            .unwrap()
            .unwrap()
            .value,
        b(&(249).to_string())
    );
    assert_eq!(store.get("/k", None).await.unwrap(), Some(kv));
    drop(store);

    // A long age window keeps everything, whatever the revision count.
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        &dir.path().join("state.db"),
        fast_maintenance(10, Duration::from_secs(3600)),
    );
    let mut kv = store.create("/k", b("0")).await.unwrap();
    let first = kv.mod_revision;
    for i in 1..100 {
        kv = store
            .update("/k", b(&i.to_string()), kv.mod_revision)
            .await
            .unwrap();
    }
    // Let several maintenance ticks pass: this checks that nothing happens.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.get("/k", Some(first)).await.unwrap().unwrap().value,
        b("0")
    );
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_does_not_grow_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    let store = open(&path, fast_maintenance(200, Duration::ZERO));
    const KEYS: usize = 32;
    const ROUNDS: usize = 30;
    let value = Bytes::from(vec![b'v'; 4096]);
    let mut sizes = Vec::new();
    for round in 0..ROUNDS {
        let tasks: Vec<_> = (0..KEYS)
            .map(|k| {
                let (s, value) = (Arc::clone(&store), value.clone());
                tokio::spawn(async move {
                    let key = format!("/churn/{k}");
                    let mut rev = match s.get(&key, None).await.unwrap() {
                        Some(kv) => kv.mod_revision,
                        None => s.create(&key, value.clone()).await.unwrap().mod_revision,
                    };
                    for _ in 0..10 {
                        rev = s
                            .update(&key, value.clone(), rev)
                            .await
                            .unwrap()
                            .mod_revision;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let now = store.current_revision().await.unwrap();
        let s = Arc::clone(&store);
        eventually("compaction catching up", || {
            let s = Arc::clone(&s);
            async move { s.get("/churn/0", Some(now - 201)).await.is_err() }
        })
        .await;
        sizes.push((round, file_len(&path), file_len(&wal)));
    }
    // ~4 MiB were written per round; the live data is 32 keys plus a window of
    // 200 revisions (~1 MiB). The database stops growing early.
    let written = ROUNDS * KEYS * 10 * 4096;
    let (_, db_early, _) = sizes[5];
    let (_, db_last, _) = sizes[ROUNDS - 1];
    let wal_max = sizes.iter().map(|s| s.2).max().unwrap();
    assert!(
        db_last <= db_early * 2 && db_last < 8 << 20,
        "db grew: {sizes:?}"
    );
    assert!(wal_max < 16 << 20, "wal grew: {sizes:?}");
    assert!((db_last as usize) < written / 10, "{sizes:?}");
    // Once idle, the WAL is checkpointed and truncated.
    eventually("WAL truncation", || {
        let wal = wal.clone();
        async move { file_len(&wal) == 0 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_catches_up_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        watch_buffer: 16,
        ..sqlite_options()
    };
    let store = open(&dir.path().join("state.db"), opts);
    let start = store.current_revision().await.unwrap();
    let mut w = store.watch("/s/", start).await.unwrap();
    write_many(&store, "/s/", 2000).await;
    // Nothing was read while the writes went through: the watcher fell far
    // behind the feed and must re-read the log without losing anything.
    let mut expect = start + 1;
    while expect <= start + 2000 {
        let ev = next_event(&mut w).await;
        assert_eq!(ev.revision(), expect);
        expect += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_overtaken_by_compaction_fails_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        watch_buffer: 16,
        ..sqlite_options()
    };
    let store = open(&dir.path().join("state.db"), opts);
    let start = store.current_revision().await.unwrap();
    let mut w = store.watch("/s/", start).await.unwrap();
    write_many(&store, "/s/", 2000).await;
    store
        .compact(store.current_revision().await.unwrap())
        .await
        .unwrap();
    let mut expect = start + 1;
    loop {
        match next_item(&mut w).await {
            Ok(WatchItem::Event(ev)) => {
                assert_eq!(ev.revision(), expect, "no gap before the error");
                expect += 1;
            }
            Ok(WatchItem::Progress(_)) => {}
            Err(StoreError::Compacted { .. }) => break,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(
        expect <= start + 2000,
        "the watch could not have delivered everything"
    );
    assert!(w.next().await.is_none(), "the watch ends after the error");
}

async fn write_many(store: &Arc<dyn Store>, prefix: &str, n: usize) {
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (s, prefix) = (Arc::clone(store), prefix.to_string());
            tokio::spawn(async move {
                for i in (t..n).step_by(8) {
                    s.create(&format!("{prefix}{i:05}"), b("x")).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn endpoint_lists_parse() {
    let p = |s| store::parse_endpoints(s).unwrap();
    let two = vec!["http://h1:1".to_string(), "http://h2:2".to_string()];
    assert_eq!(p("etcd://h1:1,h2:2"), two);
    assert_eq!(p("http://h1:1,http://h2:2"), two);
    assert_eq!(p("http://h1:1,h2:2"), two);
    assert_eq!(p("h1:1, h2:2/"), two);
    assert_eq!(p("etcd://h1:1"), vec!["http://h1:1".to_string()]);
    assert!(store::parse_endpoints("").is_err());
    assert!(store::parse_endpoints("https://h1:1").is_err());
    assert!(store::parse_endpoints("ftp://h1:1").is_err());
}
