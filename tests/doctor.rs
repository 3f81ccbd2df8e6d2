//! The doctor's checks on this machine's adapter: every kernel family and the short training
//! run pass against the CPU backend, and each check compares something (outputs exist and the
//! names are distinct).

mod common;
use common::*;
use kiln::bench::doctor::{other_matmul_kernels, training_run, Check};
use kiln::nn::Precision;
use kiln::tensor::wgpu::MatmulKernel;

#[test]
fn every_doctor_check_passes_on_the_adapter() {
    let Some(gpu) = gpu() else { return };
    let cpu = cpu();
    let checks = Check::all();
    let mut names: Vec<String> = checks.iter().map(Check::name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), checks.len(), "check names are distinct");
    for check in checks {
        let outputs = check.outputs(&cpu).unwrap();
        assert!(!outputs.is_empty(), "{}", check.name());
        assert_eq!(
            check.tolerances().len(),
            outputs.len(),
            "{}: one tolerance per output",
            check.name()
        );
        let result = check.run(&gpu, &cpu);
        assert!(result.passed, "{result:?}");
    }
    for precision in [Precision::F32, Precision::Mixed] {
        let run = training_run(&gpu, &cpu, 10, precision);
        assert!(run.passed, "{run:?}");
    }
}

#[test]
fn the_doctor_checks_every_matmul_kernel_the_adapter_can_run() {
    let Some(gpu) = gpu() else { return };
    let (results, unavailable) = other_matmul_kernels(&gpu, &cpu());
    // Five matmul checks and the convolution (whose path follows the matmul kernel) for each of
    // the five forcible kernels besides the default (a tuned device has none of them as its
    // own), less those the adapter cannot run (each named with its reason).
    let kernels = if gpu.matmul_kernel() == MatmulKernel::Tuned {
        5
    } else {
        4
    };
    assert_eq!(
        results.len() + 6 * unavailable.len(),
        6 * kernels,
        "{unavailable:?}"
    );
    for result in &results {
        assert!(result.passed, "{result:?}");
    }
    for kernel in ["Tiled32", "Tiled128"] {
        let tag = format!("[{kernel} kernel]");
        assert_eq!(
            results.iter().filter(|r| r.kernel.contains(&tag)).count(),
            6
        );
    }
}

#[test]
fn a_training_run_that_cannot_learn_fails() {
    // One step: the loss has no chance to fall, which the check reports.
    let cpu = cpu();
    let result = training_run(&cpu, &cpu, 1, Precision::F32);
    assert!(!result.passed);
    assert!(result.error.unwrap().contains("did not fall"));
}
