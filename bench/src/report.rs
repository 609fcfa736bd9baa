//! Figures and how they are summarised: the median of repeated runs, and a p99 where a
//! figure is a latency distribution.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
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

#[derive(Debug, Serialize, Deserialize)]
pub struct Baseline {
    pub name: String,
    pub median: f64,
}

/// A figure's target. A lower-is-better target bounds the p99 where the figure has one (the
/// median otherwise); `median_at_most` bounds the median as well (issue #5's pod start:
/// p50 under 20 ms and p99 under 100 ms).
#[derive(Debug, Serialize, Deserialize, Clone, Copy)]
pub struct Target {
    pub value: f64,
    pub higher_is_better: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_at_most: Option<f64>,
}

impl Target {
    pub fn at_least(value: f64) -> Target {
        Target {
            value,
            higher_is_better: true,
            median_at_most: None,
        }
    }

    pub fn at_most(value: f64) -> Target {
        Target {
            value,
            higher_is_better: false,
            median_at_most: None,
        }
    }

    pub fn and_median_at_most(self, median: f64) -> Target {
        Target {
            median_at_most: Some(median),
            ..self
        }
    }

    fn describe(&self, unit: &str) -> String {
        let bound = if self.higher_is_better { "≥" } else { "≤" };
        let main = format!("{bound} {} {unit}", number(self.value));
        match self.median_at_most {
            Some(m) => format!("p50 ≤ {} {unit}, p99 {main}", number(m)),
            None => main,
        }
    }
}

/// How far one measured value is from its bound, in words a table can hold: "met (+38%)"
/// is 38% of headroom, "met (×77)" a factor of 77, "missed (−23%)" 23% short, "missed
/// (×4.7)" a factor of 4.7 the wrong way.
fn distance(value: f64, bound: f64, higher_is_better: bool) -> String {
    let met = within(value, bound, higher_is_better);
    let word = if met { "met" } else { "missed" };
    if bound == 0.0 || value == 0.0 {
        return word.into();
    }
    // Above 1 when the value is on the good side of the bound.
    let better = if higher_is_better {
        value / bound
    } else {
        bound / value
    };
    // Within a factor of 2 as a percentage, beyond it as a factor.
    let factor = |f: f64| {
        if f >= 10.0 {
            format!("×{f:.0}")
        } else {
            format!("×{f:.1}")
        }
    };
    if better == 1.0 {
        word.into()
    } else if met && better < 2.0 {
        format!("{word} (+{:.0}%)", (better - 1.0) * 100.0)
    } else if met {
        format!("{word} ({})", factor(better))
    } else if better > 0.5 {
        format!("{word} (−{:.0}%)", (1.0 - better) * 100.0)
    } else {
        format!("{word} ({})", factor(1.0 / better))
    }
}

/// Whether `value` is on the good side of `bound` (or on it).
fn within(value: f64, bound: f64, higher_is_better: bool) -> bool {
    if higher_is_better {
        value >= bound
    } else {
        value <= bound
    }
}

/// A number as a table shows it: integers plainly, others with 2 decimals.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

impl Figure {
    pub fn ratio(&self) -> Option<f64> {
        self.baseline.as_ref().map(|b| self.median / b.median)
    }

    /// The value the target bounds: the p99 of a lower-is-better latency, else the median.
    fn checked(&self, t: &Target) -> f64 {
        self.p99
            .filter(|_| !t.higher_is_better)
            .unwrap_or(self.median)
    }

    pub fn meets_target(&self) -> Option<bool> {
        self.target.map(|t| {
            within(self.checked(&t), t.value, t.higher_is_better)
                && t.median_at_most.is_none_or(|m| self.median <= m)
        })
    }

    /// "met (+38%)", "missed (×4.7)"; both bounds of a two-bound target ("p50 missed
    /// (−25%); p99 met (+130%)").
    pub fn distance(&self) -> Option<String> {
        let t = self.target?;
        let main = distance(self.checked(&t), t.value, t.higher_is_better);
        Some(match t.median_at_most {
            Some(m) => format!("p50 {}; p99 {main}", distance(self.median, m, false)),
            None => main,
        })
    }

    /// The value its target bounds, as the summary table shows it.
    fn measured(&self) -> String {
        match (self.target, self.p99) {
            (Some(t), Some(p99)) if !t.higher_is_better => format!(
                "p50 {} / p99 {} {}",
                number(self.median),
                number(p99),
                self.unit
            ),
            _ => format!("{} {}", number(self.median), self.unit),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
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
            let target = match (f.target, f.distance()) {
                (Some(t), Some(d)) => format!("{} ({d})", t.describe(&f.unit)),
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

/// Every figure with a target, of the suites whose JSON is in `dir`, as one markdown table:
/// the top of BENCHMARKS.md. Suites not run yet are named as missing.
pub fn summary(dir: &Path, suites: &[&str]) -> anyhow::Result<String> {
    let mut out =
        String::from("| suite | figure | measured | target | distance |\n|---|---|---|---|---|\n");
    let mut missing = Vec::new();
    for suite in suites {
        let path = dir.join(format!("{suite}.json"));
        let Ok(bytes) = std::fs::read(&path) else {
            missing.push(*suite);
            continue;
        };
        let report: Report = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{} is not a bench report: {e}", path.display()))?;
        let name = if report.quick {
            format!("{suite} (quick)")
        } else {
            (*suite).to_owned()
        };
        for f in report.figures.iter().filter(|f| f.target.is_some()) {
            let t = f.target.expect("filtered");
            out.push_str(&format!(
                "| {name} | {} | {} | {} | {} |\n",
                f.name,
                f.measured(),
                t.describe(&f.unit),
                f.distance().unwrap_or_default()
            ));
        }
    }
    if !missing.is_empty() {
        out.push_str(&format!(
            "\nNot run yet (no JSON in {}): {}\n",
            dir.display(),
            missing.join(", ")
        ));
    }
    Ok(out)
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
        target: target.map(Target::at_most),
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

    #[test]
    fn distances_say_how_far_and_which_way() {
        assert_eq!(distance(27_570.0, 20_000.0, true), "met (+38%)");
        assert_eq!(distance(6_731.0 / 63_672.0, 0.5, true), "missed (×4.7)");
        assert_eq!(distance(26.1, 20.0, false), "missed (−23%)");
        assert_eq!(distance(46.8, 100.0, false), "met (×2.1)");
        assert_eq!(distance(12.9, 1000.0, false), "met (×78)");
        assert_eq!(distance(5.0, 5.0, true), "met");
        assert_eq!(distance(0.0, 0.0, false), "met");
        assert_eq!(distance(3.0, 0.0, false), "missed");
    }

    #[test]
    fn a_two_bound_target_needs_both() {
        let mut f = latency_figure("start".into(), vec![26.0; 10], None, Some(100.0));
        f.target = f.target.map(|t| t.and_median_at_most(20.0));
        assert_eq!(f.meets_target(), Some(false));
        assert_eq!(f.distance().unwrap(), "p50 missed (−23%); p99 met (×3.8)");
        f.median = 10.0;
        assert_eq!(f.meets_target(), Some(true));
    }

    #[test]
    fn the_summary_reads_back_what_suites_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Report::new("serving", true);
        r.figures.push(Figure {
            name: "requests/s ratio".into(),
            unit: "×".into(),
            median: 0.11,
            p99: None,
            runs: 3,
            baseline: None,
            target: Some(Target::at_least(0.5)),
        });
        r.figures
            .push(latency_figure("untargeted".into(), vec![1.0], None, None));
        r.write_json(dir.path()).unwrap();
        let table = summary(dir.path(), &["serving", "store"]).unwrap();
        assert!(
            table.contains(
                "| serving (quick) | requests/s ratio | 0.11 × | ≥ 0.50 × | missed (×4.5) |"
            ),
            "{table}"
        );
        assert!(!table.contains("untargeted"), "{table}");
        assert!(
            table.contains("Not run yet") && table.contains("store"),
            "{table}"
        );
    }
}
