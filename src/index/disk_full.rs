//! What the operator reads when the database's disk fills up during the sync: one error when a
//! write first fails for lack of space, a reminder at most once a minute while it lasts, one
//! line when a write gets through again, or one final message if anode is stopped meanwhile.
//!
//! The sync loop (`super::sync`) keeps its pending blocks and retries; this module only says
//! so. Every message names the database directory and the space left on its filesystem, since
//! the engine's own error names neither in words an operator acts on (LMDB says only
//! "Input/output error").

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anode_store::disk::free_space;
use tracing::{error, info, warn};

use super::error::IndexError;

/// Reminders while the disk stays full come at most this often.
pub const REMINDER_INTERVAL: Duration = Duration::from_secs(60);

/// Whether `error` is the database's disk being full, which waiting for space cures.
pub fn is_disk_full(error: &IndexError) -> bool {
    error
        .store_error()
        .is_some_and(|e| e.kind() == anode_store::ErrorKind::NoSpace)
}

/// A byte count the way `df -h` would say it.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// What could not be written, as a noun: a flush's blocks and size, or another store write.
fn what_failed(error: &IndexError) -> String {
    match error {
        IndexError::Flush {
            first, last, bytes, ..
        } => {
            let blocks = if first == last {
                format!("block {first}")
            } else {
                format!("blocks {first}..={last}")
            };
            format!(
                "{blocks} ({} of keys and values; the engine needs more on disk for its \
                 pages and logs)",
                human_bytes(*bytes)
            )
        }
        _ => "a write to the database".to_string(),
    }
}

/// The index's committed tip, in words.
fn committed(height: Option<u32>) -> String {
    match height {
        Some(height) => format!("the index stays at block {height}"),
        None => "the index stays empty".to_string(),
    }
}

/// The free space of `dir`'s filesystem, in words.
fn free_words(free: Option<u64>) -> String {
    match free {
        Some(free) => format!("{} free", human_bytes(free)),
        None => "an unknown amount of space free".to_string(),
    }
}

/// The store's own error text (the engine's words, once).
fn engine_words(error: &IndexError) -> String {
    error
        .store_error()
        .map_or_else(|| error.to_string(), ToString::to_string)
}

/// The first message of an outage: what failed, where, how much room there is, and what to do.
pub fn first_message(
    dir: &Path,
    free: Option<u64>,
    error: &IndexError,
    committed_height: Option<u32>,
    serving: bool,
    retry: Duration,
) -> String {
    format!(
        "the database disk is full: {dir} has {free}, too little for {what}. Nothing was \
         written: {committed}{serving}. Free space on that filesystem, or stop anode and move \
         DB_DIRECTORY to a larger one; anode keeps the blocks, retries every {retry} s and \
         carries on by itself when there is room, no restart needed. The engine said: {engine}",
        dir = dir.display(),
        free = free_words(free),
        what = what_failed(error),
        committed = committed(committed_height),
        serving = if serving {
            " and clients are served from there"
        } else {
            ""
        },
        retry = retry.as_secs_f64(),
        engine = engine_words(error),
    )
}

/// The message of a sync stopped (by a signal) while the disk was full.
pub fn stopped_message(
    dir: &Path,
    free: Option<u64>,
    error: &IndexError,
    committed_height: Option<u32>,
) -> String {
    format!(
        "stopped while the database disk was full: {dir} has {free}, and {what} could not be \
         written; {committed}, and the next start resumes from there. The engine said: {engine}",
        dir = dir.display(),
        free = free_words(free),
        what = what_failed(error),
        committed = committed(committed_height),
        engine = engine_words(error),
    )
}

/// One stretch of time during which writes fail for lack of space.
pub struct DiskFullOutage {
    dir: PathBuf,
    retry: Duration,
    since: Instant,
    last_said: Instant,
    attempts: u64,
}

impl DiskFullOutage {
    /// Logs the one error of the outage that `error` starts.
    pub fn begin(
        dir: &Path,
        error: &IndexError,
        committed_height: Option<u32>,
        serving: bool,
        retry: Duration,
    ) -> Self {
        let free = free_space(dir);
        error!(
            dir = %dir.display(),
            free_bytes = free,
            "{}",
            first_message(dir, free, error, committed_height, serving, retry)
        );
        let now = Instant::now();
        DiskFullOutage {
            dir: dir.to_path_buf(),
            retry,
            since: now,
            last_said: now,
            attempts: 1,
        }
    }

    /// Notes another failed attempt; says so when the last line is a minute old.
    pub fn failed_again(&mut self, error: &IndexError) {
        self.attempts += 1;
        if self.last_said.elapsed() < REMINDER_INTERVAL {
            return;
        }
        self.last_said = Instant::now();
        let free = free_space(&self.dir);
        warn!(
            dir = %self.dir.display(),
            free_bytes = free,
            "the database disk is still full: {} has {}, too little for {}; {} attempts \
             over {} s, retrying every {} s",
            self.dir.display(),
            free_words(free),
            what_failed(error),
            self.attempts,
            self.since.elapsed().as_secs(),
            self.retry.as_secs_f64(),
        );
    }

    /// Logs the end of the outage: the write went through.
    pub fn ended(&self) {
        let free = free_space(&self.dir);
        info!(
            dir = %self.dir.display(),
            free_bytes = free,
            "the database disk has room again: {} has {}; the write went through after {} \
             attempts over {} s, syncing carries on",
            self.dir.display(),
            free_words(free),
            self.attempts + 1,
            self.since.elapsed().as_secs(),
        );
    }

    /// The error that ends the sync when a stop is asked during the outage.
    pub fn stopped(&self, error: &IndexError, committed_height: Option<u32>) -> String {
        stopped_message(&self.dir, free_space(&self.dir), error, committed_height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_flush() -> IndexError {
        IndexError::Flush {
            first: 101,
            last: 250,
            bytes: 19_400_000,
            source: anode_store::Error::io(
                "/srv/anode/db/000012.log",
                std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device"),
            ),
        }
    }

    #[test]
    fn bytes_read_like_df() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_000), "1.0 kB");
        assert_eq!(human_bytes(19_400_000), "19.4 MB");
        assert_eq!(human_bytes(3_200_000_000_000), "3.2 TB");
    }

    #[test]
    fn only_a_full_disk_is_waited_out() {
        assert!(is_disk_full(&full_flush()));
        let broken = IndexError::Store(anode_store::Error::io(
            "/srv/anode/db",
            std::io::Error::other("Input/output error"),
        ));
        assert!(!is_disk_full(&broken));
        assert!(!is_disk_full(&IndexError::Corrupt("x".into())));
    }

    #[test]
    fn the_first_message_says_where_how_much_and_what_to_do() {
        let text = first_message(
            Path::new("/srv/anode/db"),
            Some(4096),
            &full_flush(),
            Some(100),
            true,
            Duration::from_secs(15),
        );
        for expected in [
            "/srv/anode/db has 4.1 kB free",
            "blocks 101..=250 (19.4 MB of keys and values",
            "the index stays at block 100 and clients are served from there",
            "DB_DIRECTORY",
            "retries every 15 s",
            "no restart needed",
            "No space left on device",
        ] {
            assert!(text.contains(expected), "`{expected}` missing from: {text}");
        }
        // The engine's error is quoted once, not once per layer.
        assert_eq!(text.matches("No space left on device").count(), 1, "{text}");
    }

    #[test]
    fn the_stop_message_says_what_was_not_written_and_where_the_next_start_resumes() {
        let text = stopped_message(Path::new("/srv/anode/db"), None, &full_flush(), None);
        for expected in [
            "stopped while the database disk was full",
            "/srv/anode/db has an unknown amount of space free",
            "blocks 101..=250",
            "the index stays empty, and the next start resumes from there",
        ] {
            assert!(text.contains(expected), "`{expected}` missing from: {text}");
        }
    }
}
