//! The doctor's training run: a few steps of a small MLP on a device and on the CPU backend,
//! whose losses must agree and fall.

use crate::doctor::CheckResult;
use crate::training_step::TrainingStep;
use kiln_cpu::CpuBackend;
use kiln_nn::Precision;
use kiln_tensor::precision::{self, Tolerance};
use kiln_tensor::{Backend, Result};

/// The loss of each of `steps` training steps on `backend`.
fn losses<B: Backend>(step: &TrainingStep, backend: &B, steps: usize) -> Result<Vec<f64>> {
    let mut state = step.prepare(backend)?;
    (0..steps).map(|_| step.step(&mut state)?.item()).collect()
}

/// A short training run (a small MLP with batch norm and dropout, Adam, one fixed batch) on
/// `device` and on the CPU backend, in `precision`: the per-step losses must agree (within
/// `training_tolerance`) and fall.
pub fn training_run<B: Backend>(
    device: &B,
    cpu: &CpuBackend,
    steps: usize,
    precision: Precision,
) -> CheckResult {
    let tolerance = training_tolerance(precision);
    let step = TrainingStep {
        widths: vec![64, 48, 33, 10],
        batch: 32,
        precision,
        regularised: true,
    };
    let on_device = losses(&step, device, steps);
    let on_cpu = losses(&step, cpu, steps);
    let kernel = format!(
        "training run ({steps} steps, 64-48-33-10, batch norm, dropout, Adam, {precision})"
    );
    match (on_device, on_cpu) {
        (Ok(d), Ok(c)) => {
            let worst = tolerance.worst_ratio(&d, &c);
            let fell = d.last() < d.first();
            CheckResult {
                kernel,
                worst,
                tolerance: tolerance.to_string(),
                passed: worst <= 1.0 && fell,
                error: (!fell).then(|| format!("the loss did not fall: {:?}", d)),
            }
        }
        (Err(e), _) | (_, Err(e)) => CheckResult {
            kernel,
            worst: f64::INFINITY,
            tolerance: tolerance.to_string(),
            passed: false,
            error: Some(e.to_string()),
        },
    }
}

/// A few training steps, GPU against CPU: the table's `training_steps`.
pub fn training_tolerance(precision: Precision) -> Tolerance {
    precision::training_steps(precision == Precision::Mixed)
}
