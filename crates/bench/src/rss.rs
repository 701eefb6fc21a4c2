//! Peak resident memory of the service process during a scenario.
//!
//! Before the load starts the kernel's high-water mark is reset (`5` into
//! `/proc/<pid>/clear_refs`, Linux ≥ 4.0, needs the right to write there) and a thread samples
//! `VmRSS` every 10 ms; the peak reported is the larger of the sampled maximum and `VmHWM`.

use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct RssSampler {
    pid: u32,
    stop: Arc<AtomicBool>,
    max_kb: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    hwm_reset: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RssPeak {
    pub peak_mb: f64,
    /// Whether the kernel's high-water mark was reset at the start (otherwise only samples).
    pub hwm_reset: bool,
    pub samples_max_mb: f64,
    pub vm_hwm_mb: Option<f64>,
}

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let hwm_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        let stop = Arc::new(AtomicBool::new(false));
        let max_kb = Arc::new(AtomicU64::new(status_kb(pid, "VmRSS:").unwrap_or(0)));
        let thread = {
            let stop = stop.clone();
            let max_kb = max_kb.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kb) = status_kb(pid, "VmRSS:") {
                        max_kb.fetch_max(kb, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Self {
            pid,
            stop,
            max_kb,
            thread: Some(thread),
            hwm_reset,
        }
    }

    pub fn finish(mut self) -> RssPeak {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let samples = self.max_kb.load(Ordering::Relaxed);
        let hwm = status_kb(self.pid, "VmHWM:");
        let peak = if self.hwm_reset {
            samples.max(hwm.unwrap_or(0))
        } else {
            samples
        };
        RssPeak {
            peak_mb: peak as f64 / 1024.0,
            hwm_reset: self.hwm_reset,
            samples_max_mb: samples as f64 / 1024.0,
            vm_hwm_mb: hwm.map(|kb| kb as f64 / 1024.0),
        }
    }
}
