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

/// Every id `query` returns, fetched in pages of `page` resumed from each page's position.
fn paged<'s>(query: impl Fn() -> selflog::Query<'s>, page: u64) -> Vec<u64> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let mut q = query().limit(page);
        if let Some(p) = after {
            q = q.after(p);
        }
        let mut it = q.run().unwrap();
        let got = ids(it.by_ref());
        if got.is_empty() {
            return all;
        }
        after = it.position();
        all.extend(got);
    }
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
        let pages = paged(|| store.query().source("Google Chrome").order(order), 37);
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

/// 30,000 small events, every 997th holding "needle" (every other one of those in a
/// large, compressed payload), every 7th three seconds late.
fn needle_events() -> Vec<Event> {
    (0u64..30_000)
        .map(|i| {
            let late = if i.is_multiple_of(7) { 3_000_000 } else { 0 };
            let ts = T0 + i64::try_from(i).unwrap() * 10_000 - late;
            let data = match i {
                _ if i.is_multiple_of(997) && i.is_multiple_of(2) => format!(
                    r#"{{"big":"{}","i":{i}}}"#,
                    "filler Needle text ".repeat(200)
                ),
                _ if i.is_multiple_of(997) => format!(r#"{{"note":"a NEEDLE here","i":{i}}}"#),
                _ => format!(r#"{{"path":"/home/u/{i}","size":{}}}"#, i * 31),
            };
            Event::new(
                Timestamp(ts),
                "file_op",
                Some("opened"),
                "Finder",
                Some(&data),
            )
            .unwrap()
        })
        .collect()
}

/// A store of [`needle_events`] in 256 KiB segments.
fn needle_store(path: &std::path::Path) -> (Store, Vec<Event>) {
    let mut c = Config::default();
    c.segment_len = 256 << 10;
    c.data_len_max = 64 << 10;
    let store = Store::open(path, c).unwrap();
    let evs = needle_events();
    for chunk in evs.chunks(1000) {
        store.append_batch(chunk.to_vec()).unwrap();
    }
    store.flush().unwrap();
    (store, evs)
}

/// What `next` gives until it ends or fails, and the failure's text.
fn until_error<T>(
    mut next: impl FnMut() -> Option<selflog::Result<T>>,
) -> (Vec<T>, Option<String>) {
    let mut got = Vec::new();
    while let Some(r) = next() {
        match r {
            Ok(v) => got.push(v),
            Err(e) => return (got, Some(e.to_string())),
        }
    }
    (got, None)
}

/// The store's sealed segments, oldest first.
fn sealed_segments(store: &Store) -> Vec<selflog::SegmentInfo> {
    store
        .segments()
        .unwrap()
        .into_iter()
        .filter(|s| s.sealed)
        .collect()
}

/// A rare text is found by scanning hundreds of blocks, which a query reads in parallel
/// batches once it has read many one at a time: results stay exact and in order, across
/// sealed segments, compressed payloads, late timestamps, limits and paging.
#[test]
fn long_text_scans_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (store, evs) = needle_store(&dir.path().join("s"));
    assert!(store.stats().unwrap().segments >= 5, "scans cross segments");
    let has = |e: &Event| {
        e.data_text()
            .unwrap()
            .to_ascii_lowercase()
            .contains("needle")
    };
    for order in [Order::NewestFirst, Order::OldestFirst] {
        let want = model(&evs, has, order);
        assert_eq!(want.len(), 31);
        let got = ids(store.query().text("needle").order(order).run().unwrap());
        assert_eq!(got, want, "{order:?}");
        let got = ids(store
            .query()
            .text("NEEDLE")
            .order(order)
            .limit(5)
            .run()
            .unwrap());
        assert_eq!(got, want[..5], "limit, {order:?}");
        let (since, until) = (Timestamp(T0 + 20_000_000), Timestamp(T0 + 200_000_000));
        let got = ids(store
            .query()
            .text("needle")
            .since(since)
            .until(until)
            .order(order)
            .run()
            .unwrap());
        let in_range = |e: &Event| has(e) && e.timestamp >= since && e.timestamp < until;
        assert_eq!(got, model(&evs, in_range, order), "range, {order:?}");
        let pages = paged(|| store.query().text("needle").order(order), 7);
        assert_eq!(pages, want, "paging, {order:?}");
    }
    assert_eq!(store.query().text("needle").count().unwrap(), 31);
    assert_eq!(store.query().text("no such text").count().unwrap(), 0);
}

/// A damaged frame met by a long text scan ends the query with an error where a visit in
/// order would meet it: every row before it is returned first, none after it.
#[test]
fn a_damaged_block_in_a_long_scan_fails_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let (store, evs) = needle_store(&path);
    let sealed = sealed_segments(&store);
    assert!(sealed.len() >= 5);
    store.close().unwrap();
    // The third-newest sealed segment: a newest-first scan reads a few hundred blocks
    // before it. Overwrite the header of the frame holding its last small needle event.
    let victim = &sealed[sealed.len() - 3];
    let (first, last) = victim.ids.unwrap();
    let i = (first.0 - 1..last.0)
        .rev()
        .find(|i| i % 997 == 0 && i % 2 == 1)
        .expect("a small needle event in the segment");
    let mut bytes = std::fs::read(&victim.path).unwrap();
    let text = format!(r#""note":"a NEEDLE here","i":{i}}}"#);
    let at = bytes
        .windows(text.len())
        .position(|w| w == text.as_bytes())
        .expect("the event's data is stored as text");
    bytes[at - 40..at - 2].fill(0xFF);
    std::fs::write(&victim.path, &bytes).unwrap();
    let store = Store::open_read_only(&path).unwrap();
    let want = model(
        &evs,
        |e| {
            e.data_text()
                .unwrap()
                .to_ascii_lowercase()
                .contains("needle")
        },
        Order::NewestFirst,
    );
    let mut got = Vec::new();
    let mut failed = false;
    for e in store.query().text("needle").run().unwrap() {
        if let Ok(e) = e {
            got.push(e.id.0);
        } else {
            failed = true;
            break;
        }
    }
    assert!(failed, "the damage is reported");
    // One needle event a block at most: every row newer than the damaged one is returned
    // first, as a scan visiting blocks one at a time would, and nothing from it on.
    let damaged = want.iter().position(|&id| id == i + 1).unwrap();
    assert_eq!(
        got,
        want[..damaged],
        "every row before the damage, in order"
    );
}

/// Text made of letters that cannot spell the needle, deterministic.
fn filler(seed: u64, len: usize) -> String {
    const LETTERS: &[u8] = b"abdfgijklnpqstuvwxyz ";
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            LETTERS[(x % LETTERS.len() as u64) as usize] as char
        })
        .collect()
}

/// A payload over 1 KiB holding `CHRome` whose LZ4 form does not show "chrome" in any
/// case: the text is split between a literal and a back-reference (the first layout,
/// among a few tried, for which the encoder does that).
fn hidden(seed: u64) -> String {
    let words = |k: u64| -> String {
        (0..400)
            .map(|j| ["ab ", "dfg ", "ijk ", "lnp ", "qst "][((j * 7 + k) % 5) as usize])
            .collect()
    };
    (0..64u64)
        .map(|v| {
            format!(
                r#"{{"t":"{}omeQRSTUVWXYZ {}CHRomeQRSTUVWXYZ {}"}}"#,
                filler(seed + v, 200 + v as usize * 13),
                words(v),
                filler(seed + v + 1, 300)
            )
        })
        .find(|d| {
            assert!(d.len() > 1024, "compressed when stored");
            let packed = lz4_flex::block::compress(d.as_bytes());
            !packed.windows(6).any(|w| w.eq_ignore_ascii_case(b"chrome"))
        })
        .expect("a layout the encoder splits")
}

/// A search finds its text where the stored bytes do not show it: in compressed payloads
/// whose LZ4 form splits the text between a literal and a back-reference (in segments
/// where no name holds the text, so blocks are searched whole first), and in event types;
/// and still finds it in plain payloads, across sealed segments.
#[test]
fn text_only_the_decompressed_payload_or_a_name_holds_is_found() {
    let evs: Vec<Event> = (0u64..6000)
        .map(|i| {
            let data = match i % 500 {
                0 => hidden(i),
                250 => format!(
                    r#"{{"t":"{} chrome {}"}}"#,
                    filler(i, 40),
                    filler(i + 1, 40)
                ),
                _ => format!(r#"{{"t":"{}"}}"#, filler(i, 120)),
            };
            let ty = if i == 777 || i == 1777 {
                "Chromebook_sync"
            } else {
                "file_op"
            };
            Event::new(
                Timestamp(T0 + i64::try_from(i).unwrap() * 1000),
                ty,
                None,
                "Finder",
                Some(&data),
            )
            .unwrap()
        })
        .collect();
    for e in evs.iter().step_by(500) {
        let packed = lz4_flex::block::compress(e.data_text().unwrap().as_bytes());
        let shown = packed.windows(6).any(|w| w.eq_ignore_ascii_case(b"chrome"));
        assert!(!shown, "the compressed form must not show the text");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.segment_len = 256 << 10;
    c.data_len_max = 64 << 10;
    let store = Store::open(dir.path().join("s"), c).unwrap();
    store.append_batch(evs.clone()).unwrap();
    store.flush().unwrap();
    let stats = store.stats().unwrap();
    assert!(
        stats.segments >= 3 && stats.compressed_events == 12,
        "{stats:?}"
    );
    let has = |e: &Event| {
        e.event_type.to_ascii_lowercase().contains("chrome")
            || e.data_text()
                .unwrap()
                .to_ascii_lowercase()
                .contains("chrome")
    };
    for order in [Order::NewestFirst, Order::OldestFirst] {
        let want = model(&evs, has, order);
        assert_eq!(want.len(), 12 + 12 + 2);
        assert_eq!(
            ids(store.query().text("chrome").order(order).run().unwrap()),
            want
        );
    }
    assert_eq!(store.query().text("CHROME").count().unwrap(), 26);
}

/// Listings asked again (a dashboard's refresh) take large events' data from the
/// decompressed-data cache: every repeat returns exactly what a query without a limit (which
/// bypasses the cache) returns, whole events compared, also when the listed data is more
/// than the cache holds and entries are pushed out as it goes.
#[test]
fn repeated_listings_return_the_same_events_as_uncached_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.segment_len = 1 << 20;
    c.data_len_max = 64 << 10;
    let store = Store::open(dir.path().join("s"), c).unwrap();
    let mut appended = Vec::new();
    for i in 0u64..600 {
        // Every third event carries ~20 KB of compressible text: 200 of them, ~4 MB in
        // all, as much as the cache holds.
        let data = if i.is_multiple_of(3) {
            let words = format!("lorem {i} ipsum {} dolor ", filler(i, 8));
            format!(
                r#"{{"i":{i},"text":"{}"}}"#,
                words.repeat(20_000 / words.len())
            )
        } else {
            format!(r#"{{"i":{i}}}"#)
        };
        let kind = if i.is_multiple_of(2) { "even" } else { "odd" };
        let ts = T0 + i64::try_from(i).unwrap() * 1_000_000;
        let e = Event::new(Timestamp(ts), kind, None, "src", Some(&data)).unwrap();
        appended.push(e.clone());
        store.append(e).unwrap();
    }
    store.flush().unwrap();
    let stats = store.stats().unwrap();
    assert!(stats.compressed_events >= 150, "{stats:?}");
    let rows = |q: selflog::Query<'_>| -> Vec<StoredEvent> {
        q.run().unwrap().map(Result::unwrap).collect()
    };
    let uncached = rows(store.query());
    for (got, want) in uncached.iter().rev().zip(&appended) {
        assert_eq!(&got.to_event().unwrap(), want, "id {}", got.id);
    }
    for round in 0..3 {
        for limit in [50u64, 600] {
            let listed = rows(store.query().limit(limit));
            let n = usize::try_from(limit).unwrap();
            assert_eq!(listed, uncached[..n], "round {round}, limit {limit}");
        }
        let odd = rows(
            store
                .query()
                .event_type("odd")
                .order(Order::OldestFirst)
                .limit(120),
        );
        let want: Vec<&StoredEvent> = uncached
            .iter()
            .rev()
            .filter(|e| e.event_type == "odd")
            .take(120)
            .collect();
        assert_eq!(odd.iter().collect::<Vec<_>>(), want, "round {round}");
    }
}

/// A listing with no filter matches frames on a decode that skips the checksum and checks
/// it only when it returns them: a frame whose data byte was flipped on disk ends the
/// listing with an error naming the damage, through owned and borrowed reads alike, and
/// every event before it comes back intact.
#[test]
fn a_flipped_data_byte_fails_a_plain_listing_at_that_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let (store, evs) = needle_store(&path);
    let sealed = sealed_segments(&store);
    store.close().unwrap();
    let victim = sealed.last().expect("a sealed segment");
    let (first, last) = victim.ids.unwrap();
    let i = u64::midpoint(first.0, last.0) - 1;
    assert!(!i.is_multiple_of(997), "a plain event");
    let mut bytes = std::fs::read(&victim.path).unwrap();
    let text = format!(r#""path":"/home/u/{i}","#);
    let at = bytes
        .windows(text.len())
        .position(|w| w == text.as_bytes())
        .expect("the event's data is stored as text");
    bytes[at + 9] ^= 0x20; // "/home" -> "/Home": still UTF-8 and JSON, wrong bytes
    std::fs::write(&victim.path, &bytes).unwrap();
    let store = Store::open_read_only(&path).unwrap();
    let want = model(&evs, |_| true, Order::OldestFirst);
    let damaged = want.iter().position(|&id| id == i + 1).unwrap();
    // A scan in id order stops there too, owned or borrowed.
    let mut scan = store.scan().unwrap();
    let (owned, owned_error) = until_error(|| scan.next().map(|r| r.map(|e| e.id.0)));
    let mut scan = store.scan().unwrap();
    let (borrowed, borrowed_error) = until_error(|| scan.next_ref().map(|r| r.map(|e| e.id.0)));
    assert!(scan.next_ref().is_none(), "the scan ends at its error");
    assert_eq!(
        owned,
        (1..=i).collect::<Vec<_>>(),
        "scan: every event before"
    );
    assert_eq!(borrowed, owned, "borrowed scan: every event before");
    assert_eq!(borrowed_error, owned_error);
    assert!(owned_error.is_some_and(|e| e.contains("checksum")));
    for limit in [None, Some(u64::MAX)] {
        let query = || {
            let q = store.query().order(Order::OldestFirst);
            match limit {
                Some(n) => q.limit(n),
                None => q,
            }
        };
        let mut events = query().run().unwrap();
        let (owned, owned_error) = until_error(|| events.next());
        let mut events = query().run().unwrap();
        let (borrowed, borrowed_error) =
            until_error(|| events.next_ref().map(|r| r.map(|e| e.to_stored())));
        assert!(events.next_ref().is_none(), "the listing ends at its error");
        for (what, got, error) in [
            ("owned", &owned, &owned_error),
            ("borrowed", &borrowed, &borrowed_error),
        ] {
            let error = error
                .as_deref()
                .unwrap_or_else(|| panic!("{what}: no error"));
            assert!(error.contains("checksum"), "{what}: {error}");
            let ids: Vec<u64> = got.iter().map(|e| e.id.0).collect();
            assert_eq!(
                ids,
                want[..damaged],
                "{what}: every event before the damage"
            );
            for e in got {
                let want_event = &evs[usize::try_from(e.id.0 - 1).unwrap()];
                assert_eq!(
                    &e.to_event().unwrap(),
                    want_event,
                    "{what}: event {}",
                    e.id.0
                );
            }
        }
    }
}

/// A store of 256 KiB segments in `dir` holding `n` events, event `i` at the time and of the
/// type `event(i)` gives (data `{"i":i}`), flushed, with a sealed segment and the active one;
/// and the events in append order.
fn small_segment_store(
    dir: &std::path::Path,
    n: i64,
    event: impl Fn(i64) -> (i64, &'static str),
) -> (Store, Vec<Event>) {
    let mut c = Config::default();
    c.segment_len = 256 << 10;
    c.data_len_max = 64 << 10;
    let store = Store::open(dir.join("s"), c).unwrap();
    let mut appended = Vec::new();
    for i in 0..n {
        let (ts, kind) = event(i);
        let data = format!(r#"{{"i":{i}}}"#);
        let e = Event::new(Timestamp(ts), kind, None, "src", Some(&data)).unwrap();
        appended.push(e.clone());
        store.append(e).unwrap();
    }
    store.flush().unwrap();
    assert!(
        !sealed_segments(&store).is_empty(),
        "the events span a sealed segment and the active one"
    );
    (store, appended)
}

/// Events of a newer time early in the log, then a long run of older ones (an import of
/// older history after capture began, a clock set back): the newest and oldest first
/// listings, limited and paged, with filters, still match the model, across sealed
/// segments and the active one.
#[test]
fn a_newer_event_before_a_long_run_of_older_ones_lists_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // Captured now: every 1,000th event; imported history (a day earlier, in order) the rest.
    let (store, appended) = small_segment_store(dir.path(), 12_000, |i| {
        let ts = if i % 1000 == 0 {
            T0 + i * 1_000
        } else {
            T0 - 86_400_000_000 + i * 1_000_000
        };
        (ts, if i % 3 == 0 { "file_op" } else { "app_focus" })
    });
    for order in [Order::NewestFirst, Order::OldestFirst] {
        let all = model(&appended, |_| true, order);
        for limit in [1u64, 5, 13, 50] {
            let got = ids(store.query().order(order).limit(limit).run().unwrap());
            let n = usize::try_from(limit).unwrap();
            assert_eq!(got, all[..n], "{order:?}, limit {limit}");
        }
        assert_eq!(paged(|| store.query().order(order), 7)[..100], all[..100]);
        let file_ops = model(&appended, |e| e.event_type == "file_op", order);
        let got = ids(store
            .query()
            .order(order)
            .event_type("file_op")
            .limit(30)
            .run()
            .unwrap());
        assert_eq!(got, file_ops[..30], "{order:?}, file_op");
    }
}

/// Times running against the log's order (a history imported newest first, runs of it in
/// reverse): a plan's frontier jumps over long runs of candidates and serves them from
/// its jumped-over ranges; every listing, both orders, limited, paged, between times and
/// by type, still matches the model, across sealed segments and the active one.
#[test]
fn times_against_the_log_order_list_in_order() {
    type Shape = (&'static str, fn(i64) -> i64);
    let shapes: [Shape; 2] = [
        ("descending", |i| -i),
        // Runs of 1,500 going back in time, each run after the one before it.
        ("sawtooth", |i| (i / 1500) * 1500 + (1499 - i % 1500)),
    ];
    for (shape, at) in shapes {
        let dir = tempfile::tempdir().unwrap();
        let (store, appended) = small_segment_store(dir.path(), 9_000, |i| {
            (
                T0 + at(i) * 1_000,
                if i % 5 == 0 { "file_op" } else { "app_focus" },
            )
        });
        let (since, until) = (
            Timestamp(T0 + at(6_000) * 1_000),
            Timestamp(T0 + at(2_000) * 1_000),
        );
        let (since, until) = (since.min(until), since.max(until));
        for order in [Order::NewestFirst, Order::OldestFirst] {
            let all = model(&appended, |_| true, order);
            assert_eq!(
                ids(store.query().order(order).run().unwrap()),
                all,
                "{shape} {order:?}"
            );
            for limit in [1u64, 7, 50, 333] {
                let got = ids(store.query().order(order).limit(limit).run().unwrap());
                let n = usize::try_from(limit).unwrap();
                assert_eq!(got, all[..n], "{shape} {order:?}, limit {limit}");
            }
            assert_eq!(
                paged(|| store.query().order(order), 97),
                all,
                "{shape} {order:?} paged"
            );
            let between = model(
                &appended,
                |e| e.timestamp >= since && e.timestamp < until,
                order,
            );
            let got = ids(store
                .query()
                .order(order)
                .since(since)
                .until(until)
                .run()
                .unwrap());
            assert_eq!(got, between, "{shape} {order:?}, between");
            let got = ids(store
                .query()
                .order(order)
                .since(since)
                .limit(40)
                .run()
                .unwrap());
            let want = model(&appended, |e| e.timestamp >= since, order);
            assert_eq!(got, want[..40], "{shape} {order:?}, since");
            let file_ops = model(&appended, |e| e.event_type == "file_op", order);
            let got = paged(|| store.query().order(order).event_type("file_op"), 31);
            assert_eq!(got, file_ops, "{shape} {order:?}, file_op paged");
        }
    }
}
