//! How a backend is timed. GPUs with timestamp queries are timed on the device's own clock
//! (the kernels, not the host's recording, submit and wait); other adapters and the CPU backend
//! by the wall clock around the work and a sync.

use kiln_cpu::CpuBackend;
use kiln_tensor::CoreOps;
use kiln_tensor::{Backend, Result, Tensor, WgpuBackend};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Which clock timed a measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// GPU timestamp queries around the recorded work.
    Device,
    /// The host's clock around the work and a sync.
    Wall,
}

impl Clock {
    pub fn as_str(self) -> &'static str {
        match self {
            Clock::Device => "device",
            Clock::Wall => "wall",
        }
    }
}

/// What the harness needs from a backend beyond `Backend`.
pub trait BenchDevice: Backend {
    /// The name shown in the table: the adapter's name, or "cpu".
    fn label(&self) -> String;
    /// Runs `work` (which records ops) and returns how long the device took.
    fn time(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<(Duration, Clock)>;
    /// (dispatches, submits, readbacks) so far, on backends that count them.
    fn activity(&self) -> Option<(u64, u64, u64)>;
    /// The backend's plain copy of `src` over `dst` (the bandwidth ceiling's probe).
    fn copy_into(&self, src: &Tensor<Self>, dst: &Tensor<Self>) -> Result<()>
    where
        Self: Sized;
}

/// Wall time of `work` followed by a sync.
fn wall<B: Backend>(backend: &B, work: &mut dyn FnMut() -> Result<()>) -> Result<Duration> {
    let start = Instant::now();
    work()?;
    backend.sync()?;
    Ok(start.elapsed())
}

impl BenchDevice for CpuBackend {
    fn label(&self) -> String {
        "cpu".into()
    }

    fn time(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<(Duration, Clock)> {
        Ok((wall(self, work)?, Clock::Wall))
    }

    fn activity(&self) -> Option<(u64, u64, u64)> {
        None
    }

    fn copy_into(&self, src: &Tensor<Self>, dst: &Tensor<Self>) -> Result<()> {
        CpuBackend::copy_into(self, src, dst)
    }
}

impl BenchDevice for WgpuBackend {
    fn label(&self) -> String {
        self.adapter_info().name.clone()
    }

    fn time(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<(Duration, Clock)> {
        // Work recorded earlier must not land inside the measurement.
        self.sync()?;
        if self.can_time_on_device() {
            let ((), elapsed) = self.time_on_device(&mut *work)?;
            if let Some(elapsed) = elapsed {
                return Ok((elapsed, Clock::Device));
            }
        }
        Ok((wall(self, work)?, Clock::Wall))
    }

    fn activity(&self) -> Option<(u64, u64, u64)> {
        let c = self.counters();
        Some((c.dispatches, c.submits, c.readbacks))
    }

    fn copy_into(&self, src: &Tensor<Self>, dst: &Tensor<Self>) -> Result<()> {
        WgpuBackend::copy_into(self, src, dst)
    }
}
