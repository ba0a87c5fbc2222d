//! The embedded SQLite store: round trips, status changes, reopening,
//! concurrency, bad files, shutdown, and (ignored) group-commit throughput.
#![cfg(feature = "sqlite")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sagaflow::SagaId;
use sagaflow::durable::{
    Durability, Entry, NewSaga, SagaRecord, SagaStatus, SqliteStore, Store, StoreError,
};

fn new_saga(id: u128) -> NewSaga {
    NewSaga {
        id: SagaId::from_u128(id),
        saga_type: "travel".into(),
        fingerprint: "fp-1".into(),
        input: vec![0, 1, 2, 255, id as u8],
    }
}

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sagas.db");
    (dir, path)
}

fn all_entries() -> Vec<Entry> {
    vec![
        Entry::StepStarted {
            index: 0,
            attempt: 1,
        },
        Entry::StepSucceeded {
            index: 0,
            output: vec![0, 159, 146, 150, 0, 255],
        },
        Entry::StepStarted {
            index: 1,
            attempt: u32::MAX,
        },
        Entry::StepSucceeded {
            index: 1,
            output: Vec::new(),
        },
        Entry::StepFailed {
            index: 2,
            error: "hotel full: ünïcödé\nsecond line".into(),
        },
        Entry::CompensationStarted {
            index: 1,
            attempt: 1,
        },
        Entry::CompensationSucceeded { index: 1 },
        Entry::CompensationStarted {
            index: 0,
            attempt: 3,
        },
        Entry::CompensationFailed {
            index: 0,
            error: String::new(),
        },
        Entry::Finished {
            status: SagaStatus::Parked,
            output: None,
        },
        Entry::Intervention {
            retry: true,
            note: "ops: refund service is back".into(),
        },
        Entry::Finished {
            status: SagaStatus::Parked,
            output: Some(Vec::new()),
        },
        Entry::Intervention {
            retry: false,
            note: "ops: refunded by hand".into(),
        },
        Entry::Finished {
            status: SagaStatus::Committed,
            output: Some(b"{\"ok\":true}".to_vec()),
        },
    ]
}

async fn status_of(store: &SqliteStore, id: u128) -> SagaStatus {
    store
        .get(SagaId::from_u128(id))
        .await
        .expect("get")
        .expect("saga exists")
        .status
}

fn assert_names(error: &StoreError, path: &Path, what: &str) {
    let message = error.message();
    assert!(
        message.contains(&path.display().to_string()),
        "{what}: error does not name {}: {message}",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_append_and_read_back_every_entry_kind() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path, Durability::Full).expect("open");
    store.create(new_saga(1)).await.expect("create");

    let record = store.get(SagaId::from_u128(1)).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Running);
    assert!(record.journal.is_empty());
    assert_eq!(record.input, vec![0, 1, 2, 255, 1]);
    assert_eq!(record.saga_type, "travel");
    assert_eq!(record.fingerprint, "fp-1");

    for entry in all_entries() {
        store
            .append(SagaId::from_u128(1), entry)
            .await
            .expect("append");
    }
    let record = store.get(SagaId::from_u128(1)).await.unwrap().unwrap();
    assert_eq!(record.journal, all_entries());
    assert_eq!(record.status, SagaStatus::Committed);

    assert_eq!(store.get(SagaId::from_u128(2)).await.unwrap(), None);
    assert_eq!(store.path(), path.as_path());
    assert_eq!(store.durability(), Durability::Full);
    let shown = format!("{store:?}");
    assert!(
        shown.contains("SqliteStore") && shown.contains("sagas.db"),
        "{shown}"
    );
    store.verify().await.expect("a fresh store verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_follows_finished_and_intervention() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path, Durability::Normal).expect("open");
    let id = SagaId::from_u128(7);
    store.create(new_saga(7)).await.unwrap();
    assert_eq!(status_of(&store, 7).await, SagaStatus::Running);

    store
        .append(
            id,
            Entry::Finished {
                status: SagaStatus::Parked,
                output: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(status_of(&store, 7).await, SagaStatus::Parked);

    store
        .append(
            id,
            Entry::Intervention {
                retry: true,
                note: "try again".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(status_of(&store, 7).await, SagaStatus::Running);

    store
        .append(
            id,
            Entry::Finished {
                status: SagaStatus::Parked,
                output: None,
            },
        )
        .await
        .unwrap();
    store
        .append(
            id,
            Entry::Intervention {
                retry: false,
                note: "done by hand".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(status_of(&store, 7).await, SagaStatus::Resolved);

    // Entries that are not transitions of the status leave it alone.
    store.create(new_saga(8)).await.unwrap();
    store
        .append(
            SagaId::from_u128(8),
            Entry::StepFailed {
                index: 0,
                error: "boom".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(status_of(&store, 8).await, SagaStatus::Running);
    store
        .append(
            SagaId::from_u128(8),
            Entry::Finished {
                status: SagaStatus::Compensated,
                output: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(status_of(&store, 8).await, SagaStatus::Compensated);

    let resolved = store.with_status(SagaStatus::Resolved).await.unwrap();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].journal.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claim_unfinished_returns_only_running_sagas_oldest_first() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path, Durability::Full).expect("open");
    // Ids out of numeric order, to see that the order is that of creation.
    let ids = [50u128, 3, 40, 2, 10];
    for id in ids {
        store.create(new_saga(id)).await.unwrap();
        store
            .append(
                SagaId::from_u128(id),
                Entry::StepStarted {
                    index: 0,
                    attempt: 1,
                },
            )
            .await
            .unwrap();
    }
    let finish = |status| Entry::Finished {
        status,
        output: None,
    };
    store
        .append(SagaId::from_u128(3), finish(SagaStatus::Committed))
        .await
        .unwrap();
    store
        .append(SagaId::from_u128(2), finish(SagaStatus::Parked))
        .await
        .unwrap();

    let claimed = store.claim_unfinished().await.unwrap();
    let claimed_ids: Vec<u128> = claimed.iter().map(|r| r.id.as_u128()).collect();
    assert_eq!(claimed_ids, [50, 40, 10]);
    assert!(claimed.iter().all(|r| r.status == SagaStatus::Running));
    assert!(claimed.iter().all(|r| r.journal.len() == 1));

    let parked = store.with_status(SagaStatus::Parked).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].id, SagaId::from_u128(2));
    assert_eq!(
        store.with_status(SagaStatus::Compensated).await.unwrap(),
        Vec::<SagaRecord>::new()
    );

    // Twice, and concurrently with new sagas: each call sees a consistent
    // snapshot, and no call disturbs another.
    let mut tasks = Vec::new();
    for i in 0..8u128 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.create(new_saga(1000 + i)).await.unwrap();
            store.claim_unfinished().await.unwrap()
        }));
    }
    for task in tasks {
        let seen = task.await.unwrap();
        assert!(seen.len() >= 4 && seen.len() <= 11, "{}", seen.len());
    }
    assert_eq!(store.claim_unfinished().await.unwrap().len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reopening_the_file_shows_the_same_data() {
    let (_dir, path) = temp();
    let expected = {
        let store = SqliteStore::open(&path, Durability::Full).expect("open");
        for id in 1..=3 {
            store.create(new_saga(id)).await.unwrap();
            for entry in all_entries().into_iter().take(id as usize * 3) {
                store.append(SagaId::from_u128(id), entry).await.unwrap();
            }
        }
        let mut all = store.with_status(SagaStatus::Running).await.unwrap();
        all.extend(store.with_status(SagaStatus::Parked).await.unwrap());
        all
    };
    assert_eq!(expected.len(), 3);

    let store = SqliteStore::open_existing(&path, Durability::Normal).expect("reopen");
    let mut again = store.with_status(SagaStatus::Running).await.unwrap();
    again.extend(store.with_status(SagaStatus::Parked).await.unwrap());
    assert_eq!(again, expected);

    // Sequence numbers go on where they stopped: appends after reopening land
    // after the old entries.
    let extra = Entry::CompensationSucceeded { index: 9 };
    store
        .append(SagaId::from_u128(1), extra.clone())
        .await
        .unwrap();
    let one = store.get(SagaId::from_u128(1)).await.unwrap().unwrap();
    assert_eq!(one.journal.len(), 4);
    assert_eq!(one.journal[3], extra);
    drop(store);

    // And once more with `open`, which must not recreate anything.
    let store = SqliteStore::open(&path, Durability::Full).expect("reopen");
    let one = store.get(SagaId::from_u128(1)).await.unwrap().unwrap();
    assert_eq!(one.journal.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_appends_from_256_tasks_land_in_order() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path, Durability::Full).expect("open");
    const TASKS: u128 = 256;
    const PER_TASK: u32 = 20;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let id = SagaId::from_u128(t);
            store.create(new_saga(t)).await?;
            for i in 0..PER_TASK {
                store
                    .append(
                        id,
                        Entry::StepStarted {
                            index: i,
                            attempt: 1,
                        },
                    )
                    .await?;
                store
                    .append(
                        id,
                        Entry::StepSucceeded {
                            index: i,
                            output: format!("{t}:{i}").into_bytes(),
                        },
                    )
                    .await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for handle in handles {
        handle.await.unwrap().expect("task");
    }
    let running = store.claim_unfinished().await.unwrap();
    assert_eq!(running.len(), TASKS as usize);
    for record in running {
        let t = record.id.as_u128();
        assert_eq!(record.journal.len(), 2 * PER_TASK as usize);
        for (i, pair) in record.journal.chunks(2).enumerate() {
            let i = i as u32;
            assert_eq!(
                pair[0],
                Entry::StepStarted {
                    index: i,
                    attempt: 1
                }
            );
            assert_eq!(
                pair[1],
                Entry::StepSucceeded {
                    index: i,
                    output: format!("{t}:{i}").into_bytes()
                }
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_writes_name_the_saga_and_spare_the_rest_of_the_batch() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path, Durability::Full).expect("open");
    let ghost = SagaId::from_u128(0xdead);
    let err = store
        .append(ghost, Entry::CompensationSucceeded { index: 0 })
        .await
        .unwrap_err();
    assert!(err.message().contains(&ghost.to_string()), "{err}");
    assert_names(&err, &path, "unknown saga");

    store.create(new_saga(1)).await.unwrap();
    let err = store.create(new_saga(1)).await.unwrap_err();
    assert!(err.message().contains("already exists"), "{err}");

    // Many writes at once, some refused: the others are committed.
    let mut handles = Vec::new();
    for i in 0..64u128 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            // Every even task creates a duplicate of saga 1.
            let id = if i % 2 == 0 { 1 } else { 100 + i };
            store.create(new_saga(id)).await
        }));
    }
    let mut refused = 0;
    for handle in handles {
        if handle.await.unwrap().is_err() {
            refused += 1;
        }
    }
    assert_eq!(refused, 32);
    assert_eq!(store.claim_unfinished().await.unwrap().len(), 33);
}

fn open_error(path: &Path, existing: bool) -> StoreError {
    let result = if existing {
        SqliteStore::open_existing(path, Durability::Full)
    } else {
        SqliteStore::open(path, Durability::Full)
    };
    match result {
        Ok(store) => panic!("{} opened: {store:?}", path.display()),
        Err(error) => error,
    }
}

#[test]
fn garbage_file_is_not_a_database() {
    let (_dir, path) = temp();
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 13) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    for existing in [false, true] {
        let err = open_error(&path, existing);
        assert_names(&err, &path, "garbage");
        assert!(err.message().contains("not a database"), "{err}");
    }
    // Left as it was.
    assert_eq!(std::fs::read(&path).unwrap(), garbage);

    // A short text file too.
    std::fs::write(&path, "hello, world\n").unwrap();
    let err = open_error(&path, false);
    assert_names(&err, &path, "short text");
    assert!(err.message().contains("not a database"), "{err}");
}

#[test]
fn foreign_sqlite_database_is_refused_untouched() {
    let (_dir, path) = temp();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO customers (name) VALUES ('ada');",
        )
        .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = open_error(&path, false);
    assert_names(&err, &path, "foreign");
    assert!(err.message().contains("not a sagaflow store"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the foreign file was modified"
    );

    // Another application's id.
    let (_dir2, other) = temp();
    {
        let conn = rusqlite::Connection::open(&other).unwrap();
        conn.execute_batch("PRAGMA application_id = 1234; CREATE TABLE t (x);")
            .unwrap();
    }
    let err = open_error(&other, true);
    assert_names(&err, &other, "foreign application id");
    assert!(err.message().contains("not a sagaflow store"), "{err}");
}

#[test]
fn newer_schema_version_is_refused() {
    for how in [
        "PRAGMA user_version = 99;",
        "UPDATE sagaflow_meta SET value = '99' WHERE key = 'schema_version';",
    ] {
        let (_dir, path) = temp();
        drop(SqliteStore::open(&path, Durability::Full).expect("create"));
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(how).unwrap();
        }
        let err = open_error(&path, true);
        assert_names(&err, &path, how);
        assert!(err.message().contains("99"), "{err}");
        assert!(err.message().contains("newer"), "{err}");
        // Still refused the second time: nothing was changed.
        let err = open_error(&path, false);
        assert!(err.message().contains("newer"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn truncated_file_errors_name_the_file() {
    let (_dir, path) = temp();
    {
        let store = SqliteStore::open(&path, Durability::Full).expect("open");
        for id in 0..300u128 {
            store.create(new_saga(id)).await.unwrap();
            store
                .append(
                    SagaId::from_u128(id),
                    Entry::StepSucceeded {
                        index: 0,
                        output: vec![id as u8; 700],
                    },
                )
                .await
                .unwrap();
        }
    }
    // Closing the store checkpointed the WAL into the file.
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 64 * 1024, "store file is only {len} bytes");
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);

    let mut errors = Vec::new();
    match SqliteStore::open_existing(&path, Durability::Full) {
        Err(err) => errors.push(err),
        Ok(store) => {
            for status in [SagaStatus::Running, SagaStatus::Committed] {
                if let Err(err) = store.with_status(status).await {
                    errors.push(err);
                }
            }
            if let Err(err) = store.verify().await {
                errors.push(err);
            }
        }
    }
    assert!(!errors.is_empty(), "a truncated store read without error");
    for err in &errors {
        println!("truncated: {err}");
        assert_names(err, &path, "truncated");
    }
}

#[test]
fn missing_file_and_missing_directory() {
    let (dir, path) = temp();
    let err = open_error(&path, true);
    assert_names(&err, &path, "missing file");
    assert!(err.message().contains("does not exist"), "{err}");
    assert!(!path.exists(), "open_existing created the file");

    let nested = dir
        .path()
        .join("no")
        .join("such")
        .join("dir")
        .join("sagas.db");
    let err = open_error(&nested, false);
    assert_names(&err, &nested, "missing directory");
    assert!(
        err.message()
            .contains(&nested.parent().unwrap().display().to_string()),
        "{err}"
    );

    let err = open_error(dir.path(), false);
    assert!(err.message().contains("directory"), "{err}");
}

#[test]
fn drop_with_writes_in_flight_neither_hangs_nor_panics() {
    let (_dir, path) = temp();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    runtime.block_on(async {
        let store = SqliteStore::open(&path, Durability::Full).expect("open");
        for t in 0..64u128 {
            let store = store.clone();
            let done = done.clone();
            tokio::spawn(async move {
                if store.create(new_saga(t)).await.is_err() {
                    return;
                }
                for i in 0..1000 {
                    let entry = Entry::StepStarted {
                        index: i,
                        attempt: 1,
                    };
                    if store.append(SagaId::from_u128(t), entry).await.is_err() {
                        return;
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(store);
    });
    // Shutting the runtime down drops the tasks mid-write and with them the
    // last clones of the store: that must join the threads without hanging.
    let started = Instant::now();
    runtime.shutdown_timeout(Duration::from_secs(10));
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown hung");

    // Whatever was acknowledged is there, in order, with no gaps.
    let store = SqliteStore::open_existing(&path, Durability::Full).expect("reopen");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let records = runtime
        .block_on(store.with_status(SagaStatus::Running))
        .unwrap();
    let stored: usize = records.iter().map(|r| r.journal.len()).sum();
    assert!(stored >= done.load(std::sync::atomic::Ordering::Relaxed));
    for record in records {
        for (i, entry) in record.journal.iter().enumerate() {
            assert_eq!(
                *entry,
                Entry::StepStarted {
                    index: i as u32,
                    attempt: 1
                }
            );
        }
    }
}

/// Group commit at work: many concurrent appends share commits, so they finish
/// far sooner than the same number one after another. Prints figures only
/// (timings depend on the disk). Run with `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[ignore = "throughput figures; run by hand"]
async fn throughput_batched_vs_sequential() {
    const N: u32 = 10_000;
    const TASKS: u32 = 64;
    for durability in [Durability::Full, Durability::Normal] {
        let (_dir, path) = temp();
        let store = SqliteStore::open(&path, durability).expect("open");

        store.create(new_saga(u128::MAX)).await.unwrap();
        let started = Instant::now();
        for i in 0..N {
            store
                .append(
                    SagaId::from_u128(u128::MAX),
                    Entry::StepStarted {
                        index: i,
                        attempt: 1,
                    },
                )
                .await
                .unwrap();
        }
        let sequential = started.elapsed();

        let started = Instant::now();
        let mut handles = Vec::new();
        for t in 0..TASKS {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let id = SagaId::from_u128(u128::from(t));
                store.create(new_saga(u128::from(t))).await.unwrap();
                for i in 0..N / TASKS {
                    store
                        .append(
                            id,
                            Entry::StepStarted {
                                index: i,
                                attempt: 1,
                            },
                        )
                        .await
                        .unwrap();
                }
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
        let batched = started.elapsed();
        let rate = |n: u32, d: Duration| f64::from(n) / d.as_secs_f64();
        println!(
            "{durability:?}: {N} sequential appends in {sequential:?} ({:.0}/s); \
             {} appends from {TASKS} tasks in {batched:?} ({:.0}/s); speed-up {:.1}x",
            rate(N, sequential),
            N / TASKS * TASKS + TASKS,
            rate(N / TASKS * TASKS + TASKS, batched),
            sequential.as_secs_f64() / batched.as_secs_f64()
        );
    }
}

#[test]
fn an_empty_file_is_no_store_to_open_existing_but_a_new_one_to_open() {
    let (_dir, path) = temp();
    std::fs::write(&path, b"").unwrap();
    let err = open_error(&path, true);
    assert_names(&err, &path, "empty file");
    assert!(err.message().contains("file is empty"), "{err}");
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        0,
        "the file was written"
    );
    // `open` makes a new store in it, as SQLite does with an empty file.
    let store = SqliteStore::open(&path, Durability::Normal).expect("a new store");
    drop(store);
    assert!(std::fs::metadata(&path).unwrap().len() > 0);
}
