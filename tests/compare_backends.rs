//! The backend comparison harness on its quick suite: every workload runs on the CPU backend
//! and on the GPU, matches the CPU, and gets a time, a rate and a share of a ceiling; the
//! training step records one submit and no readback on the GPU.

mod common;
use common::*;
use kiln::bench::harness::{items, Item};
use kiln::bench::{kernel_table, profile_kernels, run_suite, table, Options, Row, Suite};
use kiln::tensor::CoreOps;

fn quick() -> Options {
    Options {
        suite: Suite::Quick,
        warmup: 1,
        repeats: 3,
        filter: None,
    }
}

fn check_rows(rows: &[Row], backend: &str) {
    let names: Vec<String> = items(Suite::Quick).iter().map(|i| i.name()).collect();
    assert_eq!(rows.len(), names.len(), "one row per workload");
    for (row, name) in rows.iter().zip(&names) {
        assert_eq!(&row.workload, name);
        assert_eq!(row.backend, backend);
        assert!(row.error.is_none(), "{}: {:?}", row.workload, row.error);
        let seconds = row.median_seconds.expect("a median");
        assert!(
            seconds > 0.0 && seconds.is_finite(),
            "{}: {seconds}",
            row.workload
        );
        let rates = [row.gflops, row.gbps, row.microseconds_per_kernel];
        assert_eq!(
            rates.iter().flatten().count(),
            1,
            "{}: one rate",
            row.workload
        );
        if row.microseconds_per_kernel.is_none() {
            let p = row.percent_of_ceiling.expect("a share of a ceiling");
            assert!(p > 0.0, "{}: {p}", row.workload);
            assert!(row.ceiling.is_some());
        }
    }
    let copy = &rows[0];
    assert_eq!(copy.workload, "copy");
    let share = copy.percent_of_ceiling.unwrap();
    assert!(
        (share - 100.0).abs() < 1e-9,
        "the copy is its own ceiling: {share}"
    );
}

#[test]
fn the_quick_suite_runs_and_validates_on_every_backend() {
    let cpu = cpu();
    let mut seen = 0;
    let cpu_rows = run_suite(&cpu, None, &quick(), &mut |_| seen += 1);
    assert_eq!(seen, cpu_rows.len(), "progress sees every row");
    check_rows(&cpu_rows, "cpu");
    assert!(cpu_rows.iter().all(|r| r.worst_ratio.is_none()));
    let Some(gpu) = gpu() else { return };
    let gpu_rows = run_suite(&gpu, Some(&cpu), &quick(), &mut |_| {});
    check_rows(&gpu_rows, &gpu.adapter_info().name);
    for row in &gpu_rows {
        if row.microseconds_per_kernel.is_none() {
            assert!(row.worst_ratio.is_some(), "{} validated", row.workload);
        }
    }
    let step = gpu_rows
        .iter()
        .find(|r| r.workload == "train_step")
        .and_then(|r| r.step)
        .expect("the step's overhead");
    assert_eq!(step.submits, 1, "a training step is one submit");
    assert_eq!(step.readbacks, 0, "and reads nothing back");
    assert!(step.dispatches > 20, "{} dispatches", step.dispatches);
    let text = table(&gpu_rows);
    assert!(text.starts_with("workload"), "{text}");
    assert!(text.contains("GFLOP/s") && text.contains("GB/s") && text.contains("µs/kernel"));
    let json: serde_json::Value = serde_json::to_value(&gpu_rows).unwrap();
    assert_eq!(json[0]["workload"], "copy");
    assert!(json[0]["gbps"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_filter_keeps_the_matching_workloads_and_the_bandwidth_probe() {
    let options = Options {
        filter: Some("adam".into()),
        ..quick()
    };
    let rows = run_suite(&cpu(), None, &options, &mut |_| {});
    let names: Vec<_> = rows.iter().map(|r| r.workload.as_str()).collect();
    assert_eq!(names, ["copy", "adam"]);
}

#[test]
fn profiling_a_training_step_accounts_for_every_dispatch_of_the_step() {
    let Some(gpu) = fresh_gpu() else { return };
    if !gpu.can_time_on_device() {
        return;
    }
    let step = items(Suite::Quick)
        .into_iter()
        .find_map(|item| match item {
            Item::Step(s) => Some(s),
            _ => None,
        })
        .expect("a training step in the quick suite");
    let mut state = step.prepare(&gpu).unwrap();
    step.step(&mut state).unwrap();
    gpu.sync().unwrap();
    let before = gpu.counters().dispatches;
    step.step(&mut state).unwrap();
    let per_step = gpu.counters().dispatches - before;
    let times = profile_kernels(&gpu, &step, 3).unwrap();
    assert_eq!(
        times.iter().map(|t| t.dispatches).sum::<u64>(),
        3 * per_step
    );
    for kernel in ["matmul", "softmax_xent", "optim_adam_step", "batch_norm"] {
        assert!(
            times.iter().any(|t| t.kernel.starts_with(kernel)),
            "{kernel} in {times:?}"
        );
    }
    let text = kernel_table(&times, 3, "step");
    assert!(
        text.starts_with("  calls   ms/step  share  kernel"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("all kernels"), "{text}");
    assert!(
        text.contains(&format!("{per_step:>7} ")),
        "{per_step} calls a step: {text}"
    );
    assert!(
        gpu.kernel_profile().unwrap().is_empty(),
        "profiling is off afterwards"
    );
}
