//! Giving the heap's freed memory back to the system after a burst.
//!
//! glibc keeps what a burst frees (the buffers of 5,000 answered long-polls, a backlog's
//! pages) in its arenas for reuse. The next burst does not fit wholly into it, so without
//! this the resident memory climbs burst after burst: 114, 141, 154, 162 MB over four
//! wake-ups of 5,000 long-polls (docs/BENCHMARKS.md, twentieth section).
//!
//! A look every second compares the resident memory with what live allocations hold
//! (`mallinfo2`). The difference is what the process keeps without using: code and stacks,
//! which stay put, and the heap's free pages, which grow when a burst is freed. Once that
//! difference has grown by [`BURST`] since its lowest point, `malloc_trim` hands the free
//! pages back. Watching this difference, not the resident memory alone or the free bytes,
//! is what catches a burst whenever it is looked at: a look in the middle of a burst sees
//! the memory in use and does not move the low point, and a trimmed page that is reused
//! and freed again counts again.
//!
//! The look and the trim run on a blocking thread: both walk the arenas under their locks,
//! and a trim returns memory page by page, which must not hold up a runtime worker. The
//! trim's duration is logged, so what it stalls is on record.
//!
//! Only glibc has these calls; elsewhere (musl, other systems) nothing is looked at.

use std::time::{Duration, Instant};

/// How often the heap is looked at. Often enough to see the gap between two bursts a few
/// seconds apart: with a look every 5 s, a wake-up of 5,000 long-polls 7 s after another
/// often came before any look had seen the first one's memory free, and grew on top of it
/// (docs/BENCHMARKS.md, twenty-second section).
pub const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Growth of the memory kept without use, since its low point, that makes a trim worth it.
pub const BURST: usize = 32 << 20;

/// The process's memory as one look saw it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapReading {
    /// Resident memory of the whole process.
    pub resident: usize,
    /// What live allocations hold (in the arenas and in their own mappings).
    pub held: usize,
}

impl HeapReading {
    /// Resident memory that no live allocation holds.
    pub fn unheld(self) -> usize {
        self.resident.saturating_sub(self.held)
    }
}

/// What a trim did.
#[derive(Debug, Clone, Copy)]
pub struct Trimmed {
    pub before: HeapReading,
    pub after: HeapReading,
    pub took: Duration,
}

/// Decides when to trim: remembers the lowest memory kept without use since the last trim.
#[derive(Debug)]
pub struct HeapTrimmer {
    burst: usize,
    low: Option<usize>,
}

impl HeapTrimmer {
    /// Trims once the memory kept without use has grown by `burst` bytes.
    pub fn new(burst: usize) -> Self {
        Self { burst, low: None }
    }

    /// Looks at the heap and trims it when a burst's worth has been freed since the low
    /// point; `None` when it did not trim (or cannot look on this system).
    pub fn check(&mut self) -> Option<Trimmed> {
        let before = glibc::read()?;
        if !self.wants_trim(before) {
            return None;
        }
        let started = Instant::now();
        glibc::trim();
        let took = started.elapsed();
        let after = glibc::read().unwrap_or(before);
        self.low = Some(after.unheld());
        Some(Trimmed {
            before,
            after,
            took,
        })
    }

    /// Whether `reading` is a burst's worth above the low point, which it moves down.
    fn wants_trim(&mut self, reading: HeapReading) -> bool {
        let unheld = reading.unheld();
        let low = self.low.map_or(unheld, |low| low.min(unheld));
        self.low = Some(low);
        unheld - low >= self.burst
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use super::HeapReading;

    pub fn read() -> Option<HeapReading> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let resident_pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf and mallinfo2 read process-wide values and take no pointers.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
        let info = unsafe { libc::mallinfo2() };
        Some(HeapReading {
            resident: resident_pages.saturating_mul(page),
            held: info.uordblks.saturating_add(info.hblkhd),
        })
    }

    pub fn trim() {
        // SAFETY: malloc_trim only returns free pages; 0 keeps no padding at the top.
        unsafe { libc::malloc_trim(0) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod glibc {
    use super::HeapReading;

    pub fn read() -> Option<HeapReading> {
        None
    }

    pub fn trim() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: usize = 1 << 20;

    fn reading(resident: usize, held: usize) -> HeapReading {
        HeapReading { resident, held }
    }

    #[test]
    fn trims_when_the_unheld_memory_grows_by_a_burst_above_its_low_point() {
        let mut trimmer = HeapTrimmer::new(32 * MB);
        assert!(!trimmer.wants_trim(reading(100 * MB, 60 * MB)));
        // A burst in use: resident and held grow together.
        assert!(!trimmer.wants_trim(reading(200 * MB, 160 * MB)));
        // Freed: held falls, resident stays.
        assert!(trimmer.wants_trim(reading(200 * MB, 70 * MB)));
    }

    #[test]
    fn the_low_point_follows_the_unheld_memory_down() {
        let mut trimmer = HeapTrimmer::new(32 * MB);
        assert!(!trimmer.wants_trim(reading(100 * MB, 40 * MB)));
        assert!(!trimmer.wants_trim(reading(100 * MB, 80 * MB)));
        // 30 MB above the first look but 50 MB above the lowest one.
        assert!(trimmer.wants_trim(reading(110 * MB, 40 * MB)));
    }

    #[test]
    fn less_than_a_burst_freed_is_not_trimmed() {
        let mut trimmer = HeapTrimmer::new(32 * MB);
        assert!(!trimmer.wants_trim(reading(100 * MB, 60 * MB)));
        assert!(!trimmer.wants_trim(reading(100 * MB, 30 * MB)));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_freed_burst_between_survivors_is_given_back() {
        // The one test on glibc's real, process-wide heap. A small free not being trimmed
        // is left to the arithmetic tests above: there, another test's frees under
        // `cargo test`'s threads could make it a burst.
        let mut trimmer = HeapTrimmer::new(32 * MB);
        assert!(
            trimmer.check().is_none(),
            "the first look only sets the low point"
        );
        // 96 MB in 1 KiB blocks, every one written; every 64th survives, so no freed
        // stretch reaches the top of the heap, where glibc would give it back by itself.
        let blocks: Vec<Vec<u8>> = (0..96 * 1024).map(|i| vec![i as u8; 1024]).collect();
        let survivors: Vec<Vec<u8>> = blocks.into_iter().step_by(64).collect();
        let trimmed = trimmer.check().expect("a 96 MB burst freed is trimmed");
        assert!(
            trimmed.before.resident - trimmed.after.resident > 48 * MB,
            "resident {} -> {} bytes",
            trimmed.before.resident,
            trimmed.after.resident
        );
        assert_eq!(survivors.len(), 96 * 1024 / 64);
        assert!(trimmer.check().is_none(), "nothing more was freed");
    }
}
