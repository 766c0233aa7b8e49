//! The collector against a real store written in this process: the figures a snapshot
//! holds are the store's own (`Store::stats`, the pattern and stats streams, cursors), the
//! tail and the rates follow new commits, and the filters choose the tail.

use std::time::Duration;

use selflog::{Config, Event, EventId, NewPattern, Store, SystemStats, Timestamp};

use super::collect::{Collector, TailFilter, TAIL_LEN};
use super::health::Writer;
use super::plain;

fn event(t: Timestamp, event_type: &str, source: &str, n: u64) -> Event {
    Event::new(t, event_type, None, source, Some(&format!("{{\"n\":{n}}}"))).unwrap()
}

/// A store with `n` events stamped now (one a second back from now), `file_op` for even
/// numbers and `app_launch` for odd ones.
fn store_with(n: u64) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s"), Config::default()).unwrap();
    let now = Timestamp::now();
    for i in 0..n {
        let t = now.saturating_sub(Duration::from_secs(i));
        let ty = if i % 2 == 0 { "file_op" } else { "app_launch" };
        store.append(event(t, ty, "Finder", i)).unwrap();
    }
    store.flush().unwrap();
    (dir, store)
}

#[test]
fn a_snapshot_holds_the_stores_own_totals() {
    let (_dir, store) = store_with(100);
    let mut c = Collector::open(store.dir()).unwrap();
    let s = c.sample();
    assert_eq!(s.error, None);
    let stats = store.stats().unwrap();
    assert_eq!(s.total_events, stats.total_events);
    assert_eq!(s.total_events, 100);
    assert_eq!(s.ids, Some((EventId(1), EventId(100))));
    assert_eq!(
        s.by_type,
        [("app_launch".to_owned(), 50), ("file_op".to_owned(), 50)]
    );
    assert_eq!(s.storage.segments, stats.segments);
    assert_eq!(s.storage.disk_bytes, stats.disk_bytes);
    assert_eq!(s.storage.duplicates_dropped, Ok(0));
    // This process holds the writer's lock.
    assert_eq!(
        s.writer,
        Writer::Alive {
            pid: std::process::id()
        }
    );
    assert!(s.last_commit.is_some());
}

#[test]
fn rates_count_events_by_their_timestamps() {
    let (_dir, store) = store_with(100);
    // Old events count in the totals, not in the rates.
    let old = Timestamp::now().saturating_sub(Duration::from_hours(2));
    store.append(event(old, "idle", "x", 0)).unwrap();
    store.flush().unwrap();
    let mut c = Collector::open(store.dir()).unwrap();
    let s = c.sample();
    assert_eq!(s.total_events, 101);
    assert_eq!(s.rates.events_last_hour, 100);
    assert_eq!(
        s.rates.events_last_hour,
        store
            .query()
            .since(Timestamp::now().saturating_sub(Duration::from_hours(1)))
            .count()
            .unwrap(),
        "the hour's count is `inspect stats`'s"
    );
    assert!((s.rates.hour - 100.0 / 3600.0).abs() < 1e-9);
    // 10 or 11 of the events stamped a second apart fall in the last 10 s, by rounding
    // to whole seconds; 60 or 61 in the last minute.
    assert!((1.0..=1.1).contains(&s.rates.now), "{}", s.rates.now);
    assert!((1.0..=61.0 / 60.0).contains(&s.rates.minute));
    assert_eq!(s.rates.per_minute.len(), 60);
    assert_eq!(s.rates.per_minute.iter().sum::<u64>(), 100);
    assert!(s.rates.per_minute[59] >= 59, "{:?}", s.rates.per_minute);
}

#[test]
fn new_commits_reach_the_totals_the_rates_and_the_tail() {
    let (_dir, store) = store_with(10);
    let mut c = Collector::open(store.dir()).unwrap();
    let first = c.sample();
    assert_eq!(first.tail.len(), 10);
    assert_eq!(
        first.tail[0].id,
        EventId(10),
        "newest (last committed) first"
    );
    // Nothing changed, so nothing differs: two samples within the same second (ages and
    // rate windows move with the clock) are equal, and the screen is not redrawn.
    let mut prev = c.sample();
    let same = (0..5).any(|_| {
        let next = c.sample();
        let equal = next == prev;
        prev = next;
        equal
    });
    assert!(same, "samples of an unchanged store differ: {prev:?}");
    assert_eq!(prev.tail, first.tail);
    let now = Timestamp::now();
    for i in 0..5 {
        store
            .append(event(now, "clipboard", "Terminal", 100 + i))
            .unwrap();
    }
    store.flush().unwrap();
    let second = c.sample();
    assert_ne!(second, first);
    assert_eq!(second.total_events, 15);
    assert_eq!(second.rates.events_last_hour, 15);
    let ids: Vec<u64> = second.tail.iter().map(|e| e.id.0).collect();
    assert_eq!(ids, (1..=15).rev().collect::<Vec<_>>());
    assert_eq!(
        second.appended_per_second, None,
        "samples less than 1 s apart"
    );
}

#[test]
fn the_tail_keeps_the_newest_events_by_id_whatever_their_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s"), Config::default()).unwrap();
    let now = Timestamp::now();
    let n = TAIL_LEN as u64 + 50;
    // Stamped further back the later they are appended (a backfill).
    for i in 0..n {
        let t = now.saturating_sub(Duration::from_secs(i));
        store.append(event(t, "file_op", "Finder", i)).unwrap();
    }
    store.flush().unwrap();
    let mut c = Collector::open(store.dir()).unwrap();
    let s = c.sample();
    assert_eq!(s.tail.len(), TAIL_LEN);
    assert_eq!(s.tail[0].id, EventId(n));
    assert_eq!(s.tail[TAIL_LEN - 1].id, EventId(n - TAIL_LEN as u64 + 1));
}

#[test]
fn filters_choose_the_tail_by_text_and_type() {
    let (_dir, store) = store_with(20);
    let now = Timestamp::now();
    store
        .append(event(now, "file_op", "Google Chrome", 1_000))
        .unwrap();
    store.flush().unwrap();
    let mut c = Collector::open(store.dir()).unwrap();
    c.sample();
    c.set_filter(TailFilter {
        text: Some("CHROME".into()),
        event_type: None,
    });
    let s = c.sample();
    let ids: Vec<u64> = s.tail.iter().map(|e| e.id.0).collect();
    assert_eq!(ids, [21], "ASCII case-insensitive, like inspect search");
    c.set_filter(TailFilter {
        text: None,
        event_type: Some("app_launch".into()),
    });
    let s = c.sample();
    assert_eq!(s.tail.len(), 10);
    assert!(s.tail.iter().all(|e| e.event_type == "app_launch"));
    // New matching events come in on top; others do not.
    store
        .append(event(now, "app_launch", "Dock", 2_000))
        .unwrap();
    store.append(event(now, "file_op", "Dock", 2_001)).unwrap();
    store.flush().unwrap();
    let s = c.sample();
    assert_eq!(s.tail.len(), 11);
    assert_eq!(s.tail[0].id, EventId(22));
    assert!(plain::render(&s).contains("(filter: type app_launch)"));
    c.set_filter(TailFilter {
        text: Some("no such text".into()),
        event_type: None,
    });
    assert!(c.sample().tail.is_empty());
}

#[test]
fn learning_shows_patterns_by_type_the_newest_gauges_and_cursor_lag() {
    let (_dir, store) = store_with(30);
    for (ty, n) in [("burst", 3), ("routine", 1)] {
        for i in 0..n {
            store
                .record_pattern(&NewPattern::new(ty, 0.5, format!("{{\"i\":{i}}}")))
                .unwrap();
        }
    }
    for embryos in [2, 7] {
        store
            .record_system_stats(&SystemStats {
                timestamp: Timestamp::now(),
                total_events: 30,
                events_per_second: 1.0,
                active_embryos: embryos,
                avg_fitness: 0.25,
                storage_mb: 1.0,
            })
            .unwrap();
    }
    store
        .cursor("learner")
        .unwrap()
        .commit(EventId(12))
        .unwrap();
    store.flush().unwrap();
    let mut c = Collector::open(store.dir()).unwrap();
    let s = c.sample();
    assert_eq!(
        s.patterns,
        Ok(vec![("burst".to_owned(), 3), ("routine".to_owned(), 1)])
    );
    let g = s.gauges.clone().unwrap().expect("a stats record");
    assert_eq!((g.active_embryos, g.avg_fitness), (7, 0.25));
    assert_eq!(s.cursors.len(), 1);
    assert_eq!((s.cursors[0].position, s.cursors[0].lag), (12, 18));
    let text = plain::render(&s);
    assert!(text.contains("4 (burst 3, routine 1)"), "{text}");
    assert!(
        text.contains("active embryos 7, average fitness 0.250"),
        "{text}"
    );
    // The cursor moves: its lag follows.
    store
        .cursor("learner")
        .unwrap()
        .commit(EventId(30))
        .unwrap();
    assert_eq!(c.sample().cursors[0].lag, 0);
}

#[test]
fn a_store_that_goes_away_is_an_error_in_the_snapshot_not_a_crash() {
    let (dir, store) = store_with(5);
    let mut c = Collector::open(store.dir()).unwrap();
    assert_eq!(c.sample().total_events, 5);
    drop(store);
    std::fs::remove_dir_all(dir.path().join("s")).unwrap();
    let s = c.sample();
    assert!(s.error.is_some(), "{s:?}");
    assert_eq!(s.total_events, 5, "the last figures stay on screen");
}

#[test]
fn verify_reports_a_sound_store() {
    let (_dir, store) = store_with(5);
    let mut c = Collector::open(store.dir()).unwrap();
    c.verify_now();
    let s = c.sample();
    let v = s.verified.clone().unwrap().unwrap();
    assert_eq!((v.problems, v.events), (0, 5));
    assert!(plain::verify_line(&s).starts_with("sound at "));
}

/// The screen `view::draw` makes of `s` and `ui` on a `width` x `height` terminal, as lines.
fn drawn(
    s: &super::collect::Snapshot,
    ui: &super::app::Ui,
    width: u16,
    height: u16,
) -> Vec<String> {
    let backend = ratatui::backend::TestBackend::new(width, height);
    let mut terminal = ratatui::Terminal::new(backend).unwrap();
    terminal
        .draw(|f| super::view::draw(f, s, ui, super::view::Palette { color: false }))
        .unwrap();
    let buffer = terminal.backend().buffer();
    buffer
        .content
        .chunks(usize::from(width))
        .map(|row| row.iter().map(ratatui::buffer::Cell::symbol).collect())
        .collect()
}

#[test]
fn every_size_and_overlay_draws_without_panicking() {
    use super::app::{Mode, Ui};
    let (_dir, store) = store_with(30);
    let s = Collector::open(store.dir()).unwrap().sample();
    for mode in [
        Mode::Normal,
        Mode::Help,
        Mode::Type(2),
        Mode::Text("abc".into()),
    ] {
        let ui = Ui {
            mode: mode.clone(),
            ..Ui::default()
        };
        for (w, h) in [(1, 1), (2, 3), (10, 4), (30, 8), (80, 24), (250, 70)] {
            let lines = drawn(&s, &ui, w, h);
            assert_eq!(lines.len(), usize::from(h), "{mode:?} at {w}x{h}");
        }
    }
}

#[test]
fn a_narrow_sparkline_keeps_the_newest_minutes() {
    // Events stamped now are in the hour's last minute: its bar is the rightmost one, which
    // a pane narrower than 60 columns must still show.
    let (_dir, store) = store_with(30);
    let s = Collector::open(store.dir()).unwrap().sample();
    let lines = drawn(&s, &super::app::Ui::default(), 80, 24);
    let capture_right = lines[1]
        .chars()
        .position(|c| c == '┐')
        .expect("the capture pane's corner");
    let bars: Vec<char> = lines
        .iter()
        .filter_map(|l| l.chars().nth(capture_right - 1))
        .filter(|c| "▁▂▃▄▅▆▇█".contains(*c))
        .collect();
    assert!(
        !bars.is_empty(),
        "no bar at the right:\n{}",
        lines.join("\n")
    );
    let all = lines.join("\n");
    assert!(all.contains("events 30"), "{all}");
    assert!(all.contains("now "), "{all}");
}
