//! Subnormal numbers. WGSL lets a driver flush any subnormal input or output of a float
//! operation to zero, and many GPUs do; the CPU backend keeps them. The optimiser steps, batch
//! norm and softmax cross-entropy must not care: fed gradients, parameters and logits whose
//! values (or squares, or exponentials) fall in the subnormal range, every backend agrees with
//! the CPU within the precision table's bounds, and an element whose gradient is subnormal
//! barely moves, flushed or not (no ε-free division turns 10⁻³⁹ into a step of lr).

mod common;
use common::*;
use kiln::prelude::*;

/// Subnormal values, values whose squares are subnormal or underflow, the smallest normal
/// numbers, and ordinary ones.
const VALUES: [f32; 12] = [
    1e-39, -3e-40, 1.4e-45, 1e-20, -3e-21, 1e-25, 1.2e-38, -1e-37, 0.5, -0.25, 0.0, 2e-39,
];

fn repeated(n: usize, shift: usize) -> Vec<f32> {
    (0..n).map(|i| VALUES[(i + shift) % VALUES.len()]).collect()
}

/// Whether the adapter flushes subnormals (for the log: the tests pass either way).
fn report_flushing(gpu: &WgpuBackend) {
    let x = Tensor::from_slice(&[1e-39f32], [1], gpu).unwrap();
    let y = (&x * 1.0).unwrap().to_vec::<f32>().unwrap()[0];
    eprintln!(
        "{} {} subnormals",
        kiln::tensor::CoreOps::name(gpu),
        if y == 0.0 { "flushes" } else { "keeps" }
    );
}

/// One optimiser step on (parameter, gradient, state a, state b).
type Step<'a, B> = &'a dyn Fn(&Tensor<B>, &Tensor<B>, &Tensor<B>, &Tensor<B>);

/// Parameters after `steps` of `step` on each backend, from the same parameters, gradients
/// and zeroed state; `step` gets (parameter, gradient, state a, state b).
fn after_steps<B: Backend>(backend: &B, steps: usize, step: Step<B>) -> Vec<Vec<f64>> {
    let n = 37;
    let param = Tensor::from_vec(repeated(n, 3), [n], backend).unwrap();
    let (a, b) = (
        Tensor::zeros([n], DType::F32, backend).unwrap(),
        Tensor::zeros([n], DType::F32, backend).unwrap(),
    );
    for s in 0..steps {
        let grad = Tensor::from_vec(repeated(n, s), [n], backend).unwrap();
        step(&param, &grad, &a, &b);
    }
    [&param, &a, &b]
        .iter()
        .map(|t| values(t.to_host().unwrap()))
        .collect()
}

fn check_optimizer(
    gpu: &WgpuBackend,
    what: &str,
    lr: f64,
    step_gpu: Step<WgpuBackend>,
    step_cpu: Step<CpuBackend>,
) {
    let steps = 5;
    let g = after_steps(gpu, steps, step_gpu);
    let c = after_steps(&cpu(), steps, step_cpu);
    for (i, (gv, cv)) in g.iter().zip(&c).enumerate() {
        assert_close(
            &format!("{what}: tensor {i}"),
            gv,
            cv,
            precision::optimizer_steps(steps),
        );
    }
    // Every gradient an element saw was subnormal (or zero): it moved by far less than lr.
    let start = repeated(37, 3);
    for (e, (&moved, &began)) in g[0].iter().zip(&start).enumerate() {
        let grads: Vec<f32> = (0..steps).map(|s| VALUES[(e + s) % VALUES.len()]).collect();
        if grads.iter().all(|g| g.abs() < f32::MIN_POSITIVE) {
            assert!(
                (moved - began as f64).abs() < 1e-6 * lr,
                "{what}: element {e} with gradients {grads:?} moved from {began} to {moved}"
            );
        }
    }
}

#[test]
fn optimizer_steps_agree_when_gradients_are_subnormal() {
    let Some(gpu) = gpu() else { return };
    report_flushing(&gpu);
    for (decoupled, weight_decay) in [(false, 0.0), (true, 0.01)] {
        let s = AdamStep {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            decoupled,
            step: 1,
        };
        let adam = |step: u32| AdamStep { step, ..s };
        // Each call is one step: count them for Adam's bias corrections.
        let count = std::cell::Cell::new(0u32);
        let count_cpu = std::cell::Cell::new(0u32);
        check_optimizer(
            &gpu,
            &format!("adam decoupled={decoupled}"),
            0.01,
            &|p, g, m, v| {
                count.set(count.get() + 1);
                p.adam_step(g, m, v, &adam(count.get())).unwrap()
            },
            &|p, g, m, v| {
                count_cpu.set(count_cpu.get() + 1);
                p.adam_step(g, m, v, &adam(count_cpu.get())).unwrap()
            },
        );
    }
    for (momentum, nesterov) in [(0.0, false), (0.9, false), (0.9, true)] {
        let s = SgdStep {
            lr: 0.05,
            momentum,
            nesterov,
            weight_decay: 0.0,
        };
        check_optimizer(
            &gpu,
            &format!("sgd momentum={momentum} nesterov={nesterov}"),
            0.05,
            &|p, g, v, _| p.sgd_step(g, (momentum != 0.0).then_some(v), &s).unwrap(),
            &|p, g, v, _| p.sgd_step(g, (momentum != 0.0).then_some(v), &s).unwrap(),
        );
    }
    // AdaGrad (PyTorch's ε = 1e-10) and RMSProp.
    for (decay, gain, eps) in [(1.0, 1.0, 1e-10), (0.99, 0.01, 1e-8)] {
        let s = AdaptiveStep {
            lr: 0.05,
            eps,
            weight_decay: 0.0,
            decay,
            gain,
        };
        check_optimizer(
            &gpu,
            &format!("adaptive decay={decay}"),
            0.05,
            &|p, g, acc, _| p.adaptive_step(g, acc, &s).unwrap(),
            &|p, g, acc, _| p.adaptive_step(g, acc, &s).unwrap(),
        );
    }
}

#[test]
fn batch_norm_agrees_on_subnormal_features_and_gradients() {
    let Some(gpu) = gpu() else { return };
    let (rows, cols) = (40, 12);
    // Column j holds VALUES[j] scaled per row: tiny columns have subnormal means and variances
    // that underflow; dy is subnormal in every other column.
    let x: Vec<f32> = (0..rows * cols)
        .map(|i| VALUES[i % cols] * (1.0 + (i / cols) as f32 / 8.0))
        .collect();
    let dy: Vec<f32> = (0..rows * cols)
        .map(|i| {
            if i % 2 == 0 {
                1e-39
            } else {
                0.5 - (i % 7) as f32 / 7.0
            }
        })
        .collect();
    let (gx, cx) = pair(&x, &[rows, cols], &gpu);
    let (gdy, cdy) = pair(&dy, &[rows, cols], &gpu);
    let (gm, gv) = gx.batch_norm_stats().unwrap();
    let (cm, cv) = cx.batch_norm_stats().unwrap();
    // |x| ≤ 0.5 · (1 + 39/8) < 3, |x − mean| < 3.
    let depth = precision::column_sum_depth(rows);
    assert_tensors_close("mean", &gm, &cm, precision::sum(depth, 3.0));
    assert_tensors_close("var", &gv, &cv, precision::sum(depth + 2, 9.0));
    let to_gpu =
        |t: &Tensor<CpuBackend>| Tensor::from_host(&t.to_host().unwrap(), [cols], &gpu).unwrap();
    let (ga, gb) = gx
        .batch_norm_backward_reduce(&gdy, (&to_gpu(&cm), &to_gpu(&cv)), 1e-5)
        .unwrap();
    let (ca, cb) = cx
        .batch_norm_backward_reduce(&cdy, (&cm, &cv), 1e-5)
        .unwrap();
    let r = rows as f64;
    assert_tensors_close("Σdy", &ga, &ca, precision::sum(depth, r));
    // |x̂| < 2 in the ordinary columns; in the tiny ones x − mean is itself tiny (≤ 10⁻¹⁹), so
    // x̂ = (x − mean)/√(var + ε) stays tiny too, flushed or not.
    assert_tensors_close("Σdy·x̂", &gb, &cb, precision::sum(depth + 10, 2.0 * r));
}

#[test]
fn softmax_cross_entropy_agrees_when_probabilities_are_subnormal() {
    let Some(gpu) = gpu() else { return };
    // exp(−88) … exp(−103) are subnormal; exp(−110) underflows.
    let logits = [0.0f32, -88.0, -90.0, -95.0, -100.0, -103.0, -110.0, -1.0];
    let rows = 3;
    let x: Vec<f32> = (0..rows).flat_map(|_| logits).collect();
    let labels = [0u32, 1, 7];
    // The second row's upstream gradient is subnormal itself.
    let upstream = [1.0f32, 1e-39, 0.5];
    let (gx, cx) = pair(&x, &[rows, 8], &gpu);
    let (gl, cl) = (
        Tensor::from_slice(&labels, [rows], &gpu).unwrap(),
        Tensor::from_slice(&labels, [rows], &cpu()).unwrap(),
    );
    let (gu, cu) = pair(&upstream, &[rows], &gpu);
    let tol = precision::softmax(8, 110.0);
    assert_tensors_close(
        "loss",
        &gx.softmax_xent(&gl).unwrap(),
        &cx.softmax_xent(&cl).unwrap(),
        tol,
    );
    assert_tensors_close(
        "gradient",
        &gx.softmax_xent_backward(&gl, &gu).unwrap(),
        &cx.softmax_xent_backward(&cl, &cu).unwrap(),
        tol,
    );
}
