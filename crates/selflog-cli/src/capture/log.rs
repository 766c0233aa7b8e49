//! What the daemon says while it runs, on stderr: on a terminal, one live status line
//! redrawn in place, with messages printed above it; in a pipe or under a service manager,
//! plain lines, each with its UTC time, and a progress line every stats interval instead of
//! the status line.

use std::io::{IsTerminal as _, Write as _};

/// The daemon's stderr.
pub struct Log {
    tty: bool,
    /// A status line is on the screen and must be cleared before other output.
    drawn: bool,
}

impl Log {
    /// A log on stderr, live when stderr is a terminal.
    pub fn new() -> Log {
        Log {
            tty: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// Whether stderr is a terminal (a live status line is drawn).
    pub fn is_live(&self) -> bool {
        self.tty
    }

    /// An informational line.
    pub fn info(&mut self, message: &str) {
        self.line(&format!("capture: {message}"));
    }

    /// A warning line.
    pub fn warn(&mut self, message: &str) {
        self.line(&format!("selflog: warning: capture: {message}"));
    }

    fn line(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        // A closed stderr must not stop the capture; there is nowhere left to say so.
        if self.tty {
            if self.drawn {
                let _ = write!(err, "\r\x1b[2K");
                self.drawn = false;
            }
            let _ = writeln!(err, "{text}");
        } else {
            let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
            let _ = writeln!(err, "{now} {text}");
        }
    }

    /// Redraws the status line (terminal only), cut to the terminal's width.
    pub fn status(&mut self, text: &str) {
        if !self.tty {
            return;
        }
        let width = terminal_size::terminal_size_of(std::io::stderr())
            .map_or(100, |(w, _)| usize::from(w.0))
            .saturating_sub(1);
        let shown: String = text.chars().take(width).collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{shown}");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Clears the status line before the summary.
    pub fn clear(&mut self) {
        if self.tty && self.drawn {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            self.drawn = false;
        }
    }
}
