//! Log lines captured in a test: what the operator would read.

#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;

/// The text logged on this thread since [`capture`], as the server's log shows it (no colours).
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// The lines logged at `level` (`ERROR`, `WARN`, `INFO`) that contain `needle`.
    pub fn lines(&self, level: &str, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| line.contains(level) && line.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures what is logged at INFO and above on the current thread (which is where a
/// `Runtime::block_on` polls its future) until the guard drops.
pub fn capture() -> (DefaultGuard, Captured) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    (tracing::subscriber::set_default(subscriber), captured)
}
