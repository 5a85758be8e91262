//! Heavy reads step aside for light ones.
//!
//! The server answers a bounded number of requests at once (its work slots, sized to keep the
//! cores and the disk busy). On a cold index a history of an exchange-like script takes
//! seconds of random reads, and on two cores the few of them in the slots made every wallet's
//! small request wait behind them: on a 50M-transaction index in a 3 GB cgroup, the p99 of
//! `get_history` for scripts with at most 100 transactions was 2.2 s at 64 sessions, and 19 ms
//! at one (docs/performance.md, "Cold queries on the 50M RocksDB index").
//!
//! So a request carries a [`ReadGate`] while it is answered. The index's read loops count
//! what they read ([`RowMeter`]); once a request has read more than a light request ever
//! does, it gives its work slot back to the light requests and continues in the heavy lane,
//! which lets only a few heavy reads run at once. Nothing is refused or reordered for light
//! requests, and a heavy request that had to wait is told so, so that it can look again in
//! the caches that the read it waited for may just have filled.
//!
//! The gate reaches the blocking threads the reads run on through a thread-local
//! ([`enter`]), so that the read functions need no extra parameter; without a gate (tests,
//! tools) the meter only counts.

use std::cell::RefCell;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

/// Rows (UTXO rows, txid look-ups) a request may read before it counts as heavy. A script with
/// 100 transactions needs about 100; an exchange-like script tens of thousands. Of the
/// settings measured on the 50M index, 500 rows with a lane as wide as the cores gave small
/// requests at 64 sessions a p99 of 92 ms, 2,000 rows with a lane of one 280 ms.
pub const HEAVY_READ_ROWS: usize = 500;

/// Heavy reads that run at once: one per core. On a cold index they wait on the disk more
/// than they compute, so one per core keeps both busy, while the work slots the heavy
/// requests gave back keep serving light ones.
pub fn heavy_lane_width() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    cores.max(1)
}

/// A counting semaphore for blocking threads: heavy reads run on the blocking pool, where
/// waiting on a condition variable is the right tool (no runtime is needed to wait).
pub struct HeavyLane {
    state: Mutex<LaneState>,
    freed: Condvar,
}

struct LaneState {
    free: usize,
    waiting: usize,
    entered: u64,
}

impl HeavyLane {
    /// A lane that lets `width` heavy reads run at once (at least one).
    pub fn new(width: usize) -> Arc<Self> {
        Arc::new(HeavyLane {
            state: Mutex::new(LaneState {
                free: width.max(1),
                waiting: 0,
                entered: 0,
            }),
            freed: Condvar::new(),
        })
    }

    /// Blocks until a place is free; `true` when it had to wait for one.
    fn enter(self: &Arc<Self>) -> (LanePlace, bool) {
        let mut state = self.state.lock();
        let mut waited = false;
        while state.free == 0 {
            waited = true;
            state.waiting += 1;
            self.freed.wait(&mut state);
            state.waiting -= 1;
        }
        state.free -= 1;
        state.entered += 1;
        (LanePlace(Arc::clone(self)), waited)
    }

    /// Heavy reads waiting for a place now.
    pub fn waiting(&self) -> usize {
        self.state.lock().waiting
    }

    /// Heavy reads that entered the lane since it was made.
    pub fn entered(&self) -> u64 {
        self.state.lock().entered
    }
}

/// A place in the heavy lane, given back when dropped.
struct LanePlace(Arc<HeavyLane>);

impl Drop for LanePlace {
    fn drop(&mut self) {
        self.0.state.lock().free += 1;
        self.0.freed.notify_one();
    }
}

/// What one request holds while it is answered: its work slot, until its reads turn heavy;
/// then its place in the heavy lane. Dropped once the answer is queued, so that either bounds
/// the answers held in memory.
pub struct ReadGate {
    held: Mutex<Held>,
    lane: Arc<HeavyLane>,
}

/// Each variant holds its permit only to release it when dropped.
enum Held {
    WorkSlot {
        _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    },
    Lane {
        _place: LanePlace,
    },
}

impl ReadGate {
    /// A gate for a request holding `work_slot` (if the server gave it one), whose heavy
    /// reads go through `lane`.
    pub fn new(
        work_slot: Option<tokio::sync::OwnedSemaphorePermit>,
        lane: Arc<HeavyLane>,
    ) -> Arc<Self> {
        Arc::new(ReadGate {
            held: Mutex::new(Held::WorkSlot { _permit: work_slot }),
            lane,
        })
    }

    /// Whether the request's reads have moved to the heavy lane.
    pub fn is_heavy(&self) -> bool {
        matches!(*self.held.lock(), Held::Lane { .. })
    }

    /// Gives the work slot back and waits for a place in the heavy lane (once); `true` when
    /// it had to wait, so that the caller looks again at what the reads it waited for have
    /// cached.
    fn turn_heavy(&self) -> bool {
        {
            let mut held = self.held.lock();
            if matches!(*held, Held::Lane { .. }) {
                return false;
            }
            // The work slot goes back before the wait: holding it while waiting would keep a
            // light request out for as long as the heavy ones ahead take.
            *held = Held::WorkSlot { _permit: None };
        }
        let (place, waited) = self.lane.enter();
        *self.held.lock() = Held::Lane { _place: place };
        waited
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<ReadGate>>> = const { RefCell::new(None) };
}

tokio::task_local! {
    /// The gate of the request a task is answering (set by the server around a request).
    pub static REQUEST_GATE: Arc<ReadGate>;
}

/// The gate of the request the current task answers, if any: taken before a read moves to a
/// blocking thread, which does not see task-locals.
pub fn current_request_gate() -> Option<Arc<ReadGate>> {
    REQUEST_GATE.try_with(Arc::clone).ok()
}

/// Makes `gate` the current gate of this thread until the guard drops.
pub fn enter(gate: Option<Arc<ReadGate>>) -> Entered {
    let previous = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), gate));
    Entered(previous)
}

/// Restores the thread's previous gate when dropped.
pub struct Entered(Option<Arc<ReadGate>>);

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Counts the rows one read function reads, and moves the request to the heavy lane once
/// the request's reads pass [`HEAVY_READ_ROWS`].
#[derive(Default)]
pub struct RowMeter {
    rows: usize,
}

impl RowMeter {
    /// A meter that has counted nothing.
    pub fn new() -> Self {
        RowMeter::default()
    }

    /// Counts `rows` more; `true` when this moved the request to the heavy lane after
    /// waiting there, so that cached answers may now exist.
    pub fn add(&mut self, rows: usize) -> bool {
        let before = self.rows;
        self.rows = self.rows.saturating_add(rows);
        if before > HEAVY_READ_ROWS || self.rows <= HEAVY_READ_ROWS {
            return false;
        }
        CURRENT
            .with(|c| c.borrow().as_ref().map(Arc::clone))
            .is_some_and(|gate| gate.turn_heavy())
    }

    /// Rows counted so far.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_light_read_keeps_its_work_slot() {
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        let permit = Arc::clone(&slots).try_acquire_owned().ok();
        let gate = ReadGate::new(permit, HeavyLane::new(1));
        let _entered = enter(Some(Arc::clone(&gate)));
        let mut meter = RowMeter::new();
        assert!(!meter.add(HEAVY_READ_ROWS));
        assert!(!gate.is_heavy());
        assert_eq!(slots.available_permits(), 0);
    }

    #[test]
    fn a_heavy_read_gives_back_its_work_slot_and_waits_for_the_lane() {
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        let lane = HeavyLane::new(1);
        // Another heavy read holds the lane's only place.
        let (blocker, waited) = lane.enter();
        assert!(!waited);
        let permit = Arc::clone(&slots).try_acquire_owned().ok();
        let gate = ReadGate::new(permit, Arc::clone(&lane));
        let reader_gate = Arc::clone(&gate);
        let reader = std::thread::spawn(move || {
            let _entered = enter(Some(reader_gate));
            let mut meter = RowMeter::new();
            meter.add(HEAVY_READ_ROWS + 1)
        });
        while lane.waiting() == 0 {
            std::thread::yield_now();
        }
        // While it waits, a light request can have the work slot.
        assert_eq!(slots.available_permits(), 1);
        drop(blocker);
        let waited = reader.join().expect("reader thread");
        assert!(waited, "the heavy read waited for the lane");
        assert!(gate.is_heavy());
        assert_eq!(lane.entered(), 2);
        drop(gate);
        assert_eq!(slots.available_permits(), 1);
    }

    #[test]
    fn a_request_turns_heavy_once_and_without_a_gate_nothing_waits() {
        let lane = HeavyLane::new(1);
        let gate = ReadGate::new(None, Arc::clone(&lane));
        {
            let _entered = enter(Some(Arc::clone(&gate)));
            let mut first = RowMeter::new();
            first.add(HEAVY_READ_ROWS + 1);
            // A second read function of the same request does not enter again.
            let mut second = RowMeter::new();
            second.add(HEAVY_READ_ROWS + 1);
        }
        assert_eq!(lane.entered(), 1);
        // Outside any gate the meter counts and never blocks.
        let mut meter = RowMeter::new();
        assert!(!meter.add(10 * HEAVY_READ_ROWS));
        assert_eq!(meter.rows(), 10 * HEAVY_READ_ROWS);
        assert_eq!(lane.entered(), 1);
    }
}
