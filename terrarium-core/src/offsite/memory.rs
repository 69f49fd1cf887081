//! The export's memory budget (`[s3] memory_mib`, 64 MiB by default),
//! split between the stages before anything starts: the upload buffers
//! ((parallel + 1) parts) come first, zstd's workers get what is left.
//!
//! zstd's multithreaded mode holds about 3 x workers + 4 job buffers
//! (its input round buffer of workers + 3 jobs, and output buffers;
//! measured with `zstd -T2 -B<size>`: 16 MiB at 1 MiB jobs, 25 MiB at 2
//! MiB, 43 MiB at 4 MiB), so the job size and the workers are what the
//! budget sets. Not covered: levels 16 and up (whose contexts alone are
//! tens of MiB) and parts past number 4,000 (they grow, `upload`).

use crate::error::{Error, Result};

const MIB: u64 = 1024 * 1024;
pub const DEFAULT_MEMORY_MIB: u32 = 64;
pub fn default_mib() -> u32 {
    DEFAULT_MEMORY_MIB
}
pub const MIN_MEMORY_MIB: u32 = 32;
pub const MAX_MEMORY_MIB: u32 = 65_536;
/// The process itself, the stage channels and the TLS/HTTP clients.
const FIXED_MIB: u64 = 12;
/// zstd's memory is about this many job buffers for `workers`.
fn jobs_held(workers: u32) -> u64 {
    3 * u64::from(workers) + 4
}
/// zstd refuses jobs under 512 KiB; 1 MiB is the smallest worth threads.
const MIN_JOB_MIB: u64 = 1;
/// Past this, larger jobs buy no ratio worth the memory.
const MAX_JOB_MIB: u64 = 32;

/// How the stream runs within its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// zstd worker threads (0: compress on the calling thread).
    pub workers: u32,
    /// zstd job size in bytes (0 when single-threaded).
    pub job_size: u64,
}

/// Split `memory_mib` for `parallel` uploads of `part_mib` parts on
/// `cores` cores. Refused, naming what to change, when the uploads alone
/// do not fit.
pub fn plan(memory_mib: u32, part_mib: u32, parallel: u32, cores: u32) -> Result<Plan> {
    let uploads = (u64::from(parallel) + 1) * u64::from(part_mib);
    let left = u64::from(memory_mib).saturating_sub(uploads + FIXED_MIB);
    if uploads + FIXED_MIB > u64::from(memory_mib) {
        return Err(Error::Usage(format!(
            "memory budget {memory_mib} MiB is too small for {parallel} parallel uploads of \
             {part_mib} MiB parts ({uploads} MiB of buffers plus {FIXED_MIB} MiB): raise \
             --memory-mib or lower --parallel or --part-size-mib"
        )));
    }
    // As many workers as cores (at most 8) while their jobs fit; one
    // core gains nothing from workers, and a tight budget compresses on
    // the calling thread, in zstd's own few MiB.
    let fits = (2..=cores.min(8))
        .rev()
        .map(|w| (w, (left / jobs_held(w)).min(MAX_JOB_MIB)))
        .find(|(_, job)| *job >= MIN_JOB_MIB);
    Ok(match fits {
        Some((workers, job_mib)) => Plan {
            workers,
            job_size: job_mib * MIB,
        },
        None => Plan {
            workers: 0,
            job_size: 0,
        },
    })
}

pub fn validate(memory_mib: u32) -> Result<()> {
    if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&memory_mib) {
        return Err(Error::Usage(format!(
            "memory budget {memory_mib} MiB: {MIN_MEMORY_MIB} to {MAX_MEMORY_MIB}"
        )));
    }
    Ok(())
}

/// Cores this process may run on.
pub fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_leaves_zstd_two_mib_jobs_on_two_cores() {
        // 3 x 8 MiB parts + 12 fixed = 36; 28 left -> 2 MiB jobs.
        let p = plan(64, 8, 2, 2).unwrap();
        assert_eq!(
            p,
            Plan {
                workers: 2,
                job_size: 2 * MIB
            }
        );
    }

    #[test]
    fn more_memory_buys_larger_jobs_up_to_a_cap() {
        assert_eq!(plan(128, 8, 2, 2).unwrap().job_size, 9 * MIB);
        assert_eq!(
            plan(4096, 8, 2, 4).unwrap(),
            Plan {
                workers: 4,
                job_size: 32 * MIB
            }
        );
    }

    #[test]
    fn many_cores_get_fewer_workers_rather_than_more_memory() {
        // 28 MiB left: 8 workers would hold 28 jobs of 1 MiB, and do.
        assert_eq!(
            plan(64, 8, 2, 16).unwrap(),
            Plan {
                workers: 8,
                job_size: MIB
            }
        );
        // 20 MiB left: 8 workers need 28 jobs; 5 need 19.
        assert_eq!(
            plan(56, 8, 2, 16).unwrap(),
            Plan {
                workers: 5,
                job_size: MIB
            }
        );
    }

    #[test]
    fn one_core_or_a_tight_budget_compresses_without_workers() {
        assert_eq!(plan(64, 8, 2, 1).unwrap().workers, 0);
        assert_eq!(plan(40, 8, 2, 2).unwrap().workers, 0);
    }

    #[test]
    fn uploads_that_do_not_fit_are_refused_naming_the_knobs() {
        let e = plan(64, 16, 4, 2).unwrap_err().to_string();
        assert!(
            e.contains("80 MiB of buffers") && e.contains("--memory-mib"),
            "{e}"
        );
        assert!(validate(16).is_err() && validate(64).is_ok());
    }
}
