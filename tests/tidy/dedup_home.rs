//! The dedup window image's key, home bucket and walk as `format-spec/FORMAT.md` states
//! them, written here from the spec's text alone, against an image a real store wrote: every
//! entry must sit at the displacement from the home the spec's `dedup_home` gives, carry the
//! tag the spec names, and be found by the spec's walk, including entries that wrapped from
//! the last bucket to bucket 0 (issue 26: a second writer could not place or find entries).

use selflog::{Config, Event, EventId, Store, Timestamp};

/// `mix(h, v)` of the spec: `x ^ (x >> 29)` with `x = (h ^ v) × 0x9E37_79B9_7F4A_7C15`.
fn mix(h: u64, v: u64) -> u64 {
    let x = (h ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 29)
}

/// The spec's `dedup_home`, steps 1 to 6.
fn spec_dedup_home(e: &Event) -> u32 {
    let absent = u64::MAX;
    let mut h = mix(0x5E1F_106D_ED09_0000, e.timestamp.0.cast_unsigned());
    h = mix(h, e.event_type.len() as u64 | (e.source.len() as u64) << 32);
    h = mix(h, e.action.as_ref().map_or(absent, |a| a.len() as u64));
    let data = e.data_text().map(str::as_bytes);
    h = mix(h, data.map_or(absent, |d| d.len() as u64));
    if let Some(d) = data.filter(|d| d.len() <= 1024) {
        let word = |b: &[u8]| {
            let mut w = [0u8; 8];
            w[..b.len()].copy_from_slice(b);
            u64::from_le_bytes(w)
        };
        let n = d.len().min(8);
        h = mix(h, word(&d[..n]));
        h = mix(h, word(&d[d.len() - n..]));
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (h ^ (h >> 31)) as u32
}

/// The spec's home bucket: `(dedup_home × buckets) >> 32`.
fn spec_home_bucket(e: &Event, buckets: u64) -> u64 {
    (u64::from(spec_dedup_home(e)) * buckets) >> 32
}

/// Events of every shape the home function treats apart: with and without action and
/// data, data shorter than 8 bytes, of 8 to 1024, and longer (stored compressed, homed by
/// its length alone).
fn varied(i: u16) -> Event {
    let ts = Timestamp(1_732_460_000_000_000 + i64::from(i) * 7919);
    let action = ["modified", ""].get(usize::from(i % 3)).copied();
    let data = match i % 4 {
        0 => None,
        1 => Some(format!("{}", i % 10)),
        2 => Some(format!(r#"{{"path":"/tmp/file-{i}.txt"}}"#)),
        _ => Some(format!(r#"{{"blob":"{}{i}"}}"#, "ab".repeat(700))),
    };
    let ty = "t".repeat(1 + usize::from(i % 5));
    Event::new(ts, ty, action, "Finder", data.as_deref()).unwrap()
}

/// An event whose home value does not depend on `k` (same timestamp, names, data length
/// and first and last 8 bytes), so that every `k` crowds the same bucket.
fn crowded(ts: i64, k: u32) -> Event {
    let data = format!(r#"{{"k":"aaaaaaaa{k:06}aaaaaaaa"}}"#);
    Event::new(Timestamp(ts), "file_op", None, "Finder", Some(&data)).unwrap()
}

#[test]
fn dedup_image_entries_sit_where_the_spec_home_and_walk_put_them() {
    const CAPACITY: u64 = 64;
    let buckets = CAPACITY.div_ceil(4);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.sidecars = false;
    config.dedup_window = CAPACITY as usize;
    let store = Store::open(dir.path().join("s"), config).unwrap();
    let mut events = Vec::new();
    for i in 0..150 {
        events.push(varied(i));
    }
    // A timestamp whose crowded events are homed, by the spec, in the last bucket: 20 of
    // them cannot fit in its 8 slots and must wrap to bucket 0.
    let ts = (1_732_460_100_000_000..1_732_460_100_100_000)
        .find(|&t| spec_home_bucket(&crowded(t, 0), buckets) == buckets - 1)
        .expect("one in 16 timestamps is homed there");
    for k in 0..20 {
        events.push(crowded(ts, k));
    }
    for (i, e) in events.iter().enumerate() {
        let id = store.append(e.clone()).unwrap().id();
        assert_eq!(id, EventId(i as u64 + 1), "every event is new");
    }
    store.close().unwrap();

    let image = std::fs::read(dir.path().join("s/dedup.window")).unwrap();
    let word = |at: usize| u64::from_le_bytes(image[at..at + 8].try_into().unwrap());
    assert_eq!(word(24), buckets);
    let (base, newest) = (word(32), word(40));
    assert_eq!(newest, events.len() as u64);
    let entry = |b: u64, s: u64| word(64 + 64 * b as usize + 8 * s as usize);
    let overflow = |b: u64| image[64 + 64 * buckets as usize + b as usize];
    let id_of = |e: u64| base + (e & 0x0FFF_FFFF) - 1;
    let live = |e: u64| e != 0 && id_of(e) + CAPACITY > newest;

    let mut wrapped = 0;
    for b in 0..buckets {
        for s in 0..8 {
            let e = entry(b, s);
            if e == 0 {
                continue;
            }
            let ev = &events[usize::try_from(id_of(e) - 1).unwrap()];
            assert_eq!(
                e >> 32,
                ev.content_hash() >> 32,
                "the tag of id {}",
                id_of(e)
            );
            let home = spec_home_bucket(ev, buckets);
            let distance = (b + buckets - home) % buckets;
            assert_eq!(
                (e >> 28) & 0xF,
                distance.min(15),
                "id {} in bucket {b}: the spec puts its home at {home}",
                id_of(e)
            );
            wrapped += u64::from(b < home);
        }
    }
    assert!(
        wrapped > 0,
        "some crowded entry wrapped to the first buckets"
    );
    assert_ne!(overflow(buckets - 1), 0, "the last bucket overflows");

    // The spec's lookup walk finds every event of the window by its key.
    let lookup = |ev: &Event| {
        let tag = ev.content_hash() >> 32;
        let mut b = spec_home_bucket(ev, buckets);
        for _ in 0..buckets {
            if let Some(e) = (0..8)
                .map(|s| entry(b, s))
                .find(|&e| live(e) && e >> 32 == tag)
            {
                return Some(id_of(e));
            }
            if overflow(b) == 0 {
                return None;
            }
            b = (b + 1) % buckets;
        }
        None
    };
    for id in newest + 1 - CAPACITY..=newest {
        let ev = &events[usize::try_from(id - 1).unwrap()];
        assert_eq!(lookup(ev), Some(id), "event {id}");
    }
}
