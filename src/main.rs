//! The `anode` binary.

use std::process::ExitCode;

#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Fixes glibc malloc's behaviour for the engines' C and C++ allocations, which jemalloc (the
/// Rust allocator) does not see, unless the operator tuned it with `GLIBC_TUNABLES`.
///
/// RocksDB inserts each flush (hundreds of MB) into memtables built from large arena blocks
/// and frees them once flushed. With glibc's defaults the mmap threshold rises after the
/// first such blocks are freed, later ones come from the heap, and the freed memory is kept:
/// on a 20M-transaction chain at `cache_mb` 1000 the process grew by 250 MB per flush, to
/// 2.7 GB (4.9 GB without jemalloc). With a fixed 1 MiB threshold and two arenas it stays
/// under 1 GB (docs/performance.md, "Memory at scale").
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_glibc_malloc() {
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tune_glibc_malloc();
    match anode::cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        // `anode check` printed its problems and its summary already.
        Err(error) if error.is::<anode::check::ProblemsFound>() => ExitCode::from(1),
        Err(error) => {
            anode::output::print_error(&error);
            if error.is::<anode::check::CouldNotCheck>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
