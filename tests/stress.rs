//! Concurrency stress: 8 appending threads, 4 querying threads and the maintenance thread
//! on one store for a bounded time (`SELFLOG_STRESS_SECS`, default 2). Afterwards every
//! appended event is present exactly once with its content, and every query saw a
//! consistent committed prefix: dense ids, correct order, counts that never go back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use selflog::{Appended, Config, Event, EventId, Order, Store, Timestamp};

const T0: i64 = 1_732_460_000_000_000;

fn event(thread: u64, seq: u64) -> Event {
    Event::new(
        Timestamp(
            T0 + i64::try_from(seq * 8 + thread).unwrap() * 1000
                - if seq.is_multiple_of(13) { 2_000_000 } else { 0 },
        ),
        ["file_op", "app_focus", "clipboard"][usize::try_from(seq % 3).unwrap()],
        Some("x"),
        format!("thread-{thread}"),
        Some(&format!(
            r#"{{"t":{thread},"s":{seq},"pad":"{}"}}"#,
            "p".repeat(usize::try_from(seq % 200).unwrap())
        )),
    )
    .unwrap()
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario: start, run, check")]
fn appenders_queriers_and_maintenance_together() {
    let secs: u64 =
        std::env::var("SELFLOG_STRESS_SECS").map_or(2, |v| v.parse().expect("SELFLOG_STRESS_SECS"));
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.segment_len = 256 << 10;
    c.data_len_max = 16 << 10;
    c.cleanup_interval = Duration::from_millis(50);
    // Retention runs every 50 ms but has nothing to delete: the checks need every event
    // kept, and these events' timestamps are years old, so a run that passes the dedup
    // window (1,000,000 events: a few seconds here) would see its segments deleted.
    c.retention_age = None;
    c.batch_timeout = Duration::from_millis(20);
    let store = Arc::new(Store::open(dir.path().join("s"), c).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let appenders: Vec<_> = (0..8u64)
        .map(|t| {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    match store.append(event(t, seq)).unwrap() {
                        Appended::New(id) => ids.push((id, seq)),
                        Appended::Duplicate(id) => {
                            panic!("distinct event {t}/{seq} called a duplicate of {id}")
                        }
                    }
                    if seq.is_multiple_of(97) {
                        store.flush().unwrap();
                    }
                    seq += 1;
                }
                (t, ids)
            })
        })
        .collect();
    let queriers: Vec<_> = (0..4u64)
        .map(|q| {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut last_count = 0u64;
                let mut rounds = 0;
                while !stop.load(Ordering::Relaxed) {
                    rounds += 1;
                    match q {
                        0 => {
                            // Odd rounds read the scan borrowed.
                            let mut scan = store.scan().unwrap();
                            let ids: Vec<u64> = if rounds % 2 == 1 {
                                let mut ids = Vec::new();
                                while let Some(e) = scan.next_ref() {
                                    ids.push(e.unwrap().id.0);
                                }
                                ids
                            } else {
                                scan.map(|e| e.unwrap().id.0).collect()
                            };
                            let gap = ids.windows(2).find(|w| w[1] != w[0] + 1);
                            assert!(
                                gap.is_none(),
                                "scan ids are dense (round {rounds}, borrowed {}): {gap:?} of {}",
                                rounds % 2 == 1,
                                ids.len()
                            );
                            assert!(
                                ids.len() as u64 >= last_count,
                                "the committed prefix never shrinks"
                            );
                            last_count = ids.len() as u64;
                        }
                        1 => {
                            let mut events = store.query().limit(200).run().unwrap();
                            let evs: Vec<_> = if rounds % 2 == 1 {
                                let mut evs = Vec::new();
                                while let Some(e) = events.next_ref() {
                                    evs.push(e.unwrap().to_stored());
                                }
                                evs
                            } else {
                                events.map(Result::unwrap).collect()
                            };
                            assert!(
                                evs.windows(2)
                                    .all(|w| (w[0].timestamp, w[0].id) > (w[1].timestamp, w[1].id)),
                                "newest first"
                            );
                        }
                        2 => {
                            let n = store.query().event_type("clipboard").count().unwrap();
                            assert!(n >= last_count, "counts never go back");
                            last_count = n;
                        }
                        _ => {
                            let evs: Vec<_> = store
                                .query()
                                .text("THREAD-3")
                                .order(Order::OldestFirst)
                                .limit(100)
                                .run()
                                .unwrap()
                                .map(Result::unwrap)
                                .collect();
                            assert!(evs.iter().all(|e| e.source == "thread-3"));
                            assert!(
                                evs.windows(2)
                                    .all(|w| (w[0].timestamp, w[0].id) < (w[1].timestamp, w[1].id)),
                                "oldest first"
                            );
                        }
                    }
                }
                rounds
            })
        })
        .collect();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let mut appended: HashMap<EventId, (u64, u64)> = HashMap::new();
    for a in appenders {
        let (t, ids) = a.join().unwrap();
        for (id, seq) in ids {
            assert!(
                appended.insert(id, (t, seq)).is_none(),
                "id {id} handed out twice"
            );
        }
    }
    for q in queriers {
        assert!(q.join().unwrap() > 0, "every querier ran");
    }
    store.flush().unwrap();
    let stored: Vec<_> = store.scan().unwrap().map(Result::unwrap).collect();
    assert_eq!(
        stored.len(),
        appended.len(),
        "every appended event stored once"
    );
    for e in &stored {
        let (t, seq) = appended[&e.id];
        assert_eq!(e.to_event().unwrap(), event(t, seq), "content of {}", e.id);
    }
    assert!(
        stored.len() > 1000,
        "the run did real work ({} events)",
        stored.len()
    );
}
