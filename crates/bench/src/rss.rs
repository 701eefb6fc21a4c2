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
    cpu_start: Option<CpuTimes>,
    wall_start: std::time::Instant,
    stop: Arc<AtomicBool>,
    max_kb: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    hwm_reset: bool,
}

/// Where the CPU went during the scenario (seconds of CPU time; 2 cores give 2 s per second).
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    pub wall_s: f64,
    pub service_s: f64,
    pub generator_s: f64,
    /// Everything else: PostgreSQL, Redis, the broker, and any other work on the machine.
    pub other_s: f64,
    pub idle_s: f64,
}

#[derive(Debug, Clone, Copy)]
struct CpuTimes {
    service: u64,
    generator: u64,
    busy: u64,
    idle: u64,
}

/// utime + stime of a process, in clock ticks.
fn process_ticks(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy and idle ticks of the whole machine.
fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    let total: u64 = v.iter().take(8).sum();
    Some((total - idle, idle))
}

fn cpu_times(pid: u32) -> Option<CpuTimes> {
    let (busy, idle) = machine_ticks()?;
    Some(CpuTimes {
        service: process_ticks(&format!("/proc/{pid}/stat"))?,
        generator: process_ticks("/proc/self/stat")?,
        busy,
        idle,
    })
}

/// Clock ticks per second (USER_HZ): 100 on Linux for every architecture that matters here.
const TICKS_PER_S: f64 = 100.0;

#[derive(Debug, Clone, Serialize)]
pub struct RssPeak {
    pub cpu: Option<CpuUse>,
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
            cpu_start: cpu_times(pid),
            wall_start: std::time::Instant::now(),
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
        let wall_s = self.wall_start.elapsed().as_secs_f64();
        let cpu = match (self.cpu_start, cpu_times(self.pid)) {
            (Some(a), Some(b)) => {
                let service_s = b.service.saturating_sub(a.service) as f64 / TICKS_PER_S;
                let generator_s = b.generator.saturating_sub(a.generator) as f64 / TICKS_PER_S;
                let busy_s = b.busy.saturating_sub(a.busy) as f64 / TICKS_PER_S;
                Some(CpuUse {
                    wall_s,
                    service_s,
                    generator_s,
                    other_s: (busy_s - service_s - generator_s).max(0.0),
                    idle_s: b.idle.saturating_sub(a.idle) as f64 / TICKS_PER_S,
                })
            }
            _ => None,
        };
        RssPeak {
            cpu,
            peak_mb: peak as f64 / 1024.0,
            hwm_reset: self.hwm_reset,
            samples_max_mb: samples as f64 / 1024.0,
            vm_hwm_mb: hwm.map(|kb| kb as f64 / 1024.0),
        }
    }
}
