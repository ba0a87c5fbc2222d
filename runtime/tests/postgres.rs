//! What only the PostgreSQL store does: two stores ("workers") over one
//! schema share sagas through leases, a fenced-off writer writes nothing, a
//! dead worker's sagas move on at lease expiry, lost connections are
//! retried, and bad servers and schemas are refused with the server named.
//! Each test uses a schema of its own on the server at `SAGAFLOW_PG_URL`.
#![cfg(feature = "postgres")]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use sagaflow::SagaId;
use sagaflow::durable::{Entry, NewSaga, PgConfig, PgStore, SagaStatus, Store};

fn new_saga(id: SagaId) -> NewSaga {
    NewSaga {
        id,
        saga_type: "buy".into(),
        fingerprint: "reserve:compensate=release".into(),
        input: b"{}".to_vec(),
    }
}

fn started(index: u32) -> Entry {
    Entry::StepStarted { index, attempt: 1 }
}

fn committed() -> Entry {
    Entry::Finished {
        status: SagaStatus::Committed,
        output: None,
    }
}

struct Cluster {
    url: String,
    schema: String,
}

impl Cluster {
    fn new(test: &str) -> Option<Cluster> {
        Some(Cluster {
            url: support::pg_url()?,
            schema: support::schema_for(test),
        })
    }

    fn config(&self) -> PgConfig {
        PgConfig::new(self.url.clone()).schema(self.schema.clone())
    }

    /// A worker: a store of its own over the shared schema.
    async fn worker(&self, lease: Duration) -> PgStore {
        PgStore::connect_with(self.config().lease(lease))
            .await
            .expect("connect")
    }

    /// Runs `sql` behind the stores' backs, `{s}` being the quoted schema.
    async fn sql(&self, sql: &str) {
        let client = support::raw_client(&self.url).await;
        client
            .batch_execute(&sql.replace("{s}", &format!("\"{}\"", self.schema)))
            .await
            .expect(sql);
    }
}

const LONG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_racing_for_sagas_never_claim_the_same_one() {
    let Some(cluster) = Cluster::new("racing") else {
        return;
    };
    let (a, b) = (cluster.worker(LONG).await, cluster.worker(LONG).await);
    let mut ids = HashSet::new();
    for _ in 0..300 {
        let id = SagaId::time_ordered();
        a.submit(new_saga(id)).await.unwrap();
        ids.insert(id);
    }
    let take = |store: PgStore| async move {
        let mut mine = Vec::new();
        loop {
            let got = store.claim_runnable(7).await.unwrap();
            if got.is_empty() {
                return (store, mine);
            }
            // Drive each to its end, as a worker would, so it is let go.
            for record in got {
                store.append(record.id, committed()).await.unwrap();
                mine.push(record.id);
            }
        }
    };
    let (ra, rb) = tokio::join!(tokio::spawn(take(a)), tokio::spawn(take(b)));
    let ((a, from_a), (b, from_b)) = (ra.unwrap(), rb.unwrap());
    let (sa, sb): (HashSet<_>, HashSet<_>) = (
        from_a.iter().copied().collect(),
        from_b.iter().copied().collect(),
    );
    assert_eq!(sa.len(), from_a.len(), "a claimed a saga twice");
    assert_eq!(sb.len(), from_b.len(), "b claimed a saga twice");
    assert!(
        sa.is_disjoint(&sb),
        "both claimed {:?}",
        sa.intersection(&sb).next()
    );
    assert_eq!(&sa | &sb, ids);
    assert!(
        !from_a.is_empty() && !from_b.is_empty(),
        "{} / {}",
        from_a.len(),
        from_b.len()
    );
    // What ended is let go.
    assert!(a.held().is_empty() && b.held().is_empty());
    for id in ids {
        let record = a.get(id).await.unwrap().unwrap();
        assert_eq!(record.journal, [committed()], "saga {id} written once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_off_writer_fails_and_writes_nothing() {
    let Some(cluster) = Cluster::new("fenced") else {
        return;
    };
    let (a, b) = (cluster.worker(LONG).await, cluster.worker(LONG).await);
    let id = SagaId::time_ordered();
    a.create(new_saga(id)).await.unwrap();
    a.append(id, started(0)).await.unwrap();
    assert_eq!(a.token(id), Some(1));
    // `a` pauses past its lease (as a stopped process would): `b` takes over.
    cluster
        .sql("UPDATE {s}.sagas SET lease_until = now() - interval '1 second'")
        .await;
    let claimed = b.claim_unfinished().await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].journal, [started(0)]);
    assert_eq!(b.token(id), Some(2));

    let error = a
        .append_all(id, vec![started(1), started(2)])
        .await
        .unwrap_err();
    assert!(error.is_lease_lost(), "{error}");
    let message = error.message();
    assert!(message.contains(&id.to_string()), "{message}");
    assert!(
        message.contains(b.owner()),
        "names the new holder: {message}"
    );
    assert!(message.contains("under token 2"), "{message}");
    assert!(message.contains("nothing was written"), "{message}");
    // That refusal made `a` forget the lease: it does not even try again.
    assert_eq!(a.token(id), None);
    let error = a.append(id, started(1)).await.unwrap_err();
    assert!(error.is_lease_lost(), "{error}");
    assert!(error.message().contains("holds no lease"), "{error}");
    b.append(id, started(1)).await.unwrap();
    let record = b.get(id).await.unwrap().unwrap();
    assert_eq!(record.journal, [started(0), started(1)]);
    // A finished saga is held by nobody; nobody writes for it under a lease.
    b.append(id, committed()).await.unwrap();
    assert_eq!(b.token(id), None);
    assert!(b.append(id, started(2)).await.unwrap_err().is_lease_lost());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_sagas_move_on_at_lease_expiry_and_not_before() {
    let Some(cluster) = Cluster::new("expiry") else {
        return;
    };
    let lease = Duration::from_millis(600);
    let a = cluster.worker(lease).await;
    let b = cluster.worker(lease).await;
    let id = SagaId::time_ordered();
    a.create(new_saga(id)).await.unwrap();
    a.append(id, started(0)).await.unwrap();
    // Alive, `a` renews its lease: `b` gets nothing for longer than a lease.
    tokio::time::sleep(lease * 2).await;
    assert!(b.claim_unfinished().await.unwrap().is_empty());
    // `a` dies (dropped without close: its leases stay until they expire).
    drop(a);
    assert!(b.claim_unfinished().await.unwrap().is_empty());
    let deadline = tokio::time::Instant::now() + lease * 3;
    let claimed = loop {
        let got = b.claim_unfinished().await.unwrap();
        if !got.is_empty() || tokio::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(claimed.len(), 1, "taken over within the lease");
    assert_eq!(claimed[0].journal, [started(0)]);
    assert_eq!(b.token(id), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_and_close_hand_sagas_over_at_once() {
    let Some(cluster) = Cluster::new("release") else {
        return;
    };
    let (a, b) = (cluster.worker(LONG).await, cluster.worker(LONG).await);
    let (one, two) = (SagaId::time_ordered(), SagaId::time_ordered());
    a.create(new_saga(one)).await.unwrap();
    a.create(new_saga(two)).await.unwrap();
    a.release(one);
    assert!(a.append(one, started(0)).await.unwrap_err().is_lease_lost());
    // The release is queued to the lease task: it lands soon, not at expiry.
    let mut got = Vec::new();
    for _ in 0..100 {
        got = b.claim_unfinished().await.unwrap();
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got.iter().map(|r| r.id).collect::<Vec<_>>(), [one]);
    b.append(one, committed()).await.unwrap();
    a.close().await.unwrap();
    assert!(a.held().is_empty());
    let got = b.claim_unfinished().await.unwrap();
    assert_eq!(got.iter().map(|r| r.id).collect::<Vec<_>>(), [two]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_connections_killed_under_them() {
    let Some(cluster) = Cluster::new("killed") else {
        return;
    };
    // Its own application name, so that the killing spares other tests.
    let sep = if cluster.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}application_name={}", cluster.url, cluster.schema);
    let store = PgStore::connect_with(PgConfig::new(url).schema(cluster.schema.clone()))
        .await
        .unwrap();
    let ids: Vec<SagaId> = (0..32).map(|_| SagaId::time_ordered()).collect();
    for &id in &ids {
        store.create(new_saga(id)).await.unwrap();
    }
    // Each saga writes 20 entries, one at a time, while its connections are
    // killed over and over.
    let writers = ids.iter().map(|&id| {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                store.append(id, started(i)).await?;
            }
            Ok::<_, sagaflow::durable::StoreError>(())
        })
    });
    let killer = {
        let (url, name) = (cluster.url.clone(), cluster.schema.clone());
        tokio::spawn(async move {
            let client = support::raw_client(&url).await;
            let mut killed = 0;
            for _ in 0..15 {
                tokio::time::sleep(Duration::from_millis(15)).await;
                let rows = client
                    .query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE application_name = $1 AND pid <> pg_backend_pid()",
                        &[&name],
                    )
                    .await
                    .unwrap();
                killed += rows.len();
            }
            killed
        })
    };
    for writer in futures_util::future::join_all(writers).await {
        writer
            .unwrap()
            .expect("every write is retried until it commits");
    }
    let killed = killer.await.unwrap();
    assert!(killed > 0, "no connection was killed");
    // Every acknowledged entry is there exactly once, in order.
    for &id in &ids {
        let journal = store.get(id).await.unwrap().unwrap().journal;
        assert_eq!(
            journal,
            (0..20).map(started).collect::<Vec<_>>(),
            "saga {id}"
        );
    }
}

#[tokio::test]
async fn a_server_that_is_down_is_named() {
    // Port 1 on loopback: nothing listens there.
    let config = PgConfig::new("postgres://sagaflow:secret@127.0.0.1:1/shop")
        .connect_timeout(Duration::from_secs(2));
    let error = PgStore::connect_with(config).await.unwrap_err();
    let message = error.message();
    assert!(
        message.contains("postgresql://127.0.0.1:1/shop"),
        "{message}"
    );
    assert!(message.contains("cannot connect"), "{message}");
    assert!(!message.contains("secret"), "leaks the password: {message}");

    let error = PgStore::connect("postgres://[bad").await.unwrap_err();
    assert!(error.message().contains("does not parse"), "{error}");
    let error = PgStore::connect_with(PgConfig::new("postgres://127.0.0.1/x").schema("Bad-Name"))
        .await
        .unwrap_err();
    assert!(
        error
            .message()
            .contains("\"Bad-Name\" is not a plain identifier"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_that_is_not_ours_or_is_newer_is_refused_untouched() {
    let Some(cluster) = Cluster::new("foreign") else {
        return;
    };
    cluster
        .sql("CREATE SCHEMA {s}; CREATE TABLE {s}.orders (id int); INSERT INTO {s}.orders VALUES (1)")
        .await;
    let error = PgStore::connect_with(cluster.config()).await.unwrap_err();
    let message = error.message();
    assert!(
        message.contains(&format!("schema {:?}", cluster.schema)),
        "{message}"
    );
    assert!(
        message.contains("database \"sagaflow_test\"") || message.contains("database \""),
        "{message}"
    );
    assert!(message.contains("is not a sagaflow store"), "{message}");
    assert!(message.contains("orders"), "{message}");
    cluster.sql("SELECT 1 FROM {s}.orders WHERE id = 1").await;

    let Some(newer) = Cluster::new("newer") else {
        return;
    };
    drop(newer.worker(LONG).await);
    newer
        .sql("UPDATE {s}.sagaflow_meta SET value = '99' WHERE key = 'schema_version'")
        .await;
    let error = PgStore::connect_with(newer.config()).await.unwrap_err();
    assert!(error.message().contains("schema version 99"), "{error}");
    assert!(error.message().contains("newer sagaflow"), "{error}");
    // Connecting again to a current schema migrates nothing and works.
    newer
        .sql("UPDATE {s}.sagaflow_meta SET value = '1' WHERE key = 'schema_version'")
        .await;
    drop(newer.worker(LONG).await);
}

// ---------------------------------------------------------------------------
// Through the executor: a worker fenced off mid-step

#[derive(Debug)]
struct JobError;

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("job error")
    }
}

/// Holds steps at its gate until opened; records who ran what with which key.
#[derive(Default)]
struct Gate {
    open: std::sync::atomic::AtomicBool,
    opened: tokio::sync::Notify,
    waiting: tokio::sync::Notify,
    calls: std::sync::Mutex<Vec<String>>,
}

impl Gate {
    fn opened() -> Gate {
        let gate = Gate::default();
        gate.open.store(true, std::sync::atomic::Ordering::SeqCst);
        gate
    }

    fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
        self.opened.notify_waiters();
    }

    async fn pass(&self, what: &str) {
        let key = sagaflow::StepContext::current()
            .map(|c| c.idempotency_key().to_string())
            .unwrap_or_default();
        self.calls.lock().unwrap().push(format!("{what} [{key}]"));
        while !self.open.load(std::sync::atomic::Ordering::SeqCst) {
            let opened = self.opened.notified();
            self.waiting.notify_one();
            opened.await;
        }
    }
}

#[sagaflow::step(read_only)]
async fn first(gate: &Gate, n: u32) -> Result<u32, JobError> {
    gate.pass("first").await;
    Ok(n + 1)
}

#[sagaflow::step(read_only)]
async fn second(gate: &Gate, n: &u32) -> Result<u32, JobError> {
    gate.pass("second").await;
    Ok(n + 1)
}

#[sagaflow::saga]
async fn job(gate: &Gate, n: u32) -> Result<u32, JobError> {
    let a = first(gate, n).await?;
    let b = second(gate, &a).await?;
    Ok(b)
}

/// Hooks that keep what `lease_lost` was told.
#[derive(Clone, Default)]
struct LeaseWatch(std::sync::Arc<std::sync::Mutex<Vec<(sagaflow::SagaId, String)>>>);

impl sagaflow::Hooks for LeaseWatch {
    fn lease_lost(&self, _saga: &'static str, id: sagaflow::SagaId, error: &str) {
        self.0.lock().unwrap().push((id, error.to_owned()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_stops_driving_the_saga_and_writes_nothing() {
    use sagaflow::durable::{Executor, RecoveredOutcome};
    let Some(cluster) = Cluster::new("takeover") else {
        return;
    };
    let told = LeaseWatch::default();
    let a = Executor::new(cluster.worker(LONG).await)
        .with_hooks(told.clone())
        .resource(Gate::default())
        .register::<JobSaga>();
    let b = Executor::new(cluster.worker(LONG).await)
        .resource(Gate::opened())
        .register::<JobSaga>();
    let gate_a = a.resources().get::<Gate>().unwrap();
    let started = a.start(JobSaga::new(gate_a, 1)).await.unwrap();
    let id = started.id();
    let run_a = started.outcome();
    let take_over = async {
        // `a` is inside step `first`, held at its gate: it stalls past its
        // lease (as a paused process would), and `b` takes the saga over.
        gate_a.waiting.notified().await;
        cluster
            .sql("UPDATE {s}.sagas SET lease_until = now() - interval '1 second'")
            .await;
        let report = b.recover().await.unwrap();
        gate_a.open();
        report
    };
    let (outcome_a, report) = tokio::join!(run_a, take_over);
    assert_eq!(
        report.count(|o| *o == RecoveredOutcome::Committed),
        1,
        "{report}"
    );
    let error = outcome_a.expect_err("a's run must stop at its next write");
    assert!(error.is_lease_lost(), "{error}");
    // And its hooks were told, once, of this saga.
    let lost = told.0.lock().unwrap().clone();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].0, id);

    // Step `first` ran in both, with one key; only `b` got further.
    let key = format!("{id}-0");
    assert_eq!(*gate_a.calls.lock().unwrap(), [format!("first [{key}]")]);
    let gate_b = b.resources().get::<Gate>().unwrap();
    assert_eq!(
        *gate_b.calls.lock().unwrap(),
        [format!("first [{key}]"), format!("second [{id}-1]")]
    );
    // Nothing `a` tried to write after the takeover landed.
    let record = b.store().get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Committed);
    let starts: Vec<_> = record
        .journal
        .iter()
        .filter_map(|e| match e {
            Entry::StepStarted { index, attempt } => Some((*index, *attempt)),
            _ => None,
        })
        .collect();
    assert_eq!(starts, [(0, 1), (0, 2), (1, 1)], "{:?}", record.journal);
    assert_eq!(record.journal.len(), 6, "{:?}", record.journal);
}

// ---------------------------------------------------------------------------
// The test kit's crash sweep, on PostgreSQL

#[cfg(feature = "testing")]
mod crash_sweep {
    use std::sync::{Arc, Mutex};

    use sagaflow::durable::{Executor, PgStore};
    use sagaflow::testing::SagaTest;
    use sagaflow::{StepContext, saga, step};

    use super::{Cluster, LONG};

    /// Seats held and cards charged, once per idempotency key.
    #[derive(Clone, Default)]
    struct Shop(Arc<Mutex<(Vec<String>, Vec<String>)>>);

    fn key() -> String {
        StepContext::current()
            .map(|c| c.idempotency_key().to_string())
            .unwrap_or_default()
    }

    #[derive(Debug)]
    struct ShopError;

    impl std::fmt::Display for ShopError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("shop error")
        }
    }

    #[step(compensate = release)]
    async fn hold(shop: &Shop, seat: u32) -> Result<u32, ShopError> {
        let mut state = shop.0.lock().unwrap();
        let key = key();
        if !state.0.contains(&key) {
            state.0.push(key);
        }
        Ok(seat)
    }

    async fn release(shop: &Shop, _seat: u32, _held: &u32) -> Result<(), ShopError> {
        // One saga at a time: its hold is the only one.
        shop.0.lock().unwrap().0.clear();
        Ok(())
    }

    #[step(pivot)]
    async fn charge(shop: &Shop, seat: u32) -> Result<u32, ShopError> {
        let mut state = shop.0.lock().unwrap();
        let key = key();
        if !state.1.contains(&key) {
            state.1.push(key);
        }
        Ok(seat * 100)
    }

    #[saga]
    async fn buy(shop: &Shop, seat: u32) -> Result<u32, ShopError> {
        let _ = hold(shop, seat).await?;
        let paid = charge(shop, seat).await?;
        Ok(paid)
    }

    #[test]
    fn the_crash_sweep_runs_on_postgres() {
        let Some(cluster) = Cluster::new("crash_sweep") else {
            return;
        };
        let shop = Shop::default();
        let config = cluster.config().lease(LONG);
        let report = SagaTest::new(|| {
            *shop.0.lock().unwrap() = Default::default();
            BuySaga::new(&shop, 7)
        })
        .invariant(|run| {
            let state = shop.0.lock().unwrap();
            let (held, charged) = (state.0.len(), state.1.len());
            match (run.committed(), held, charged) {
                (true, 1, 1) | (false, 0, 0) => Ok(()),
                _ => Err(format!("{held} seat(s) held and {charged} charge(s)")),
            }
        })
        .crash_sweep_on(
            |_run| {
                let config = config.clone();
                async move {
                    PgStore::connect_with(config)
                        .await
                        .map_err(|e| e.to_string())
                }
            },
            |store| {
                Executor::new(store)
                    .resource(shop.clone())
                    .register::<BuySaga>()
            },
        )
        .unwrap();
        // Killed after the input, after each of two intents and after the
        // pivot's outcome; the last run's last commit is the end itself.
        assert_eq!(report.cases().last().unwrap(), "ran to its end", "{report}");
        assert!(report.runs() >= 4, "{report}");
    }
}

// ---------------------------------------------------------------------------
// What an operator's view asks: list, history, purge

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_are_listed_with_their_times_and_finished_ones_purged() {
    use sagaflow::durable::SagaFilter;
    use std::time::SystemTime;

    let Some(cluster) = Cluster::new("operate") else {
        return;
    };
    let store = cluster.worker(LONG).await;
    let before = SystemTime::now() - Duration::from_secs(1);
    let mut ids = Vec::new();
    for status in [
        SagaStatus::Committed,
        SagaStatus::Compensated,
        SagaStatus::Parked,
        SagaStatus::Running,
    ] {
        let id = SagaId::time_ordered();
        store.create(new_saga(id)).await.unwrap();
        store.append(id, started(0)).await.unwrap();
        if status != SagaStatus::Running {
            let finished = Entry::Finished {
                status,
                output: None,
            };
            store.append(id, finished).await.unwrap();
        }
        ids.push(id);
    }

    // Newest first, with the times of the saga and of each entry.
    let all = store.list(SagaFilter::default()).await.unwrap();
    let listed: Vec<SagaId> = all.iter().map(|s| s.record.id).collect();
    let newest_first: Vec<SagaId> = ids.iter().rev().copied().collect();
    assert_eq!(listed, newest_first);
    for saga in &all {
        assert!(saga.created_at.unwrap() >= before);
        assert!(saga.updated_at.unwrap() >= saga.created_at.unwrap());
        assert_eq!(saga.entry_times.len(), saga.record.journal.len());
    }
    let parked = SagaFilter {
        status: Some(SagaStatus::Parked),
        ..SagaFilter::default()
    };
    let parked = store.list(parked).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].record.id, ids[2]);
    let one = SagaFilter {
        limit: Some(1),
        ..SagaFilter::default()
    };
    assert_eq!(store.list(one).await.unwrap()[0].record.id, ids[3]);
    let later = SagaFilter {
        since: Some(SystemTime::now() + Duration::from_secs(60)),
        ..SagaFilter::default()
    };
    assert!(store.list(later).await.unwrap().is_empty());
    let history = store.history(ids[0]).await.unwrap().unwrap();
    assert_eq!(history.record.journal.len(), 2);
    assert_eq!(history.entry_times.len(), 2);

    // A dry run says what would go; the purge takes only finished sagas.
    let now = SystemTime::now() + Duration::from_secs(1);
    let would = store.purge(now, true).await.unwrap();
    assert_eq!(would, [ids[0], ids[1]]);
    assert_eq!(store.list(SagaFilter::default()).await.unwrap().len(), 4);
    let gone = store.purge(now, false).await.unwrap();
    assert_eq!(gone.len(), 2);
    assert!(store.get(ids[0]).await.unwrap().is_none());
    assert!(store.get(ids[1]).await.unwrap().is_none());
    assert_eq!(
        store.get(ids[2]).await.unwrap().unwrap().status,
        SagaStatus::Parked
    );
    assert_eq!(
        store.get(ids[3]).await.unwrap().unwrap().status,
        SagaStatus::Running
    );
    // Nothing finished is left to purge.
    let left = store.purge(now, false).await.unwrap();
    assert!(left.is_empty());
}
