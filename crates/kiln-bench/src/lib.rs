//! The backend comparison harness behind `examples/compare_backends.rs`: the same workloads on
//! every backend, each validated against the CPU backend before it is timed, with the median
//! time, the throughput, and how far that is from the device's measured ceilings.
//!
//! - [`workload`]: what is measured (matmuls, elementwise, reductions, losses, batch norm,
//!   optimiser steps) and how much work each is;
//! - [`training_step`]: one full training step of an MLP, with its per-step overhead and,
//!   on GPUs with timestamp queries, its device time per kernel;
//! - [`overhead`]: an empty round trip and many tiny kernels in one submit;
//! - [`device`]: how each backend is timed (device timestamps on GPUs that have them);
//! - [`harness`]: validation, warm-up, repeats, the ceilings, the rows;
//! - [`report`]: the printed table and the JSON rows.

pub mod device;
pub mod doctor;
mod doctor_images;
pub mod harness;
pub mod overhead;
pub mod report;
pub mod training_run;
mod training_step;
pub mod workload;

pub use device::{BenchDevice, Clock};
pub use harness::{run_suite, Options, Suite};
pub use kiln_tensor::wgpu::kernel_table;
pub use report::{table, Row};
pub use training_step::{profile_kernels, TrainingStep};
pub use workload::{Op, Work, Workload};
