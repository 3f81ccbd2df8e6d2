//! GPU vs CPU: softmax, fused softmax cross-entropy (labels and soft targets, forward and
//! backward), batch-norm statistics and backward reductions, and the fused optimiser steps.

mod common;
use common::*;
use kiln::prelude::*;

fn labels(seed: u64, rows: usize, classes: usize) -> Vec<u32> {
    random_vec(seed, rows, 0.0, classes as f32)
        .into_iter()
        .map(|v| (v as u32).min(classes as u32 - 1))
        .collect()
}

fn label_pair(l: &[u32], gpu: &WgpuBackend) -> (Tensor<WgpuBackend>, Tensor<CpuBackend>) {
    (
        Tensor::from_slice(l, [l.len()], gpu).unwrap(),
        Tensor::from_slice(l, [l.len()], &cpu()).unwrap(),
    )
}

/// Rows of probabilities (positive, summing to 1).
fn soft_targets(seed: u64, rows: usize, cols: usize) -> Vec<f32> {
    let raw = random_vec(seed, rows * cols, 0.01, 1.0);
    raw.chunks(cols)
        .flat_map(|r| {
            let s: f32 = r.iter().sum();
            r.iter().map(move |v| v / s).collect::<Vec<_>>()
        })
        .collect()
}

/// Up to 64 columns the kernels take one invocation per row (the `_narrow` forms, 64 rows per
/// workgroup), beyond it a workgroup per row: both sides of the switch, and several workgroups
/// of narrow rows.
const ROW_SHAPES: [(usize, usize); 8] = [
    (1, 1),
    (3, 10),
    (17, 33),
    (127, 3),
    (130, 64),
    (5, 65),
    (33, 257),
    (4, 1000),
];

#[test]
fn softmax_and_log_softmax_match() {
    let Some(gpu) = gpu() else { return };
    for (i, &(r, c)) in ROW_SHAPES.iter().enumerate() {
        let x = random_vec(SEEDS[i % 3], r * c, -5.0, 5.0);
        let (g, cc) = pair(&x, &[r, c], &gpu);
        let tol = precision::softmax(c, 10.0);
        assert_tensors_close(
            &format!("softmax {r}×{c}"),
            &g.softmax().unwrap(),
            &cc.softmax().unwrap(),
            tol,
        );
        assert_tensors_close(
            &format!("log_softmax {r}×{c}"),
            &g.log_softmax().unwrap(),
            &cc.log_softmax().unwrap(),
            tol,
        );
    }
}

#[test]
fn softmax_is_stable_at_plus_minus_80() {
    let Some(gpu) = gpu() else { return };
    let x = [80.0f32, -80.0, 0.0, 80.0, 80.0, 80.0, -80.0, -80.0, -80.0];
    let (g, c) = pair(&x, &[3, 3], &gpu);
    let s = values(g.softmax().unwrap().to_host().unwrap());
    assert!(s.iter().all(|v| v.is_finite()), "{s:?}");
    let tol = precision::softmax(3, 160.0);
    assert_tensors_close(
        "softmax ±80",
        &g.softmax().unwrap(),
        &c.softmax().unwrap(),
        tol,
    );
    assert_tensors_close(
        "log_softmax ±80",
        &g.log_softmax().unwrap(),
        &c.log_softmax().unwrap(),
        tol,
    );
    let l = [1u32, 0, 2];
    let (gl, cl) = label_pair(&l, &gpu);
    assert_tensors_close(
        "xent ±80",
        &g.softmax_xent(&gl).unwrap(),
        &c.softmax_xent(&cl).unwrap(),
        tol,
    );
}

#[test]
fn cross_entropy_with_labels_forward_and_backward() {
    let Some(gpu) = gpu() else { return };
    for (i, &(r, c)) in ROW_SHAPES.iter().enumerate() {
        let x = random_vec(SEEDS[i % 3] + 1, r * c, -4.0, 4.0);
        let l = labels(i as u64, r, c);
        let g_rows = random_vec(i as u64 + 50, r, 0.0, 1.0);
        let (gx, cx) = pair(&x, &[r, c], &gpu);
        let (gl, cl) = label_pair(&l, &gpu);
        let (gg, cg) = pair(&g_rows, &[r], &gpu);
        let tol = precision::softmax(c, 8.0);
        assert_tensors_close(
            &format!("xent {r}×{c}"),
            &gx.softmax_xent(&gl).unwrap(),
            &cx.softmax_xent(&cl).unwrap(),
            tol,
        );
        assert_tensors_close(
            &format!("xent' {r}×{c}"),
            &gx.softmax_xent_backward(&gl, &gg).unwrap(),
            &cx.softmax_xent_backward(&cl, &cg).unwrap(),
            tol,
        );
    }
}

#[test]
fn a_label_out_of_range_gives_that_row_nan_on_the_gpu() {
    // Documented behaviour: the kernels cannot fail, so the row's loss and gradient are NaN
    // (the loop's loss check names it); the other rows are unaffected. Both kernel forms.
    let Some(gpu) = gpu() else { return };
    for cols in [10, 100] {
        let x = random_vec(5, 3 * cols, -2.0, 2.0);
        let g = Tensor::from_slice(&x, [3, cols], &gpu).unwrap();
        let l = Tensor::from_slice(&[1u32, cols as u32, 0], [3], &gpu).unwrap();
        let loss = g.softmax_xent(&l).unwrap().to_vec::<f32>().unwrap();
        assert!(
            loss[1].is_nan() && loss[0].is_finite() && loss[2].is_finite(),
            "{loss:?}"
        );
        let ones = Tensor::from_slice(&[1.0f32; 3], [3], &gpu).unwrap();
        let grad = g
            .softmax_xent_backward(&l, &ones)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert!(
            grad[cols..2 * cols].iter().all(|v| v.is_nan()),
            "cols {cols}"
        );
        assert!(grad[..cols]
            .iter()
            .chain(&grad[2 * cols..])
            .all(|v| v.is_finite()));
    }
}

#[test]
fn cross_entropy_with_soft_targets_forward_and_backward() {
    let Some(gpu) = gpu() else { return };
    for (i, &(r, c)) in ROW_SHAPES.iter().enumerate() {
        let x = random_vec(SEEDS[i % 3] + 2, r * c, -4.0, 4.0);
        let t = soft_targets(i as u64, r, c);
        let g_rows = vec![1.0 / r as f32; r];
        let (gx, cx) = pair(&x, &[r, c], &gpu);
        let (gt, ct) = pair(&t, &[r, c], &gpu);
        let (gg, cg) = pair(&g_rows, &[r], &gpu);
        let tol = precision::softmax(c, 8.0);
        assert_tensors_close(
            &format!("soft xent {r}×{c}"),
            &gx.softmax_xent(&gt).unwrap(),
            &cx.softmax_xent(&ct).unwrap(),
            tol,
        );
        assert_tensors_close(
            &format!("soft xent' {r}×{c}"),
            &gx.softmax_xent_backward(&gt, &gg).unwrap(),
            &cx.softmax_xent_backward(&ct, &cg).unwrap(),
            tol,
        );
    }
}

#[test]
fn fused_cross_entropy_equals_composed_log_softmax() {
    // Fused vs composed on the GPU: −log_softmax(x)[label] picked with a one-hot product.
    let Some(gpu) = gpu() else { return };
    let (r, c) = (33, 10);
    let x = random_vec(11, r * c, -3.0, 3.0);
    let l = labels(12, r, c);
    let onehot: Vec<f32> = l
        .iter()
        .flat_map(|&k| (0..c).map(move |j| (j == k as usize) as u8 as f32))
        .collect();
    let gx = Tensor::from_slice(&x, [r, c], &gpu).unwrap();
    let gl = Tensor::from_slice(&l, [r], &gpu).unwrap();
    let goh = Tensor::from_slice(&onehot, [r, c], &gpu).unwrap();
    let composed = (-(gx.log_softmax().unwrap() * &goh).unwrap().sum(1).unwrap()).unwrap();
    let fused = gx.softmax_xent(&gl).unwrap();
    assert_close(
        "fused vs composed",
        &values(fused.to_host().unwrap()),
        &values(composed.to_host().unwrap()),
        // Both sides on the GPU: the fused kernel's error and the composed ops' (log-softmax,
        // then a product and a 10-term row sum).
        precision::softmax(c, 6.0)
            .plus(precision::softmax(c, 6.0))
            .plus(precision::sum(c + 1, 6.0)),
    );
}

#[test]
fn batch_norm_statistics_match_including_constant_columns() {
    let Some(gpu) = gpu() else { return };
    for &(r, c) in &[(1usize, 1usize), (3, 17), (256, 33), (17, 257), (1000, 3)] {
        let mut x = random_vec((r * c) as u64, r * c, -2.0, 2.0);
        // Column 0 is constant and large: a stable variance gives exactly 0 there.
        for row in 0..r {
            x[row * c] = 1000.5;
        }
        let (gx, cx) = pair(&x, &[r, c], &gpu);
        let (gm, gv) = gx.batch_norm_stats().unwrap();
        let (cm, cv) = cx.batch_norm_stats().unwrap();
        // Column sums of r terms (|x| ≤ 1000.5 in column 0, ≤ 2 elsewhere), divided by r; the
        // variance sums r squares of |x − mean| ≤ 4 after a subtraction and a multiply.
        let depth = precision::column_sum_depth(r);
        let mean_tol = precision::sum(depth, 1000.5);
        let var_tol = precision::sum(depth + 2, 16.0);
        assert_tensors_close(&format!("bn mean {r}×{c}"), &gm, &cm, mean_tol);
        assert_tensors_close(&format!("bn var {r}×{c}"), &gv, &cv, var_tol);
        // Two passes, not E[x²] − E[x]² (which would leave ~0.1 here): the constant column's
        // variance is the square of the mean's own error, at most a few ULP of 1000.5.
        let constant_var = gv.to_vec::<f32>().unwrap()[0] as f64;
        assert!(
            constant_var <= (4.0 * ULP * 1000.5f64).powi(2),
            "constant column variance {constant_var}"
        );

        // The backward reductions take the same statistics on both sides (the CPU's), so
        // they compare the kernel alone: Σ dy, and Σ dy·x̂ whose terms are a subtraction, a
        // sqrt, a division and two products each (≤ 10 ULP), with |x̂| ≤ 2/σ < 2.
        let dy = random_vec((r * c) as u64 + 3, r * c, -1.0, 1.0);
        let (gdy, cdy) = pair(&dy, &[r, c], &gpu);
        let to_gpu =
            |t: &Tensor<CpuBackend>| Tensor::from_host(&t.to_host().unwrap(), [c], &gpu).unwrap();
        let (ga, gb) = gx
            .batch_norm_backward_reduce(&gdy, &to_gpu(&cm), &to_gpu(&cv), 1e-5)
            .unwrap();
        let (ca, cb) = cx.batch_norm_backward_reduce(&cdy, &cm, &cv, 1e-5).unwrap();
        let rows = r as f64;
        assert_tensors_close(
            &format!("bn Σdy {r}×{c}"),
            &ga,
            &ca,
            precision::sum(depth, rows),
        );
        assert_tensors_close(
            &format!("bn Σdy·x̂ {r}×{c}"),
            &gb,
            &cb,
            precision::sum(depth + 10, 2.0 * rows),
        );
    }
}

#[test]
fn fused_adam_and_adamw_steps_match_over_several_steps() {
    let Some(gpu) = gpu() else { return };
    // 1000 and 4096 run the vec4 kernel, 1, 257 and 70 001 the scalar one.
    for (decoupled, n) in [
        (false, 1),
        (false, 1000),
        (true, 257),
        (true, 4096),
        (false, 70_001),
    ] {
        let w = random_vec(21, n, -1.0, 1.0);
        let (gw, cw) = pair(&w, &[n], &gpu);
        let zeros = vec![0.0f32; n];
        let (gm, cm) = pair(&zeros, &[n], &gpu);
        let (gv, cv) = pair(&zeros, &[n], &gpu);
        for step in 1..=5u32 {
            let grad = random_vec(100 + step as u64, n, -1.0, 1.0);
            let (gg, cg) = pair(&grad, &[n], &gpu);
            let s = AdamStep {
                lr: 1e-2,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.1,
                decoupled,
                step,
            };
            gw.adam_step(&gg, &gm, &gv, &s).unwrap();
            cw.adam_step(&cg, &cm, &cv, &s).unwrap();
        }
        let tol = precision::optimizer_steps(5);
        assert_tensors_close(&format!("adam param decoupled={decoupled}"), &gw, &cw, tol);
        assert_tensors_close("adam m", &gm, &cm, tol);
        assert_tensors_close("adam v", &gv, &cv, tol);
    }
}

#[test]
fn fused_sgd_steps_match_with_and_without_momentum() {
    let Some(gpu) = gpu() else { return };
    for (momentum, nesterov) in [(0.0, false), (0.9, false), (0.8, true)] {
        for n in [1, 33, 1000, 70_001] {
            let w = random_vec(31, n, -1.0, 1.0);
            let (gw, cw) = pair(&w, &[n], &gpu);
            let zeros = vec![0.0f32; n];
            let (gvel, cvel) = pair(&zeros, &[n], &gpu);
            let s = SgdStep {
                lr: 0.05,
                momentum,
                nesterov,
                weight_decay: 0.01,
            };
            for step in 1..=5u64 {
                let grad = random_vec(200 + step, n, -1.0, 1.0);
                let (gg, cg) = pair(&grad, &[n], &gpu);
                let (gv, cv) = if momentum == 0.0 {
                    (None, None)
                } else {
                    (Some(&gvel), Some(&cvel))
                };
                gw.sgd_step(&gg, gv, &s).unwrap();
                cw.sgd_step(&cg, cv, &s).unwrap();
            }
            let what = format!("sgd momentum={momentum} nesterov={nesterov} n={n}");
            let tol = precision::optimizer_steps(5);
            assert_tensors_close(&what, &gw, &cw, tol);
            assert_tensors_close(&format!("{what} velocity"), &gvel, &cvel, tol);
        }
    }
}

#[test]
fn fused_adagrad_and_rmsprop_steps_match() {
    let Some(gpu) = gpu() else { return };
    for (decay, gain) in [(1.0, 1.0), (0.9, 0.1)] {
        for n in [1, 257, 70_001] {
            let w = random_vec(41, n, -1.0, 1.0);
            let (gw, cw) = pair(&w, &[n], &gpu);
            let zeros = vec![0.0f32; n];
            let (gs, cs) = pair(&zeros, &[n], &gpu);
            let s = AdaptiveStep {
                lr: 0.01,
                eps: 1e-8,
                weight_decay: 0.01,
                decay,
                gain,
            };
            for step in 1..=5u64 {
                let grad = random_vec(300 + step, n, -1.0, 1.0);
                let (gg, cg) = pair(&grad, &[n], &gpu);
                gw.adaptive_step(&gg, &gs, &s).unwrap();
                cw.adaptive_step(&cg, &cs, &s).unwrap();
            }
            let what = format!("adaptive decay={decay} n={n}");
            let tol = precision::optimizer_steps(5);
            assert_tensors_close(&what, &gw, &cw, tol);
            assert_tensors_close(&format!("{what} accumulator"), &gs, &cs, tol);
        }
    }
}

#[test]
fn in_place_steps_reject_views_and_missing_velocity() {
    let c = cpu();
    let w = Tensor::zeros([4, 4], DType::F32, &c).unwrap();
    let g = Tensor::ones([4, 4], DType::F32, &c).unwrap();
    let s = SgdStep {
        lr: 0.1,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
    };
    let err = w.sgd_step(&g, None, &s).unwrap_err().to_string();
    assert!(err.contains("velocity"), "{err}");
    let view = w.t().unwrap();
    let v = Tensor::zeros([4, 4], DType::F32, &c).unwrap();
    let err = view.sgd_step(&g, Some(&v), &s).unwrap_err().to_string();
    assert!(err.contains("contiguous"), "{err}");
    let wrong = Tensor::zeros([4, 3], DType::F32, &c).unwrap();
    let err = w.sgd_step(&g, Some(&wrong), &s).unwrap_err().to_string();
    assert!(err.contains("velocity"), "{err}");
    let err = w
        .adaptive_step(
            &g,
            &g,
            &AdaptiveStep {
                lr: 0.1,
                eps: 1e-8,
                weight_decay: 0.0,
                decay: 1.0,
                gain: 1.0,
            },
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("distinct"), "{err}");
}

#[test]
fn gated_adam_counts_only_the_steps_taken_like_the_cpu() {
    // After a loss scaler skipped 3 of 40 steps, Adam's bias corrections use t = 37: computed on
    // the device (β^t by repeated squaring) and on the CPU (in f64).
    let Some(gpu) = gpu() else { return };
    let n = 1000;
    let (gw, cw) = pair(&random_vec(61, n, -1.0, 1.0), &[n], &gpu);
    let (gg, cg) = pair(&random_vec(62, n, -1.0, 1.0), &[n], &gpu);
    let (gm, cm) = pair(&random_vec(63, n, -0.1, 0.1), &[n], &gpu);
    let (gv, cv) = pair(&random_vec(64, n, 0.005, 0.01), &[n], &gpu);
    let flags = [0u32, 3, 0];
    let gflags = Tensor::from_slice(&flags, [3], &gpu).unwrap();
    let cflags = Tensor::from_slice(&flags, [3], &cpu()).unwrap();
    let s = AdamStep {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: true,
        step: 40,
    };
    gw.adam_step_gated(&gg, &gm, &gv, &s, Some(&gflags))
        .unwrap();
    cw.adam_step_gated(&cg, &cm, &cv, &s, Some(&cflags))
        .unwrap();
    // v ≥ 0.005 keeps |m̂/√v̂| < 1: every term of the update is below 1, as the table assumes.
    let tol = precision::optimizer_steps(1);
    assert_tensors_close("gated adam param", &gw, &cw, tol);
    assert_tensors_close("gated adam m", &gm, &cm, tol);
    assert_tensors_close("gated adam v", &gv, &cv, tol);
}
