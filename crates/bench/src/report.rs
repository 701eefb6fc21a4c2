//! The table printed at the end and the JSON written to `bench-results/`.

use crate::ceilings::Ceiling;
use crate::scenarios::ScenarioResult;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    /// `/proc/loadavg` when the run started: other work on the machine shows here.
    pub loadavg_at_start: String,
}

impl Machine {
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kb: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        let loadavg_at_start = std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_owned();
        Self {
            loadavg_at_start,
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
            memory_gib: mem_kb / 1024.0 / 1024.0,
            kernel,
        }
    }
}

/// A target of the issue, and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub measured: String,
    /// `None`: not measurable in this run (e.g. no pgbench ceiling in the embedded profile).
    pub met: Option<bool>,
}

/// A scenario's rate against its ceiling.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub scenario: String,
    pub ceiling: String,
    pub ceiling_rate: f64,
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started_at: String,
    pub profile: String,
    pub base_url: String,
    pub machine: Machine,
    pub scenarios: Vec<ScenarioResult>,
    pub ceilings: Vec<Ceiling>,
    pub ratios: Vec<Ratio>,
    pub targets: Vec<Target>,
    pub correctness_passed: bool,
    pub notes: Vec<String>,
}

impl Report {
    pub fn ratio_of(&self, scenario: &str) -> Option<&Ratio> {
        self.ratios.iter().find(|r| r.scenario == scenario)
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "profile {} · {} × {} · {:.0} GiB · loadavg at start {}",
            self.profile,
            self.machine.nproc,
            self.machine.cpu_model,
            self.machine.memory_gib,
            self.machine.loadavg_at_start
        );
        let _ = writeln!(
            out,
            "| scenario | conns | size | requests | rate /s | p50 ms | p95 ms | p99 ms | non-2xx / errors | peak RSS MB | CPU s: shop / gen / other / idle | ceiling | ratio | checks |"
        );
        let _ = writeln!(
            out,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for s in &self.scenarios {
            let (rate_label, lat) = match &s.unit {
                Some((unit, summary)) => (
                    format!(
                        "{:.0} {unit}s ({:.0} req)",
                        summary.throughput_rps, s.load.throughput_rps
                    ),
                    summary,
                ),
                None => (format!("{:.0}", s.load.throughput_rps), &s.load),
            };
            let errors: Vec<String> = s
                .load
                .outcomes
                .iter()
                .filter(|(k, _)| !k.starts_with('2'))
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let (ceiling, ratio) = match self.ratio_of(&s.id) {
                Some(r) => (
                    format!("{} {:.0}/s", r.ceiling, r.ceiling_rate),
                    format!("{:.0}%", r.ratio * 100.0),
                ),
                None => ("–".into(), "–".into()),
            };
            let passed = s.checks.iter().filter(|c| c.passed).count();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {}/{} {} |",
                s.id,
                s.connections,
                s.size,
                s.load.requests,
                rate_label,
                lat.p50_ms,
                lat.p95_ms,
                lat.p99_ms,
                if errors.is_empty() {
                    "none".into()
                } else {
                    errors.join(", ")
                },
                s.rss
                    .as_ref()
                    .map(|r| format!("{:.0}", r.peak_mb))
                    .unwrap_or_else(|| "–".into()),
                s.rss
                    .as_ref()
                    .and_then(|r| r.cpu.as_ref())
                    .map(|c| format!(
                        "{:.1} / {:.1} / {:.1} / {:.1} in {:.1} s",
                        c.service_s, c.generator_s, c.other_s, c.idle_s, c.wall_s
                    ))
                    .unwrap_or_else(|| "–".into()),
                ceiling,
                ratio,
                passed,
                s.checks.len(),
                if s.passed() { "PASS" } else { "FAIL" },
            );
        }
        for c in &self.ceilings {
            let _ = writeln!(
                out,
                "| {} | {} | {} | – | {:.0} | {} | – | {} | – | – | – | – | – | – |",
                c.tool,
                c.connections,
                c.what,
                c.rate_per_s,
                c.p50_ms
                    .or(c.latency_avg_ms)
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_else(|| "–".into()),
                c.p99_ms
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_else(|| "–".into()),
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "Latency by outcome (count, p50 / p99 / max ms):");
        for s in &self.scenarios {
            if s.id.starts_with("B0") {
                continue;
            }
            let parts: Vec<String> = s
                .requests
                .iter()
                .flat_map(|(kind, summary)| {
                    summary.by_outcome.iter().map(move |(o, l)| {
                        format!(
                            "{kind} {o}: {} × {:.2} / {:.2} / {:.2}",
                            l.count, l.p50_ms, l.p99_ms, l.max_ms
                        )
                    })
                })
                .collect();
            let _ = writeln!(out, "- {}: {}", s.id, parts.join("; "));
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Ratios to ceilings (the first per scenario is the one its target uses):"
        );
        for r in &self.ratios {
            let _ = writeln!(
                out,
                "- {} / {} ({:.0}/s) = {:.0}%",
                r.scenario,
                r.ceiling,
                r.ceiling_rate,
                r.ratio * 100.0
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "Targets:");
        for t in &self.targets {
            let verdict = match t.met {
                Some(true) => "MET",
                Some(false) => "MISSED",
                None => "n/a",
            };
            let _ = writeln!(out, "- {}: {} → {verdict}", t.name, t.measured);
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "Correctness:");
        for s in &self.scenarios {
            for c in &s.checks {
                let _ = writeln!(
                    out,
                    "- {} {}: {} ({})",
                    s.id,
                    if c.passed { "PASS" } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
        }
        for n in &self.notes {
            let _ = writeln!(out, "Note: {n}");
        }
        out
    }
}
