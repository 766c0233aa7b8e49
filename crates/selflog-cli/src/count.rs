//! `selflog inspect count [--by type|source|action|hour|day] [filters] [--json]`: how many
//! events match, or how many per group with a histogram bar each, like `GROUP BY` in
//! sqlite3.
//!
//! Groups by name are sorted by count, largest first (ties by name); hours and days
//! chronologically, in the display's zone (local, or UTC with `--utc`), empty ones left out.
//! Events without an action count in the group `-` (`null` in JSON).

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::path::Path;
use std::time::Duration;

use selflog::{Field, Timestamp};

use crate::filter::FilterArgs;
use crate::{output, time, Outcome};

/// Width of the time buckets read from the store before they are folded into hours or days
/// of the display's zone: every zone's offset from UTC is a multiple of 15 minutes.
const QUARTER_HOUR: Duration = Duration::from_mins(15);

/// Longest histogram bar, in characters; in a pipe every bar scales to this.
const BAR_LEN_MAX: usize = 50;

/// What `--by` groups by.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// The event type.
    Type,
    /// The source.
    Source,
    /// The action (`-` for events without one).
    Action,
    /// The hour of the timestamp.
    Hour,
    /// The day of the timestamp.
    Day,
}

impl By {
    fn name(self) -> &'static str {
        match self {
            By::Type => "type",
            By::Source => "source",
            By::Action => "action",
            By::Hour => "hour",
            By::Day => "day",
        }
    }
}

/// One group: its label (`None`: events without an action), the start of its time bucket,
/// and its count.
struct Group {
    key: Option<String>,
    start: Option<Timestamp>,
    count: u64,
}

pub fn run(store_dir: &Path, filter: &FilterArgs, by: Option<By>, json: bool) -> Outcome {
    let store = crate::open_read_only(store_dir)?;
    let q = filter.query(store)?;
    let total = q.clone().count()?;
    let w = |e: io::Error| output::write_err(&e);
    let mut out = io::BufWriter::new(io::stdout().lock());
    let Some(by) = by else {
        if json {
            writeln!(out, "{}", serde_json::json!({ "total": total })).map_err(w)?;
        } else {
            writeln!(out, "{total}").map_err(w)?;
        }
        out.flush().map_err(w)?;
        return Ok(0);
    };
    let groups: Vec<Group> = match by {
        By::Type | By::Source | By::Action => {
            let field = match by {
                By::Type => Field::EventType,
                By::Source => Field::Source,
                _ => Field::Action,
            };
            let counts = q.counts_by(field)?;
            let named: u64 = counts.values().sum();
            let mut groups: Vec<Group> = counts
                .into_iter()
                .map(|(key, count)| Group {
                    key: Some(key),
                    start: None,
                    count,
                })
                .collect();
            if total > named {
                groups.push(Group {
                    key: None,
                    start: None,
                    count: total - named,
                });
            }
            groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
            groups
        }
        By::Hour | By::Day => {
            let mut buckets: BTreeMap<Timestamp, (String, u64)> = BTreeMap::new();
            for (start, n) in q.histogram(QUARTER_HOUR)? {
                let (start, label) = time::bucket(start, by == By::Day);
                buckets.entry(start).or_insert((label, 0)).1 += n;
            }
            buckets
                .into_iter()
                .map(|(start, (label, count))| Group {
                    key: Some(label),
                    start: Some(start),
                    count,
                })
                .collect()
        }
    };
    if json {
        let rows: Vec<serde_json::Value> = groups
            .iter()
            .map(|g| {
                let mut row = serde_json::json!({ by.name(): g.key, "count": g.count });
                if let Some(start) = g.start {
                    row["start"] = output::secs(start);
                }
                row
            })
            .collect();
        let v = serde_json::json!({"by": by.name(), "total": total, "counts": rows});
        writeln!(out, "{v}").map_err(w)?;
    } else {
        out.write_all(table(by, &groups, total).as_bytes())
            .map_err(w)?;
    }
    out.flush().map_err(w)?;
    Ok(0)
}

/// The groups as aligned rows with a share and a bar, then the total.
fn table(by: By, groups: &[Group], total: u64) -> String {
    let label = |g: &Group| g.key.clone().unwrap_or_else(|| "-".to_owned());
    let header = by.name().to_ascii_uppercase();
    let key_width = groups
        .iter()
        .map(|g| label(g).chars().count())
        .chain([header.len(), "total".len()])
        .max()
        .unwrap_or(0);
    let count_width = total.to_string().len().max("COUNT".len());
    let used = key_width + 2 + count_width + 2 + 6 + 2;
    let bar_len = match output::terminal_width() {
        Some(w) if output::stdout_is_terminal() => {
            w.saturating_sub(used + 1).clamp(10, BAR_LEN_MAX)
        }
        _ => BAR_LEN_MAX,
    };
    let largest = groups.iter().map(|g| g.count).max().unwrap_or(0);
    let tty = output::stdout_is_terminal();
    let mut text = String::new();
    let head = format!(
        "{header:<key_width$}  {:>count_width$}  {:>6}",
        "COUNT", "SHARE"
    );
    if output::colour(tty) {
        text.push_str(&format!("\x1b[1m{head}\x1b[0m\n"));
    } else {
        text.push_str(&head);
        text.push('\n');
    }
    for g in groups {
        #[expect(clippy::cast_precision_loss, reason = "a share for display")]
        let share = g.count as f64 * 100.0 / total.max(1) as f64;
        text.push_str(&format!(
            "{:<key_width$}  {:>count_width$}  {share:>5.1}%  {}\n",
            label(g),
            g.count,
            bar(g.count, largest, bar_len)
        ));
    }
    text.push_str(&format!("{:<key_width$}  {total:>count_width$}\n", "total"));
    text
}

/// A bar of `len_max` characters for `largest`, proportionally shorter for `n`, in eighths
/// of a character; at least one eighth for any `n` above zero.
fn bar(n: u64, largest: u64, len_max: usize) -> String {
    const EIGHTHS: [char; 8] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];
    if n == 0 || largest == 0 {
        return String::new();
    }
    let eighths = (u128::from(n) * len_max as u128 * 8 / u128::from(largest)).max(1);
    let eighths = usize::try_from(eighths).unwrap_or(len_max * 8);
    let mut s = "█".repeat(eighths / 8);
    if eighths % 8 > 0 {
        s.push(EIGHTHS[eighths % 8 - 1]);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn bars_scale_to_the_largest_group() {
        assert_eq!(bar(10, 10, 4), "████");
        assert_eq!(bar(5, 10, 4), "██");
        assert_eq!(bar(1, 8, 4), "▌");
        assert_eq!(bar(1, 1_000_000, 4), "▏", "never invisible");
        assert_eq!(bar(0, 10, 4), "");
    }
}
