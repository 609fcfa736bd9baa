//! Figures and how they are summarised: the median of repeated runs, and a p99 where a
//! figure is a latency distribution.

use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Figure {
    pub name: String,
    pub unit: String,
    /// Median over `runs` (for latencies: over all samples).
    pub median: f64,
    pub p99: Option<f64>,
    pub runs: usize,
    /// What the figure is compared against, measured in the same run.
    pub baseline: Option<Baseline>,
    /// The target, in the figure's unit, and whether higher is better.
    pub target: Option<Target>,
}

#[derive(Debug, Serialize)]
pub struct Baseline {
    pub name: String,
    pub median: f64,
}

#[derive(Debug, Serialize, Clone, Copy)]
pub struct Target {
    pub value: f64,
    pub higher_is_better: bool,
}

impl Figure {
    pub fn ratio(&self) -> Option<f64> {
        self.baseline.as_ref().map(|b| self.median / b.median)
    }

    pub fn meets_target(&self) -> Option<bool> {
        self.target.map(|t| {
            let v = self
                .p99
                .filter(|_| !t.higher_is_better)
                .unwrap_or(self.median);
            if t.higher_is_better {
                v >= t.value
            } else {
                v <= t.value
            }
        })
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub suite: String,
    pub quick: bool,
    pub machine: String,
    pub figures: Vec<Figure>,
}

impl Report {
    pub fn new(suite: &str, quick: bool) -> Self {
        Report {
            suite: suite.into(),
            quick,
            machine: machine(),
            figures: Vec::new(),
        }
    }

    pub fn print(&self) {
        println!(
            "suite {} ({}) on {}",
            self.suite,
            if self.quick { "quick" } else { "full" },
            self.machine
        );
        println!("| figure | median | p99 | runs | baseline | ratio | target |");
        println!("|---|---|---|---|---|---|---|");
        for f in &self.figures {
            let p99 = f.p99.map_or("–".into(), |p| format!("{p:.2} {}", f.unit));
            let (base, ratio) = match (&f.baseline, f.ratio()) {
                (Some(b), Some(r)) => (
                    format!("{}: {:.1} {}", b.name, b.median, f.unit),
                    format!("{r:.2}×"),
                ),
                _ => ("–".into(), "–".into()),
            };
            let target = match (f.target, f.meets_target()) {
                (Some(t), Some(ok)) => format!(
                    "{} {} {} ({})",
                    if t.higher_is_better { "≥" } else { "≤" },
                    t.value,
                    f.unit,
                    if ok { "met" } else { "missed" }
                ),
                _ => "–".into(),
            };
            println!(
                "| {} | {:.2} {} | {p99} | {} | {base} | {ratio} | {target} |",
                f.name, f.median, f.unit, f.runs
            );
        }
    }

    pub fn write_json(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.json", self.suite));
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)?;
        Ok(path)
    }
}

/// The median of `values` (which it sorts).
pub fn median(values: &mut [f64]) -> f64 {
    percentile(values, 50.0)
}

/// The nearest-rank percentile of `values` (which it sorts).
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    assert!(!values.is_empty(), "no samples");
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * values.len() as f64).ceil().max(1.0) as usize;
    values[rank.min(values.len()) - 1]
}

/// Milliseconds, the unit of every latency figure.
pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A latency distribution in ms: its median and p99, beside `baseline` (name, median ms),
/// checked against `target` (a p99 in ms) when given.
pub fn latency_figure(
    name: String,
    mut samples: Vec<f64>,
    baseline: Option<(&str, f64)>,
    target: Option<f64>,
) -> Figure {
    Figure {
        name,
        unit: "ms".into(),
        median: median(&mut samples),
        p99: Some(percentile(&mut samples, 99.0)),
        runs: samples.len(),
        baseline: baseline.map(|(name, median)| Baseline {
            name: name.into(),
            median,
        }),
        target: target.map(|value| Target {
            value,
            higher_is_better: false,
        }),
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cpus} cores ({model}), {mem_gib:.0} GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(median(&mut v), 50.0);
        assert_eq!(percentile(&mut v, 99.0), 99.0);
        assert_eq!(percentile(&mut [3.0, 1.0, 2.0], 50.0), 2.0);
        assert_eq!(percentile(&mut [5.0], 99.0), 5.0);
    }
}
