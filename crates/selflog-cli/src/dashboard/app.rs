//! The dashboard's interaction state: which pane has the focus, what overlay is open, and
//! what each key does. Pure state and no I/O, so every key binding is tested here.
//!
//! Keys: `q` or Esc quits (Esc first closes an overlay), Ctrl-C quits, Tab and Shift-Tab move
//! between panes, arrows and Page Up/Down scroll the focused pane, `/` edits the tail's
//! text filter, `t` picks its type, `c` clears both filters, `v` runs verify, `?` shows help.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::collect::TailFilter;

/// The panes, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    /// Totals, rates, sparkline, events by type.
    Capture,
    /// The newest events.
    Tail,
    /// Patterns, gauges, cursors.
    Learning,
    /// Files, writer, verify.
    Storage,
}

/// Panes in Tab order.
const PANES: [Pane; 4] = [Pane::Capture, Pane::Tail, Pane::Learning, Pane::Storage];

/// What the keyboard is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Keys are commands.
    Normal,
    /// Typing the tail's text filter (the text so far).
    Text(String),
    /// Choosing the tail's type: the index into `(all types)` followed by the types.
    Type(usize),
    /// The help overlay.
    Help,
}

/// What the main loop should do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing changed.
    Nothing,
    /// The screen changed (focus, overlay, scroll): draw it again.
    Redraw,
    /// Read the tail again with this filter, then draw.
    Filter(TailFilter),
    /// Start `selflog::verify` in the background.
    Verify,
    /// Restore the terminal and exit.
    Quit,
}

/// The interaction state.
#[derive(Debug, Clone)]
pub struct Ui {
    /// The focused pane.
    pub focus: Pane,
    /// The keyboard's mode.
    pub mode: Mode,
    /// Lines each pane is scrolled down by, in `PANES` order.
    pub scroll: [u16; 4],
}

impl Default for Ui {
    fn default() -> Ui {
        Ui {
            focus: Pane::Capture,
            mode: Mode::Normal,
            scroll: [0; 4],
        }
    }
}

impl Ui {
    /// How far `pane` is scrolled.
    pub fn scroll_of(&self, pane: Pane) -> u16 {
        self.scroll[index(pane)]
    }

    /// Handles one key press. `filter` is the tail's filter now; `types` the event types
    /// the type picker offers, in its order.
    pub fn key(&mut self, key: KeyEvent, filter: &TailFilter, types: &[String]) -> Action {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        match &mut self.mode {
            Mode::Text(text) => match key.code {
                KeyCode::Enter => {
                    let text = std::mem::take(text);
                    self.mode = Mode::Normal;
                    Action::Filter(TailFilter {
                        text: (!text.is_empty()).then_some(text),
                        event_type: filter.event_type.clone(),
                    })
                }
                KeyCode::Esc => {
                    self.mode = Mode::Normal;
                    Action::Redraw
                }
                KeyCode::Backspace => {
                    text.pop();
                    Action::Redraw
                }
                KeyCode::Char(c) if !c.is_control() => {
                    text.push(c);
                    Action::Redraw
                }
                _ => Action::Nothing,
            },
            Mode::Type(at) => match key.code {
                KeyCode::Up | KeyCode::Char('k') => {
                    *at = at.saturating_sub(1);
                    Action::Redraw
                }
                KeyCode::Down | KeyCode::Char('j') => {
                    *at = (*at + 1).min(types.len());
                    Action::Redraw
                }
                KeyCode::Enter => {
                    let chosen = at.checked_sub(1).and_then(|i| types.get(i)).cloned();
                    self.mode = Mode::Normal;
                    Action::Filter(TailFilter {
                        text: filter.text.clone(),
                        event_type: chosen,
                    })
                }
                KeyCode::Esc => {
                    self.mode = Mode::Normal;
                    Action::Redraw
                }
                KeyCode::Char('q') => Action::Quit,
                _ => Action::Nothing,
            },
            Mode::Help => {
                if key.code == KeyCode::Char('q') {
                    return Action::Quit;
                }
                self.mode = Mode::Normal;
                Action::Redraw
            }
            Mode::Normal => self.command(key, filter, types),
        }
    }

    fn command(&mut self, key: KeyEvent, filter: &TailFilter, types: &[String]) -> Action {
        let focus = index(self.focus);
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
            KeyCode::Tab => {
                self.focus = PANES[(focus + 1) % PANES.len()];
                Action::Redraw
            }
            KeyCode::BackTab => {
                self.focus = PANES[(focus + PANES.len() - 1) % PANES.len()];
                Action::Redraw
            }
            KeyCode::Char('/') => {
                self.mode = Mode::Text(filter.text.clone().unwrap_or_default());
                Action::Redraw
            }
            KeyCode::Char('t') => {
                let at = filter
                    .event_type
                    .as_ref()
                    .and_then(|t| types.iter().position(|x| x == t))
                    .map_or(0, |i| i + 1);
                self.mode = Mode::Type(at);
                Action::Redraw
            }
            KeyCode::Char('c') if filter != &TailFilter::default() => {
                Action::Filter(TailFilter::default())
            }
            KeyCode::Char('v') => Action::Verify,
            KeyCode::Char('?') => {
                self.mode = Mode::Help;
                Action::Redraw
            }
            KeyCode::Down | KeyCode::Char('j') => self.scroll_by(1),
            KeyCode::Up | KeyCode::Char('k') => self.scroll_by(-1),
            KeyCode::PageDown => self.scroll_by(10),
            KeyCode::PageUp => self.scroll_by(-10),
            KeyCode::Home => self.scroll_by(-i32::from(u16::MAX)),
            _ => Action::Nothing,
        }
    }

    fn scroll_by(&mut self, lines: i32) -> Action {
        let s = &mut self.scroll[index(self.focus)];
        let new = (i32::from(*s) + lines).clamp(0, i32::from(u16::MAX));
        let new = u16::try_from(new).unwrap_or(0);
        if new == *s {
            return Action::Nothing;
        }
        *s = new;
        Action::Redraw
    }
}

/// The position of `pane` in Tab order.
fn index(pane: Pane) -> usize {
    PANES.iter().position(|p| *p == pane).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(ui: &mut Ui, code: KeyCode, filter: &TailFilter) -> Action {
        let types = ["app_launch".to_owned(), "file_op".to_owned()];
        ui.key(KeyEvent::new(code, KeyModifiers::NONE), filter, &types)
    }

    #[test]
    fn q_esc_and_ctrl_c_quit() {
        let none = TailFilter::default();
        assert_eq!(
            press(&mut Ui::default(), KeyCode::Char('q'), &none),
            Action::Quit
        );
        assert_eq!(press(&mut Ui::default(), KeyCode::Esc, &none), Action::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(Ui::default().key(ctrl_c, &none, &[]), Action::Quit);
    }

    #[test]
    fn tab_cycles_through_the_panes_both_ways() {
        let none = TailFilter::default();
        let mut ui = Ui::default();
        for want in [Pane::Tail, Pane::Learning, Pane::Storage, Pane::Capture] {
            assert_eq!(press(&mut ui, KeyCode::Tab, &none), Action::Redraw);
            assert_eq!(ui.focus, want);
        }
        press(&mut ui, KeyCode::BackTab, &none);
        assert_eq!(ui.focus, Pane::Storage);
    }

    #[test]
    fn slash_edits_the_text_filter_and_keeps_the_type() {
        let typed = TailFilter {
            text: None,
            event_type: Some("file_op".into()),
        };
        let mut ui = Ui::default();
        press(&mut ui, KeyCode::Char('/'), &typed);
        for c in "chrq".chars() {
            // `q` is text while typing, not quit.
            assert_eq!(press(&mut ui, KeyCode::Char(c), &typed), Action::Redraw);
        }
        press(&mut ui, KeyCode::Backspace, &typed);
        assert_eq!(ui.mode, Mode::Text("chr".into()));
        assert_eq!(
            press(&mut ui, KeyCode::Enter, &typed),
            Action::Filter(TailFilter {
                text: Some("chr".into()),
                event_type: Some("file_op".into())
            })
        );
        assert_eq!(ui.mode, Mode::Normal);
        // An empty text clears it; Esc leaves it as it was.
        press(&mut ui, KeyCode::Char('/'), &typed);
        press(&mut ui, KeyCode::Backspace, &typed);
        assert_eq!(press(&mut ui, KeyCode::Esc, &typed), Action::Redraw);
        assert_eq!(ui.mode, Mode::Normal);
    }

    #[test]
    fn t_picks_a_type_or_all_types() {
        let none = TailFilter::default();
        let mut ui = Ui::default();
        press(&mut ui, KeyCode::Char('t'), &none);
        assert_eq!(ui.mode, Mode::Type(0));
        press(&mut ui, KeyCode::Down, &none);
        press(&mut ui, KeyCode::Down, &none);
        press(&mut ui, KeyCode::Down, &none);
        assert_eq!(ui.mode, Mode::Type(2), "stops at the last type");
        let picked = press(&mut ui, KeyCode::Enter, &none);
        let file_op = TailFilter {
            text: None,
            event_type: Some("file_op".into()),
        };
        assert_eq!(picked, Action::Filter(file_op.clone()));
        // Opened again, it starts on the type chosen; the first row is all types.
        press(&mut ui, KeyCode::Char('t'), &file_op);
        assert_eq!(ui.mode, Mode::Type(2));
        press(&mut ui, KeyCode::Up, &file_op);
        press(&mut ui, KeyCode::Up, &file_op);
        assert_eq!(
            press(&mut ui, KeyCode::Enter, &file_op),
            Action::Filter(TailFilter::default())
        );
    }

    #[test]
    fn help_opens_on_question_mark_and_any_key_closes_it() {
        let none = TailFilter::default();
        let mut ui = Ui::default();
        press(&mut ui, KeyCode::Char('?'), &none);
        assert_eq!(ui.mode, Mode::Help);
        assert_eq!(press(&mut ui, KeyCode::Esc, &none), Action::Redraw);
        assert_eq!(ui.mode, Mode::Normal);
    }

    #[test]
    fn scrolling_moves_the_focused_pane_only_and_stops_at_the_top() {
        let none = TailFilter::default();
        let mut ui = Ui::default();
        assert_eq!(press(&mut ui, KeyCode::Up, &none), Action::Nothing);
        press(&mut ui, KeyCode::Tab, &none);
        press(&mut ui, KeyCode::PageDown, &none);
        assert_eq!(ui.scroll_of(Pane::Tail), 10);
        assert_eq!(ui.scroll_of(Pane::Capture), 0);
        press(&mut ui, KeyCode::Home, &none);
        assert_eq!(ui.scroll_of(Pane::Tail), 0);
    }

    #[test]
    fn c_clears_filters_and_v_asks_for_verify() {
        let typed = TailFilter {
            text: Some("x".into()),
            event_type: None,
        };
        let mut ui = Ui::default();
        assert_eq!(
            press(&mut ui, KeyCode::Char('c'), &typed),
            Action::Filter(TailFilter::default())
        );
        assert_eq!(
            press(&mut ui, KeyCode::Char('c'), &TailFilter::default()),
            Action::Nothing
        );
        assert_eq!(press(&mut ui, KeyCode::Char('v'), &typed), Action::Verify);
    }
}
