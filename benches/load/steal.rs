//! CPU time the hypervisor took from this VM (`steal` in /proc/stat) over a measurement. On
//! a shared machine a latency tail can be the neighbours': a second in which a quarter of
//! the VM's CPU was stolen stretches every step of every process in it. Each latency
//! scenario reports the steal over its own run beside its figures, so that a tail is read
//! with it, not explained away after.

/// Stolen CPU so far, all cores, in ms; `None` where /proc/stat has no steal field.
#[derive(Clone, Copy)]
pub struct Steal(Option<u64>);

impl Steal {
    pub fn now() -> Self {
        let first_line = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| stat.lines().next().map(str::to_owned));
        // `cpu user nice system idle iowait irq softirq steal …`, in USER_HZ ticks (100 a
        // second on Linux, whatever the kernel's own tick).
        let ticks = first_line
            .as_deref()
            .and_then(|line| line.split_whitespace().nth(8))
            .and_then(|steal| steal.parse::<u64>().ok());
        Self(ticks.map(|ticks| ticks * 10))
    }

    /// "steal N ms": what was stolen since `before`.
    pub fn since(self, before: Self) -> String {
        self.0
            .zip(before.0)
            .map_or("steal ? ms".into(), |(now, then)| {
                format!("steal {} ms", now.saturating_sub(then))
            })
    }
}
