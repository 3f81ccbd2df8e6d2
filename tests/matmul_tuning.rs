//! Matmul autotuning (`MatmulKernel::Tuned`): each shape class is measured once, its choice is
//! kept on disk per adapter and driver and read back by the next device, products of a known
//! class record without a sync, and a damaged or unwritable tuning file is reported, never
//! fatal. The software adapter is forced to tune here (its default is the texture kernel).

mod common;
use common::*;
use kiln::prelude::*;
use kiln::tensor::wgpu::{MatmulKernel, ShapeClass, TuningReport, WgpuOptions};
use std::path::Path;

fn tuned_device(dir: &Path) -> Option<WgpuBackend> {
    gpu()?;
    Some(
        WgpuBackend::with_options(WgpuOptions {
            matmul: MatmulKernel::Tuned,
            tuning_dir: Some(dir.to_path_buf()),
            ..WgpuOptions::default()
        })
        .unwrap(),
    )
}

fn report(gpu: &WgpuBackend) -> TuningReport {
    gpu.matmul_tuning().expect("a tuned device has a report")
}

/// (m, n, k, trans_b): three classes, the third met twice at different sizes.
const PRODUCTS: [(usize, usize, usize, bool); 4] = [
    (33, 17, 65, false),
    (40, 40, 40, true),
    (100, 10, 300, false),
    (120, 14, 500, false),
];

/// Runs every product on the GPU and the CPU and checks they agree.
fn multiply_all(gpu: &WgpuBackend) {
    for (i, &(m, n, k, tb)) in PRODUCTS.iter().enumerate() {
        let (ga, ca) = pair(&random_vec(i as u64, m * k, -1.0, 1.0), &[m, k], gpu);
        let b = random_vec(i as u64 + 50, k * n, -1.0, 1.0);
        let (gb, cb) = if tb {
            let (g, c) = pair(&b, &[n, k], gpu);
            (g.t().unwrap(), c.t().unwrap())
        } else {
            pair(&b, &[k, n], gpu)
        };
        assert_tensors_close(
            &format!("tuned {m}×{k}·{k}×{n} tb={tb}"),
            &ga.matmul(&gb).unwrap(),
            &ca.matmul(&cb).unwrap(),
            matmul_tolerance(k),
        );
    }
}

#[test]
fn each_class_is_measured_once_and_remembered_on_disk() {
    let dir = temp_dir("tuning-remembered");
    let Some(first) = tuned_device(&dir) else {
        return;
    };
    assert!(report(&first).classes.is_empty());
    multiply_all(&first);
    assert_eq!(first.counters().matmul_classes_tuned, 3);
    let tuned = report(&first);
    assert_eq!(tuned.classes.len(), 3, "{tuned:?}");
    assert!(tuned.problems.is_empty(), "{:?}", tuned.problems);
    for class in &tuned.classes {
        assert!(tuned.candidates.contains(&class.kernel), "{class:?}");
        assert!(class.seconds > 0.0, "{class:?}");
    }
    let class = ShapeClass::of(&kiln::tensor::MatmulShape {
        batch: 1,
        m: 120,
        n: 14,
        k: 500,
        trans_a: false,
        trans_b: false,
        batch_stride_a: 0,
        batch_stride_b: 0,
    });
    assert_eq!((class.m, class.n, class.k), (128, 16, 512));
    assert!(tuned.classes.iter().any(|c| c.class == class));

    // A product of a known class records without a submit, like any other op.
    let (a, _) = pair(&random_vec(7, 33 * 65, -1.0, 1.0), &[33, 65], &first);
    let (b, _) = pair(&random_vec(8, 65 * 17, -1.0, 1.0), &[65, 17], &first);
    first.sync().unwrap();
    let before = first.counters();
    let product = a.matmul(&b).unwrap();
    let after = first.counters();
    assert_eq!(after.submits, before.submits);
    assert_eq!(after.matmul_classes_tuned, 3);
    drop(product);

    // The file holds the choices; a second device reads them and measures nothing.
    let file = tuned.file.clone().expect("a tuning directory was given");
    assert!(file.starts_with(&dir), "{}", file.display());
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 4);
    let second = tuned_device(&dir).unwrap();
    assert_eq!(report(&second).classes, tuned.classes);
    multiply_all(&second);
    assert_eq!(second.counters().matmul_classes_tuned, 0);
}

#[test]
fn a_damaged_tuning_file_is_reported_and_its_classes_measured_again() {
    let dir = temp_dir("tuning-damaged");
    let Some(first) = tuned_device(&dir) else {
        return;
    };
    multiply_all(&first);
    let file = report(&first).file.unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    // Keep the header, the comment and the first choice; damage the other two.
    let damaged_kernel = lines[3].replace(lines[3].split_whitespace().nth(7).unwrap(), "Tiled7");
    let damaged_size = lines[4].replacen(" 64 ", " 60 ", 1);
    lines.truncate(3);
    let damaged = format!(
        "{}\n{damaged_kernel}\n{damaged_size}\n0 0 64 64\n",
        lines.join("\n")
    );
    std::fs::write(&file, damaged).unwrap();

    let second = tuned_device(&dir).unwrap();
    let loaded = report(&second);
    assert_eq!(loaded.classes.len(), 1, "{loaded:?}");
    assert_eq!(loaded.problems.len(), 3, "{:?}", loaded.problems);
    for (problem, line) in loaded.problems.iter().zip([4, 5, 6]) {
        assert!(
            problem.contains(&format!("line {line}:")) && problem.contains("measured again"),
            "{problem}"
        );
    }
    assert!(
        loaded.problems[0].contains("\"Tiled7\""),
        "{}",
        loaded.problems[0]
    );
    assert!(
        loaded.problems[2].contains("9 fields"),
        "{}",
        loaded.problems[2]
    );
    multiply_all(&second);
    assert_eq!(second.counters().matmul_classes_tuned, 2);
    // The rewritten file is whole again.
    let third = tuned_device(&dir).unwrap();
    assert!(report(&third).problems.is_empty());
    assert_eq!(report(&third).classes.len(), 3);

    // A file from another format is ignored as a whole, with the reason.
    std::fs::write(&file, "something else\n0 0 64 64 64 0 1 Tiled 1e-3\n").unwrap();
    let fourth = tuned_device(&dir).unwrap();
    let ignored = report(&fourth);
    assert!(ignored.classes.is_empty());
    assert!(
        ignored.problems.len() == 1 && ignored.problems[0].contains("line 1"),
        "{:?}",
        ignored.problems
    );
}

#[test]
fn an_unwritable_tuning_directory_keeps_the_choices_in_memory() {
    let dir = temp_dir("tuning-unwritable");
    let blocker = dir.join("not-a-directory");
    std::fs::write(&blocker, "a file where the tuning directory should be").unwrap();
    let Some(gpu) = tuned_device(&blocker.join("kiln")) else {
        return;
    };
    multiply_all(&gpu);
    let tuned = report(&gpu);
    assert_eq!(tuned.classes.len(), 3);
    // Reading and the first write failed, each reported once.
    let problems = &tuned.problems;
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("cannot read"), "{problems:?}");
    assert!(
        problems[1].contains("cannot write") && problems[1].contains("in memory"),
        "{problems:?}"
    );
    // Known classes are not measured again in this process.
    multiply_all(&gpu);
    assert_eq!(gpu.counters().matmul_classes_tuned, 3);
}

#[test]
fn convolution_passes_are_tuned_per_class_and_remembered() {
    let dir = temp_dir("tuning-conv");
    let Some(first) = tuned_device(&dir) else {
        return;
    };
    if report(&first).conv_candidates.is_empty() {
        eprintln!("no choice of convolution kernel on this adapter (no fixed subgroup size)");
        return;
    }
    let options = kiln::tensor::Conv2dOptions {
        stride: 1,
        padding: 1,
        dilation: 1,
        groups: 1,
    };
    let (x, x_c) = pair(
        &random_vec(1, 2 * 3 * 9 * 9, -1.0, 1.0),
        &[2, 3, 9, 9],
        &first,
    );
    let (w, w_c) = pair(&random_vec(2, 4 * 3 * 9, -1.0, 1.0), &[4, 3, 3, 3], &first);
    let s = x.conv2d_shape(&w, options).unwrap();
    let y = x.conv2d(&w, None, None, options).unwrap();
    let y_c = x_c.conv2d(&w_c, None, None, options).unwrap();
    assert_tensors_close("tuned conv", &y, &y_c, matmul_tolerance(27));
    let dx = y.conv2d_backward_input(&w, &s).unwrap();
    let dw = x.conv2d_backward_weight(&y, &s).unwrap();
    assert_tensors_close(
        "tuned conv dx",
        &dx,
        &y_c.conv2d_backward_input(&w_c, &s).unwrap(),
        matmul_tolerance(36),
    );
    assert_tensors_close(
        "tuned conv dw",
        &dw,
        &x_c.conv2d_backward_weight(&y_c, &s).unwrap(),
        matmul_tolerance(162),
    );
    let tuned = report(&first);
    assert!(tuned.problems.is_empty(), "{:?}", tuned.problems);
    assert_eq!(
        tuned.convs.len(),
        3,
        "one class per pass: {:?}",
        tuned.convs
    );
    for conv in &tuned.convs {
        assert!(tuned.conv_candidates.contains(&conv.kernel), "{conv:?}");
        assert!(conv.seconds > 0.0, "{conv:?}");
    }
    let text = std::fs::read_to_string(tuned.file.clone().unwrap()).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("conv forward ")),
        "{text}"
    );

    // A second device reads the choices back, and a known class records without a submit.
    let second = tuned_device(&dir).unwrap();
    assert_eq!(report(&second).convs, tuned.convs);
    let (x2, _) = pair(
        &random_vec(3, 2 * 3 * 9 * 9, -1.0, 1.0),
        &[2, 3, 9, 9],
        &second,
    );
    let (w2, _) = pair(&random_vec(4, 4 * 3 * 9, -1.0, 1.0), &[4, 3, 3, 3], &second);
    second.sync().unwrap();
    let before = second.counters().submits;
    let y2 = x2.conv2d(&w2, None, None, options).unwrap();
    assert_eq!(second.counters().submits, before);
    drop(y2);
}
