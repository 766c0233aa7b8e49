//! Query behaviour against a plain in-memory model: ordering under out-of-order
//! timestamps, filters, paging and counts, across segments and the active tail.

use selflog::{Config, Event, EventId, Field, Order, Store, StoredEvent, Timestamp};

const T0: i64 = 1_732_460_000_000_000;

fn events() -> Vec<Event> {
    (0u64..3000)
        .map(|i| {
            // Mostly increasing, every 7th event three seconds late, ties every 10th.
            let base = T0 + i64::try_from(i / 10 * 10).unwrap() * 100_000;
            let ts = if i.is_multiple_of(7) {
                base - 3_000_000
            } else {
                base
            };
            let kind = ["file_op", "app_focus", "clipboard", "rare"]
                [usize::from(i.is_multiple_of(3)) + usize::from(i.is_multiple_of(500)) * 2];
            let source = if i.is_multiple_of(4) {
                "Google Chrome"
            } else {
                "Finder"
            };
            let data = if i.is_multiple_of(50) {
                format!(
                    r#"{{"text":"{}","i":{i}}}"#,
                    "lorem ipsum chrome dolor ".repeat(100)
                )
            } else {
                format!(r#"{{"path":"/tmp/{i}"}}"#)
            };
            Event::new(Timestamp(ts), kind, Some("opened"), source, Some(&data)).unwrap()
        })
        .collect()
}

fn model(events: &[Event], keep: impl Fn(&Event) -> bool, order: Order) -> Vec<u64> {
    let mut v: Vec<(i64, u64)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| keep(e))
        .map(|(i, e)| (e.timestamp.0, i as u64 + 1))
        .collect();
    v.sort_unstable();
    if order == Order::NewestFirst {
        v.reverse();
    }
    v.into_iter().map(|(_, id)| id).collect()
}

fn ids(it: impl Iterator<Item = selflog::Result<StoredEvent>>) -> Vec<u64> {
    it.map(|e| e.unwrap().id.0).collect()
}

#[test]
fn ordered_filtered_paged_results_match_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.segment_len = 64 << 10;
    c.data_len_max = 16 << 10;
    let store = Store::open(dir.path().join("s"), c).unwrap();
    let evs = events();
    for e in &evs {
        store.append(e.clone()).unwrap();
    }
    store.flush().unwrap();
    assert!(
        store.stats().unwrap().segments >= 2,
        "results cross segments"
    );
    for order in [Order::NewestFirst, Order::OldestFirst] {
        let all = ids(store.query().order(order).run().unwrap());
        assert_eq!(all, model(&evs, |_| true, order), "{order:?}");
        let since = Timestamp(T0 + 50_000_000);
        let until = Timestamp(T0 + 150_000_000);
        let got = ids(store
            .query()
            .since(since)
            .until(until)
            .event_type("file_op")
            .order(order)
            .run()
            .unwrap());
        let want = model(
            &evs,
            |e| e.timestamp >= since && e.timestamp < until && e.event_type == "file_op",
            order,
        );
        assert_eq!(got, want, "range + type, {order:?}");
        let got = ids(store.query().text("CHROME").order(order).run().unwrap());
        let want = model(
            &evs,
            |e| e.source.contains("Chrome") || e.data_text().unwrap().contains("chrome"),
            order,
        );
        assert_eq!(got, want, "text, {order:?}");
        let got = ids(store
            .query()
            .event_type("rare")
            .order(order)
            .limit(3)
            .run()
            .unwrap());
        let want: Vec<u64> = model(&evs, |e| e.event_type == "rare", order)
            .into_iter()
            .take(3)
            .collect();
        assert_eq!(got, want, "rare type, {order:?}");
        // Paging by 37 gives the whole result.
        let mut pages = Vec::new();
        let mut after = None;
        loop {
            let mut q = store.query().source("Google Chrome").order(order).limit(37);
            if let Some(p) = after {
                q = q.after(p);
            }
            let mut it = q.run().unwrap();
            let page: Vec<u64> = it.by_ref().map(|e| e.unwrap().id.0).collect();
            if page.is_empty() {
                break;
            }
            after = it.position();
            pages.extend(page);
        }
        assert_eq!(
            pages,
            model(&evs, |e| e.source == "Google Chrome", order),
            "paging {order:?}"
        );
    }
    assert_eq!(store.query().event_type("nope").count().unwrap(), 0);
    assert_eq!(store.query().count().unwrap(), 3000);
    assert_eq!(
        store.query().text("chrome").count().unwrap(),
        model(
            &evs,
            |e| e.source.contains("Chrome") || e.data_text().unwrap().contains("chrome"),
            Order::OldestFirst
        )
        .len() as u64
    );
    let by_type = store.query().counts_by(Field::EventType).unwrap();
    assert_eq!(by_type.values().sum::<u64>(), 3000);
    assert_eq!(
        by_type["rare"],
        model(&evs, |e| e.event_type == "rare", Order::OldestFirst).len() as u64
    );
    let by_source = store.query().counts_by(Field::Source).unwrap();
    assert_eq!(by_source["Google Chrome"], 750);
    assert_eq!(store.query().limit(0).run().unwrap().count(), 0);
    assert_eq!(
        store.query().ids(EventId(10), EventId(20)).count().unwrap(),
        10
    );
}
