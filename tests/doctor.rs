//! The doctor's checks on this machine's adapter: every kernel family and the short training
//! run pass against the CPU backend, and each check compares something (outputs exist and the
//! names are distinct).

mod common;
use common::*;
use kiln::bench::doctor::{training_run, Check};
use kiln::nn::Precision;

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
        assert!(!check.outputs(&cpu).unwrap().is_empty(), "{}", check.name());
        let result = check.run(&gpu, &cpu);
        assert!(result.passed, "{result:?}");
    }
    for precision in [Precision::F32, Precision::Mixed] {
        let run = training_run(&gpu, &cpu, 10, precision);
        assert!(run.passed, "{run:?}");
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
