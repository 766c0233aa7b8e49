//! How the dashboard writes values for people, shared by the terminal UI (`view.rs`) and
//! the plain-text snapshot (`plain.rs`) so the two always agree (times are
//! `crate::time::display`'s): ages, rates, ratios, sparklines and bars.

use std::time::Duration;

/// An age for people, coarse enough that an idle dashboard changes rarely: seconds under
/// a minute, then minutes, hours, days.
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3_600 => format!("{} min", s / 60),
        3_600..86_400 => format!("{} h", s / 3_600),
        _ => format!("{} d", s / 86_400),
    }
}

/// A rate in events per second: two decimals under 100, none above.
pub fn rate(r: f64) -> String {
    if r < 100.0 {
        format!("{r:.2}/s")
    } else {
        format!("{r:.0}/s")
    }
}

/// Block characters of a sparkline, lowest first.
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// `values` as one character each, scaled to the largest; a zero is a space.
pub fn sparkline(values: &[u64]) -> String {
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            if v == 0 || max == 0 {
                ' '
            } else {
                // 1..=8 eighths of the largest value, rounded up so a small count shows.
                let eighths = (v * 8).div_ceil(max).clamp(1, 8);
                SPARKS[(eighths - 1) as usize]
            }
        })
        .collect()
}

/// Eighth-blocks of a horizontal bar, thinnest first.
const BAR_PARTS: [char; 7] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/// A horizontal bar `width` cells long at most, `value / max` of it filled, in eighths of a
/// cell; at least a sliver for a nonzero value.
pub fn bar(value: u64, max: u64, width: usize) -> String {
    if max == 0 || width == 0 || value == 0 {
        return String::new();
    }
    let eighths_total = width as u128 * 8;
    let eighths = (u128::from(value) * eighths_total / u128::from(max)).max(1) as usize;
    let mut out = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        out.push(BAR_PARTS[eighths % 8 - 1]);
    }
    out
}

/// `text` on one line of at most `width` characters: control characters become spaces and
/// a cut is marked with `…`.
pub fn one_line(text: &str, width: usize) -> String {
    let mut out = String::new();
    if width == 0 {
        return out;
    }
    let mut chars = text.chars().peekable();
    let mut n = 0;
    while let Some(c) = chars.next() {
        if n + 1 >= width && chars.peek().is_some() {
            out.push('…');
            return out;
        }
        out.push(if c.is_control() { ' ' } else { c });
        n += 1;
    }
    out
}

/// A share in percent of `total`, one decimal.
#[expect(clippy::cast_precision_loss, reason = "a share for display")]
pub fn share(n: u64, total: u64) -> String {
    if total == 0 {
        "0.0%".to_owned()
    } else {
        format!("{:.1}%", n as f64 * 100.0 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_coarse_past_a_minute() {
        assert_eq!(age(Duration::from_secs(59)), "59 s");
        assert_eq!(age(Duration::from_secs(61)), "1 min");
        assert_eq!(age(Duration::from_hours(2)), "2 h");
        assert_eq!(age(Duration::from_secs(200_000)), "2 d");
    }

    #[test]
    fn sparkline_scales_to_the_largest_and_shows_small_counts() {
        assert_eq!(sparkline(&[0, 1, 8, 100]), " ▁▁█");
        assert_eq!(sparkline(&[0, 0]), "  ");
        assert_eq!(sparkline(&[]), "");
    }

    #[test]
    fn bars_fill_eighths_and_never_vanish() {
        assert_eq!(bar(10, 10, 3), "███");
        assert_eq!(bar(1, 16, 1), "▏");
        assert_eq!(bar(1, 1_000_000, 10), "▏");
        assert_eq!(bar(0, 10, 10), "");
        assert_eq!(bar(5, 10, 3), "█▌");
    }

    #[test]
    fn one_line_cuts_with_an_ellipsis_and_flattens_control_characters() {
        assert_eq!(one_line("a\nb", 10), "a b");
        assert_eq!(one_line("abcdef", 4), "abc…");
        assert_eq!(one_line("abcd", 4), "abcd");
        assert_eq!(one_line("abc", 0), "");
    }
}
