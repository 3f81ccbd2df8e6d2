//! The results: one row per (workload, backend), printed as a table or written as JSON.

use crate::device::Clock;
use crate::training_step::StepOverhead;
use serde::Serialize;

/// One measured workload on one backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Row {
    pub workload: String,
    pub shape: String,
    pub backend: String,
    /// Median seconds of the timed runs.
    pub median_seconds: Option<f64>,
    /// Which clock timed them.
    pub clock: Option<Clock>,
    pub gflops: Option<f64>,
    pub gbps: Option<f64>,
    /// Overhead rows: wall microseconds per kernel.
    pub microseconds_per_kernel: Option<f64>,
    /// This row's share of the device's ceiling that bounds it, and that ceiling.
    pub percent_of_ceiling: Option<f64>,
    pub ceiling: Option<String>,
    /// The largest difference from the CPU backend as a share of what the precision table
    /// allows (≤ 1; None on the CPU backend).
    pub worst_ratio: Option<f64>,
    /// Training-step rows: what recording one step cost the host.
    pub step: Option<StepOverhead>,
    /// Why the workload has no figures (a failed validation or an error).
    pub error: Option<String>,
}

impl Row {
    pub fn new(workload: &str, shape: String, backend: String) -> Self {
        Row {
            workload: workload.into(),
            shape,
            backend,
            ..Default::default()
        }
    }

    /// The throughput cell: GFLOP/s, GB/s or µs per kernel.
    pub fn rate(&self) -> String {
        if let Some(g) = self.gflops {
            format!("{g:.1} GFLOP/s")
        } else if let Some(g) = self.gbps {
            format!("{g:.2} GB/s")
        } else if let Some(us) = self.microseconds_per_kernel {
            format!("{us:.1} µs/kernel")
        } else {
            "-".into()
        }
    }

    fn time(&self) -> String {
        match self.median_seconds {
            Some(s) if s >= 1.0 => format!("{s:.2} s"),
            Some(s) if s >= 1e-3 => format!("{:.2} ms", s * 1e3),
            Some(s) => format!("{:.1} µs", s * 1e6),
            None => "-".into(),
        }
    }

    fn notes(&self) -> String {
        if let Some(e) = &self.error {
            return format!("FAILED: {e}");
        }
        let mut notes = Vec::new();
        if let Some(r) = self.worst_ratio {
            notes.push(format!("matches cpu ({r:.0e} of the tolerance)"));
        }
        if let Some(s) = &self.step {
            notes.push(format!(
                "{} dispatches, {} submit(s), {} readbacks, {:.2} ms recording per step",
                s.dispatches,
                s.submits,
                s.readbacks,
                s.record_seconds * 1e3
            ));
        }
        notes.join("; ")
    }
}

/// The rows as an aligned text table.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "workload",
        "shape",
        "backend",
        "median",
        "clock",
        "rate",
        "% ceiling",
        "notes",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.workload.clone(),
                r.shape.clone(),
                r.backend.clone(),
                r.time(),
                r.clock.map_or("-", Clock::as_str).into(),
                r.rate(),
                r.percent_of_ceiling
                    .map_or("-".into(), |p| format!("{p:.0} %")),
                r.notes(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = line(&header.map(String::from));
    out.push('\n');
    for row in &cells {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}
