//! The active window, where the desktop allows it: an X11 display (`DISPLAY`), read with
//! `x11rb` (pure Rust) on a thread of its own.
//!
//! The thread asks the X server for property changes of the root window (the window
//! manager's `_NET_ACTIVE_WINDOW`) and of the active window (its title), and blocks until
//! one comes: no polling. A new active window is an `app_focus` change, a new title of the
//! active window a `window_change`. Without a display, or when the window manager does not
//! publish `_NET_ACTIVE_WINDOW`, [`start`] says why and nothing is recorded; it is never an
//! error. The thread ends when the connection does (the daemon exits without joining it).

use std::sync::mpsc::SyncSender;

use selflog::Timestamp;
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ChangeWindowAttributesAux, ConnectionExt as _, EventMask, Window,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use super::Input;

/// What the active window looks like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Active {
    /// The X window id.
    pub window_id: u32,
    /// Its application: the class of `WM_CLASS`, else its instance.
    pub app: String,
    /// Its process id (`_NET_WM_PID`), 0 if it does not say.
    pub pid: u32,
    /// Its title (`_NET_WM_NAME`, else `WM_NAME`).
    pub title: String,
}

/// A change of the active window.
#[derive(Debug, Clone)]
pub enum Change {
    /// Another window became active; the previous one, if any.
    Focus {
        /// The window now active.
        now: Active,
        /// The window active before.
        previous: Option<Active>,
    },
    /// The active window's title changed.
    Title {
        /// The window, with its new title.
        now: Active,
        /// Its previous title.
        previous_title: String,
    },
}

struct Atoms {
    active: Atom,
    net_wm_name: Atom,
    utf8: Atom,
    net_wm_pid: Atom,
}

/// Connects to the X display and starts the thread sending changes into `tx`; returns the
/// display's name, or why the active window cannot be followed.
pub fn start(tx: SyncSender<Input>) -> Result<String, String> {
    let display = std::env::var("DISPLAY").unwrap_or_default();
    if display.is_empty() {
        return Err("no X11 display (DISPLAY is not set)".into());
    }
    let (conn, screen) = x11rb::connect(None)
        .map_err(|e| format!("cannot connect to X11 display {display}: {e}"))?;
    let root = conn
        .setup()
        .roots
        .get(screen)
        .ok_or_else(|| format!("X11 display {display} has no screen {screen}"))?
        .root;
    let atoms = intern(&conn).map_err(|e| format!("X11 display {display}: {e}"))?;
    conn.change_window_attributes(
        root,
        &ChangeWindowAttributesAux::new().event_mask(EventMask::PROPERTY_CHANGE),
    )
    .map_err(|e| e.to_string())
    .and_then(|c| c.check().map_err(|e| e.to_string()))
    .map_err(|e| format!("X11 display {display}: cannot follow the root window: {e}"))?;
    std::thread::Builder::new()
        .name("selflog-x11".into())
        .spawn(move || follow(&conn, root, &atoms, &tx))
        .map_err(|e| format!("cannot start the window thread: {e}"))?;
    Ok(display)
}

fn intern(conn: &RustConnection) -> Result<Atoms, String> {
    let atom = |name: &str| -> Result<Atom, String> {
        Ok(conn
            .intern_atom(false, name.as_bytes())
            .map_err(|e| e.to_string())?
            .reply()
            .map_err(|e| e.to_string())?
            .atom)
    };
    Ok(Atoms {
        active: atom("_NET_ACTIVE_WINDOW")?,
        net_wm_name: atom("_NET_WM_NAME")?,
        utf8: atom("UTF8_STRING")?,
        net_wm_pid: atom("_NET_WM_PID")?,
    })
}

/// The thread: sends the active window at start and every change after, until the
/// connection or the receiver is gone.
fn follow(conn: &RustConnection, root: Window, atoms: &Atoms, tx: &SyncSender<Input>) {
    let mut current: Option<Active> = None;
    let send = |change: Change| tx.send(Input::Window(Timestamp::now(), change)).is_ok();
    let refocus = |current: &mut Option<Active>| -> bool {
        let Some(id) = active_window(conn, root, atoms) else {
            return true;
        };
        if current.as_ref().is_some_and(|c| c.window_id == id) {
            return true;
        }
        // Follow the new window's title; a window that is gone refuses, which is fine.
        let _ = conn.change_window_attributes(
            id,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        );
        let _ = conn.flush();
        let now = describe(conn, id, atoms);
        let previous = current.replace(now.clone());
        send(Change::Focus { now, previous })
    };
    if !refocus(&mut current) {
        return;
    }
    loop {
        let Ok(event) = conn.wait_for_event() else {
            return;
        };
        let Event::PropertyNotify(e) = event else {
            continue;
        };
        if e.window == root && e.atom == atoms.active {
            if !refocus(&mut current) {
                return;
            }
        } else if e.atom == atoms.net_wm_name || e.atom == Atom::from(AtomEnum::WM_NAME) {
            let Some(cur) = current.as_mut().filter(|c| c.window_id == e.window) else {
                continue;
            };
            let title = title(conn, e.window, atoms);
            if title != cur.title {
                let previous_title = std::mem::replace(&mut cur.title, title);
                let now = cur.clone();
                if tx
                    .send(Input::Window(
                        Timestamp::now(),
                        Change::Title {
                            now,
                            previous_title,
                        },
                    ))
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

fn property(conn: &RustConnection, window: Window, atom: Atom, kind: Atom) -> Option<Vec<u8>> {
    let reply = conn
        .get_property(false, window, atom, kind, 0, 4096)
        .ok()?
        .reply()
        .ok()?;
    (reply.format != 0).then_some(reply.value)
}

fn active_window(conn: &RustConnection, root: Window, atoms: &Atoms) -> Option<Window> {
    let v = property(conn, root, atoms.active, AtomEnum::ANY.into())?;
    let id = u32::from_ne_bytes(v.get(..4)?.try_into().ok()?);
    (id != 0).then_some(id)
}

fn title(conn: &RustConnection, window: Window, atoms: &Atoms) -> String {
    property(conn, window, atoms.net_wm_name, atoms.utf8)
        .or_else(|| property(conn, window, AtomEnum::WM_NAME.into(), AtomEnum::ANY.into()))
        .map(|v| {
            // `WM_NAME` in COMPOUND_TEXT wraps UTF-8 in ESC % G ... ESC % @.
            String::from_utf8_lossy(&v)
                .replace("\u{1b}%G", "")
                .replace("\u{1b}%@", "")
        })
        .unwrap_or_default()
}

fn describe(conn: &RustConnection, window: Window, atoms: &Atoms) -> Active {
    let class = property(
        conn,
        window,
        AtomEnum::WM_CLASS.into(),
        AtomEnum::ANY.into(),
    )
    .unwrap_or_default();
    let mut parts = class
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let instance = parts.next().unwrap_or_default();
    let app = parts.next().unwrap_or(instance);
    let pid = property(conn, window, atoms.net_wm_pid, AtomEnum::ANY.into())
        .and_then(|v| Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?)))
        .unwrap_or(0);
    Active {
        window_id: window,
        app,
        pid,
        title: title(conn, window, atoms),
    }
}
