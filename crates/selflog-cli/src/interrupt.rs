//! Signals: Ctrl-C (SIGINT) and SIGTERM for the commands that must end cleanly, and
//! SIGXFSZ for every command.
//!
//! A command that writes (`ingest`, `inspect export`) calls [`Interrupt::install`] and checks
//! [`Interrupt::is_set`] between units of work: it stops, keeps or removes what it wrote,
//! says what it did and exits with [`EXIT_INTERRUPTED`]. A second signal while the first is
//! being handled ends the process at once with the same status. Other commands keep the
//! default action, so `replay --follow` still ends on Ctrl-C.
//!
//! Under a file-size limit (`ulimit -f`) the kernel sends SIGXFSZ to a process whose write
//! or allocation would pass it, and the default action kills the process before it can
//! report what it stored. [`survive_file_size_limit`] handles the signal, so the write fails
//! with EFBIG instead, which the store reports as a full disk.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM, SIGXFSZ};

/// Exit status of a command stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report a
/// Ctrl-C).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Whether SIGINT or SIGTERM has arrived since [`Interrupt::install`].
#[derive(Clone)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
}

impl Interrupt {
    /// Handles SIGINT and SIGTERM from now on: the first sets the flag, a second one exits
    /// with [`EXIT_INTERRUPTED`] at once.
    pub fn install() -> io::Result<Interrupt> {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [SIGINT, SIGTERM] {
            // Registered first, so it runs before the flag is set: it exits only when an
            // earlier signal has set it already.
            signal_hook::flag::register_conditional_shutdown(
                sig,
                i32::from(EXIT_INTERRUPTED),
                Arc::clone(&flag),
            )?;
            signal_hook::flag::register(sig, Arc::clone(&flag))?;
        }
        Ok(Interrupt { flag })
    }

    /// Whether a signal arrived.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Runs `wake` on a thread of its own when SIGINT or SIGTERM arrives, for a command
    /// blocked waiting on something the signal does not interrupt (a channel, a pipe).
    pub fn on_signal(&self, wake: impl Fn() + Send + 'static) -> io::Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        let flag = Arc::clone(&self.flag);
        std::thread::Builder::new()
            .name("selflog-signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    // Set already by the handler; stored again so that `wake` sees it
                    // whatever the order the handlers ran in.
                    flag.store(true, Ordering::SeqCst);
                    wake();
                }
            })?;
        Ok(())
    }
}

/// Handles SIGXFSZ so that passing a file-size limit fails the write (EFBIG, reported as a
/// full disk) instead of killing the process.
pub fn survive_file_size_limit() -> io::Result<()> {
    signal_hook::flag::register(SIGXFSZ, Arc::new(AtomicBool::new(false)))?;
    Ok(())
}
