//! Drawing a [`Snapshot`] and the [`Ui`] state with ratatui: a header line, then the
//! capture pane beside the learning pane, the live tail, and the storage and health pane;
//! overlays for help and the type picker. Drawing reads only its arguments, so equal
//! arguments draw the same screen.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Sparkline};
use ratatui::Frame;

use super::app::{Mode, Pane, Ui};
use super::collect::Snapshot;
use super::{plain, show};

/// Colours on, or only bold and reverse (`NO_COLOR`).
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    /// Whether colours are allowed.
    pub color: bool,
}

impl Palette {
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }
}

/// Terminal height from which the storage and health pane shows all its rows.
const STORAGE_FULL_FROM: u16 = 32;

/// The keys, for the help overlay.
const HELP: &[(&str, &str)] = &[
    ("q, Esc", "quit (Esc first closes an overlay or a prompt)"),
    ("Tab, Shift-Tab", "move between panes"),
    ("Up, Down, PgUp, PgDn, Home", "scroll the focused pane"),
    (
        "/",
        "filter the live tail by text (Enter applies, empty clears)",
    ),
    ("t", "filter the live tail by event type"),
    ("c", "clear the tail's filters"),
    (
        "v",
        "verify the store now (reads every frame, in the background)",
    ),
    ("?", "this help; any key closes it"),
];

/// Draws everything.
pub fn draw(f: &mut Frame<'_>, s: &Snapshot, ui: &Ui, palette: Palette) {
    // On a short terminal the storage pane keeps its first three rows (writer first; the
    // rest scroll) so the tail keeps room.
    let storage_height = if f.area().height >= STORAGE_FULL_FROM {
        9
    } else {
        5
    };
    let [header, top, tail, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Percentage(40),
        Constraint::Min(4),
        Constraint::Length(storage_height),
    ])
    .areas(f.area());
    draw_header(f, header, s, ui, palette);
    let [capture, learning] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(top);
    draw_capture(f, capture, s, ui, palette);
    draw_learning(f, learning, s, ui, palette);
    draw_tail(f, tail, s, ui, palette);
    draw_storage(f, bottom, s, ui, palette);
    match &ui.mode {
        Mode::Help => draw_help(f, palette),
        Mode::Type(at) => draw_types(f, s, *at, palette),
        Mode::Normal | Mode::Text(_) => {}
    }
}

fn pane_block(title: &str, pane: Pane, ui: &Ui, palette: Palette) -> Block<'static> {
    let focused = ui.focus == pane;
    let style = if focused {
        palette.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    Block::bordered()
        .title(Span::styled(format!(" {title} "), style))
        .border_style(style)
}

fn draw_header(f: &mut Frame<'_>, area: Rect, s: &Snapshot, ui: &Ui, palette: Palette) {
    let line = if let Mode::Text(text) = &ui.mode {
        Line::from(vec![
            Span::styled(
                " filter tail by text: ",
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!("{text}▏")),
            Span::raw("   (Enter applies, Esc cancels, empty clears)"),
        ])
    } else if let Some(e) = &s.error {
        Line::from(Span::styled(
            format!(" selflog: {e} (retrying every second)"),
            palette.fg(Color::Red).add_modifier(Modifier::BOLD),
        ))
    } else if let Some(w) = s.warnings.first() {
        Line::from(Span::styled(
            format!(" warning: {w}; run `selflog inspect verify`"),
            palette.fg(Color::Red),
        ))
    } else {
        Line::from(vec![
            Span::styled(
                " selflog dashboard ",
                Style::new().add_modifier(Modifier::REVERSED),
            ),
            Span::raw(format!(" {}", s.dir.display())),
            Span::styled(
                "   q quit  Tab pane  / text  t type  v verify  ? help",
                palette.fg(Color::DarkGray),
            ),
        ])
    };
    f.render_widget(Paragraph::new(line), area);
}

fn draw_capture(f: &mut Frame<'_>, area: Rect, s: &Snapshot, ui: &Ui, palette: Palette) {
    let block = pane_block("capture", Pane::Capture, ui, palette);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let spark_height = if inner.height >= 12 { 3 } else { 2 };
    let [figures, spark, types] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(spark_height),
        Constraint::Min(0),
    ])
    .areas(inner);
    let ids = s
        .ids
        .map_or_else(String::new, |(a, b)| format!("  ids {a}..{b}"));
    let appended = s
        .appended_per_second
        .map_or_else(|| "-".to_owned(), show::rate);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let lines = vec![
        Line::from(vec![
            Span::raw("events "),
            Span::styled(s.total_events.to_string(), bold),
            Span::raw(ids),
        ]),
        // Short lines, so that they fit the pane in 80 columns.
        Line::from(format!(
            "now {}  last min {}  hour {}",
            show::rate(s.rates.now),
            show::rate(s.rates.minute),
            show::rate(s.rates.hour)
        )),
        Line::from(format!("appended {appended} (commits seen here)")),
        Line::from(format!(
            "last hour: {} events; per minute:",
            s.rates.events_last_hour
        )),
    ];
    f.render_widget(Paragraph::new(lines), figures);
    // The newest minutes are at the right; a pane narrower than the hour shows the newest.
    let per_minute = &s.rates.per_minute;
    let shown = per_minute.len().min(usize::from(spark.width));
    f.render_widget(
        Sparkline::default()
            .data(&per_minute[per_minute.len() - shown..])
            .style(palette.fg(Color::Cyan)),
        spark,
    );
    let width = s
        .by_type
        .iter()
        .map(|(t, _)| t.chars().count())
        .max()
        .unwrap_or(0)
        .min(24);
    let max = s.by_type.first().map_or(0, |(_, n)| *n);
    let bar_width = usize::from(types.width).saturating_sub(width + 22);
    let mut lines = vec![Line::styled("events by type", bold)];
    for (t, n) in &s.by_type {
        lines.push(Line::from(vec![
            Span::raw(format!(
                "{:<width$} {n:>10} {:>6} ",
                show::one_line(t, width),
                show::share(*n, s.total_events)
            )),
            Span::styled(show::bar(*n, max, bar_width), palette.fg(Color::Green)),
        ]));
    }
    f.render_widget(
        Paragraph::new(lines).scroll((ui.scroll_of(Pane::Capture), 0)),
        types,
    );
}

fn draw_learning(f: &mut Frame<'_>, area: Rect, s: &Snapshot, ui: &Ui, palette: Palette) {
    let block = pane_block("learning", Pane::Learning, ui, palette);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::styled("patterns by type", bold)];
    match &s.patterns {
        Ok(types) if types.is_empty() => lines.push(Line::from("  none recorded")),
        Ok(types) => {
            let total: u64 = types.iter().map(|(_, n)| n).sum();
            lines.push(Line::from(format!("  {total} in all")));
            for (t, n) in types {
                lines.push(Line::from(format!("  {t:<24} {n:>10}")));
            }
        }
        Err(why) => lines.push(Line::from(format!("  unavailable: {why}"))),
    }
    lines.push(Line::styled("newest stats record", bold));
    match &s.gauges {
        Ok(Some(g)) => {
            lines.push(Line::from(format!(
                "  active embryos  {}",
                g.active_embryos
            )));
            lines.push(Line::from(format!(
                "  average fitness {:.3}",
                g.avg_fitness
            )));
            lines.push(Line::from(format!(
                "  recorded        {}",
                crate::time::display(g.timestamp)
            )));
        }
        Ok(None) => lines.push(Line::from("  none yet")),
        Err(why) => lines.push(Line::from(format!("  unavailable: {why}"))),
    }
    lines.push(Line::styled("cursors (lag: events after it)", bold));
    for c in &s.cursors {
        lines.push(Line::from(format!(
            "  {:<20} at {:>10}  lag {:>10}",
            c.name, c.position, c.lag
        )));
    }
    for (name, why) in &s.cursors_damaged {
        lines.push(Line::styled(
            format!("  {name:<20} DAMAGED: {why}"),
            palette.fg(Color::Red),
        ));
    }
    if s.cursors.is_empty() && s.cursors_damaged.is_empty() {
        lines.push(Line::from("  none"));
    }
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .scroll((ui.scroll_of(Pane::Learning), 0)),
        area,
    );
}

fn draw_tail(f: &mut Frame<'_>, area: Rect, s: &Snapshot, ui: &Ui, palette: Palette) {
    let title = format!("live tail, newest first{}", plain::filter_note(s));
    let block = pane_block(&title, Pane::Tail, ui, palette);
    let width = usize::from(area.width.saturating_sub(2));
    let lines: Vec<Line> = if s.tail.is_empty() {
        vec![Line::from(
            if s.filter == super::collect::TailFilter::default() {
                "no events yet"
            } else {
                "no event matches the filter (c clears it)"
            },
        )]
    } else {
        s.tail
            .iter()
            .map(|e| Line::from(show::one_line(&plain::tail_row(e, width), width)))
            .collect()
    };
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .scroll((ui.scroll_of(Pane::Tail), 0)),
        area,
    );
}

fn draw_storage(f: &mut Frame<'_>, area: Rect, s: &Snapshot, ui: &Ui, palette: Palette) {
    let block = pane_block("storage and health", Pane::Storage, ui, palette);
    let lines: Vec<Line> = plain::storage_rows(s)
        .into_iter()
        .map(|(label, value)| {
            let style = match label {
                "writer" if matches!(s.writer, super::health::Writer::Alive { .. }) => {
                    palette.fg(Color::Green)
                }
                "last verify" if value.starts_with("DAMAGED") || value.starts_with("failed") => {
                    palette.fg(Color::Red)
                }
                _ => Style::new(),
            };
            Line::from(vec![
                Span::styled(
                    format!("{label:<13}"),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::styled(value, style),
            ])
        })
        .collect();
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .scroll((ui.scroll_of(Pane::Storage), 0)),
        area,
    );
}

/// A rectangle of at most `width` x `height` in the middle of `area`.
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn draw_help(f: &mut Frame<'_>, palette: Palette) {
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:<28}"), palette.fg(Color::Yellow)),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(
        "Rates count events by their timestamps; \"appended\" is what this dashboard saw committed.",
    ));
    lines.push(Line::from(
        "Read-only: the dashboard never takes the writer's lock and changes nothing.",
    ));
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    let area = centered(f.area(), 100, height);
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" help: keys ")),
        area,
    );
}

fn draw_types(f: &mut Frame<'_>, s: &Snapshot, at: usize, palette: Palette) {
    let mut names = vec!["(all types)".to_owned()];
    names.extend(s.by_type.iter().map(|(t, n)| format!("{t} ({n})")));
    let height = u16::try_from(names.len() + 2).unwrap_or(u16::MAX).min(20);
    let area = centered(f.area(), 50, height);
    // Keep the chosen row in view.
    let visible = usize::from(area.height.saturating_sub(2)).max(1);
    let first = at.saturating_sub(visible - 1);
    let lines: Vec<Line> = names
        .iter()
        .enumerate()
        .skip(first)
        .map(|(i, name)| {
            if i == at {
                Line::styled(
                    format!("> {name}"),
                    palette
                        .fg(Color::Yellow)
                        .add_modifier(Modifier::REVERSED | Modifier::BOLD),
                )
            } else {
                Line::from(format!("  {name}"))
            }
        })
        .collect();
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" tail by type: Up/Down, Enter, Esc ")),
        area,
    );
}
