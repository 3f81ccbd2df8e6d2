//! Per-kernel device time: where a training step's GPU time goes.
//!
//! While profiling is on, every dispatch gets a compute pass of its own whose beginning and
//! end write timestamps into a query set (pass timestamp writes need only `TIMESTAMP_QUERY`).
//! When the batch is submitted the query set is resolved, read back and the differences added
//! to a total per pipeline (kernel entry point and its `override` constants). Profiling is a
//! diagnostic: each submit waits for the device and passes split where they would not, so the
//! step runs a little slower than it does unprofiled. The totals are read and cleared with
//! `WgpuBackend::kernel_profile`.

use super::pipeline_cache::PipelineKey;
use super::timer::{query_buffers, read_ticks};
use std::collections::HashMap;

/// Dispatches timed per submit: two timestamps each fill wgpu's largest query set.
pub(crate) const PROFILED_PER_SUBMIT: usize = (wgpu::QUERY_SET_MAX_QUERIES / 2) as usize;

/// The device time of one pipeline over the profiled dispatches.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// Entry point and specialisation constants, e.g. `matmul_tiled_vec4 SIDE=8 BLOCKS=2`.
    pub kernel: String,
    pub dispatches: u64,
    pub seconds: f64,
}

pub(crate) struct KernelProfiler {
    pub query_set: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    readable: wgpu::Buffer,
    period_ns: f64,
    /// The pipeline of each dispatch timed in the open batch, in query order.
    pending: Vec<PipelineKey>,
    totals: HashMap<PipelineKey, (u64, f64)>,
    /// The first failure to read the timestamps back, reported with the profile.
    pub problem: Option<String>,
}

impl KernelProfiler {
    pub(crate) fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Self {
        let (resolved, readable) = query_buffers(
            device,
            8 * 2 * PROFILED_PER_SUBMIT as u64,
            "kiln kernel profile",
        );
        KernelProfiler {
            query_set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kiln kernel profile"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * PROFILED_PER_SUBMIT as u32,
            }),
            resolved,
            readable,
            period_ns: queue.get_timestamp_period() as f64,
            pending: Vec::new(),
            totals: HashMap::new(),
            problem: None,
        }
    }

    /// True when the open batch has no room for another timed dispatch.
    pub(crate) fn is_full(&self) -> bool {
        self.pending.len() >= PROFILED_PER_SUBMIT
    }

    /// The (beginning, end) query indices of the next dispatch, which runs `key`.
    pub(crate) fn next_dispatch(&mut self, key: PipelineKey) -> (u32, u32) {
        let index = 2 * self.pending.len() as u32;
        self.pending.push(key);
        (index, index + 1)
    }

    /// Records the copy of this batch's timestamps to the host; `collect` reads them after
    /// the submit. False when the batch timed nothing.
    pub(crate) fn resolve(&self, encoder: &mut wgpu::CommandEncoder) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let queries = 2 * self.pending.len() as u32;
        encoder.resolve_query_set(&self.query_set, 0..queries, &self.resolved, 0);
        encoder.copy_buffer_to_buffer(&self.resolved, 0, &self.readable, 0, 8 * queries as u64);
        true
    }

    /// Waits for the submitted batch, reads its timestamps and adds them to the totals.
    pub(crate) fn collect(&mut self, device: &wgpu::Device) {
        let pending = std::mem::take(&mut self.pending);
        let ticks = match read_ticks(device, &self.readable, 2 * pending.len()) {
            Ok(ticks) => ticks,
            Err(problem) => {
                self.problem.get_or_insert(problem);
                return;
            }
        };
        for (key, pair) in pending.into_iter().zip(ticks.chunks_exact(2)) {
            let seconds = pair[1].saturating_sub(pair[0]) as f64 * self.period_ns * 1e-9;
            let total = self.totals.entry(key).or_insert((0, 0.0));
            total.0 += 1;
            total.1 += seconds;
        }
    }

    /// The totals so far, slowest first, and clears them.
    pub(crate) fn take(&mut self) -> Vec<KernelTime> {
        let mut times: Vec<KernelTime> = self
            .totals
            .drain()
            .map(|(key, (dispatches, seconds))| KernelTime {
                kernel: key.to_string(),
                dispatches,
                seconds,
            })
            .collect();
        times.sort_by(|a, b| {
            b.seconds
                .total_cmp(&a.seconds)
                .then(a.kernel.cmp(&b.kernel))
        });
        times
    }
}

/// The profile as a table, slowest first: calls, milliseconds and share of the kernels' time
/// per `unit` (a step, an epoch, a run) when the profile covers `count` of them.
pub fn kernel_table(times: &[KernelTime], count: usize, unit: &str) -> String {
    let count = count.max(1) as f64;
    let total: f64 = times.iter().map(|t| t.seconds).sum();
    let per = format!("ms/{unit}");
    let mut out = format!("{:>7} {per:>9} {:>6}  kernel\n", "calls", "share");
    let mut line = |calls: u64, seconds: f64, name: &str| {
        let share = if total > 0.0 {
            100.0 * seconds / total
        } else {
            0.0
        };
        out += &format!(
            "{:>7} {:>9.3} {share:>5.1}%  {name}\n",
            format!("{:.0}", calls as f64 / count),
            seconds / count * 1e3,
        );
    };
    for t in times {
        line(t.dispatches, t.seconds, &t.kernel);
    }
    line(
        times.iter().map(|t| t.dispatches).sum(),
        total,
        "all kernels",
    );
    out
}
