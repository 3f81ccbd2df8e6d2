//! What a backend costs beyond the arithmetic: the round trip of one tiny op (record, submit,
//! wait), and many tiny kernels recorded into one submit (the per-dispatch cost). Both are
//! timed on the wall clock, since the host's share is what they measure.

use kiln_tensor::{Backend, Result, Tensor};
use std::time::{Duration, Instant};

/// An overhead measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Overhead {
    /// One add of one float, then a sync.
    RoundTrip,
    /// `kernels` chained adds of one float, then one sync.
    TinyKernels { kernels: usize },
}

impl Overhead {
    pub fn name(&self) -> &'static str {
        match self {
            Overhead::RoundTrip => "round_trip",
            Overhead::TinyKernels { .. } => "tiny_kernels",
        }
    }

    pub fn shape(&self) -> String {
        match self {
            Overhead::RoundTrip => "1 kernel + sync".into(),
            Overhead::TinyKernels { kernels } => format!("{kernels} kernels, 1 sync"),
        }
    }

    /// Kernels per run (the table reports the time per kernel).
    pub fn kernels(&self) -> usize {
        match self {
            Overhead::RoundTrip => 1,
            Overhead::TinyKernels { kernels } => *kernels,
        }
    }

    /// Wall time of one run.
    pub fn run<B: Backend>(&self, x: &Tensor<B>) -> Result<Duration> {
        let start = Instant::now();
        let mut y = x.clone();
        for _ in 0..self.kernels() {
            y = (&y + x)?;
        }
        x.backend().sync()?;
        let elapsed = start.elapsed();
        drop(y);
        Ok(elapsed)
    }
}
