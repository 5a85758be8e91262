//! Sync progress: a bar on a terminal (indicatif) and, always, one log line every few seconds
//! with height, blocks/s, tx/s, ETA, cache size and database size.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tracing::info;

const LOG_EVERY: Duration = Duration::from_secs(5);

/// Progress of a sync.
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Instant,
    blocks: u64,
    txs: u64,
    window_start: Instant,
    window_blocks: u64,
    window_txs: u64,
    /// the writer's largest pending state in the window (before any flush emptied it)
    window_cache_peak: usize,
    db_size: Option<Box<dyn Fn() -> u64 + Send>>,
}

impl Progress {
    /// A progress reporter; `bar` shows a terminal progress bar.
    pub fn new(bar: bool) -> Self {
        let bar = bar.then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            started: now,
            last_log: now,
            blocks: 0,
            txs: 0,
            window_start: now,
            window_blocks: 0,
            window_txs: 0,
            window_cache_peak: 0,
            db_size: None,
        }
    }

    /// Reports the database size in log lines through `f`.
    pub fn with_db_size(mut self, f: impl Fn() -> u64 + Send + 'static) -> Self {
        self.db_size = Some(Box::new(f));
        self
    }

    /// A block at `height` of `target` with `txs` transactions was applied, leaving
    /// `cache_bytes` in the writer's pending state before any flush.
    pub fn block(&mut self, height: u32, target: u32, txs: u64, cache_bytes: usize) {
        self.window_cache_peak = self.window_cache_peak.max(cache_bytes);
        self.blocks += 1;
        self.txs += txs;
        self.window_blocks += 1;
        self.window_txs += txs;
        let now = Instant::now();
        let window = now
            .duration_since(self.window_start)
            .as_secs_f64()
            .max(1e-3);
        let blocks_per_s = self.window_blocks as f64 / window;
        let tx_per_s = self.window_txs as f64 / window;
        if let Some(bar) = &self.bar {
            bar.set_length(u64::from(target));
            bar.set_position(u64::from(height));
            bar.set_message(format!("{blocks_per_s:.0} blocks/s {tx_per_s:.0} tx/s"));
        }
        if now.duration_since(self.last_log) >= LOG_EVERY || height == target {
            let remaining = f64::from(target.saturating_sub(height));
            let eta = if blocks_per_s > 0.0 {
                Duration::from_secs_f64(remaining / blocks_per_s)
            } else {
                Duration::ZERO
            };
            let db_bytes = self.db_size.as_ref().map(|f| f()).unwrap_or(0);
            info!(
                height,
                target,
                txs = self.txs,
                blocks_per_s = format!("{blocks_per_s:.1}"),
                tx_per_s = format!("{tx_per_s:.0}"),
                eta_s = eta.as_secs(),
                cache_mb = self.window_cache_peak >> 20,
                db_mb = db_bytes >> 20,
                "sync"
            );
            self.last_log = now;
            self.window_start = now;
            self.window_blocks = 0;
            self.window_txs = 0;
            self.window_cache_peak = 0;
        }
    }

    /// Totals since the start: blocks, transactions, elapsed.
    pub fn totals(&self) -> (u64, u64, Duration) {
        (self.blocks, self.txs, self.started.elapsed())
    }

    /// Removes the bar.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_line_reports_the_windows_peak_not_the_state_after_a_flush() {
        // The sync's line used to say cache_mb=0 throughout: it came right after each flush.
        let mut p = Progress::new(false);
        p.block(1, 100, 10, 700 << 20);
        p.block(2, 100, 10, 0); // flushed
        assert_eq!(p.window_cache_peak, 700 << 20);
        p.block(100, 100, 10, 3 << 20); // the target: a line is logged and the window restarts
        assert_eq!(p.window_cache_peak, 0);
    }
}
