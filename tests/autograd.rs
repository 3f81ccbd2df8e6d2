//! Autograd: gradcheck (centered differences in f64 on the CPU backend) for every recorded op
//! family, GPU f32 gradients against CPU f64 gradients for an MLP, accumulation, no_grad,
//! detach, and errors.

mod common;
use common::*;
use kiln::prelude::*;
use kiln::tensor::{BinaryOp, HostData, UnaryOp};

fn check(
    what: &str,
    f: impl Fn(&[Var<CpuBackend>]) -> kiln::tensor::Result<Var<CpuBackend>>,
    inputs: &[Tensor<CpuBackend>],
) -> kiln::autograd::GradcheckReport {
    let report = gradcheck(f, inputs, GradcheckOptions::default()).unwrap();
    assert!(report.passed(), "{what}:\n{report}");
    report
}

#[test]
fn gradcheck_unary_ops() {
    for op in UnaryOp::ALL {
        let (low, high) = match op {
            UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Recip => (0.2, 3.0),
            _ => (-2.0, 2.0),
        };
        let x = f64_tensor(1, &[3, 5], low, high);
        let report = check(&format!("{op:?}"), |v| v[0].unary(op)?.sum_all(), &[x]);
        if !op.has_kink() {
            assert_eq!(report.inputs[0].skipped_at_kinks, 0, "{op:?} is smooth");
        }
    }
}

#[test]
fn gradcheck_relu_skips_elements_at_the_kink() {
    // Elements within h of 0 straddle ReLU's kink; gradcheck skips and counts them.
    let x = Tensor::from_vec(vec![-1.0f64, -3e-6, 0.0, 4e-6, 2.0], [5], &cpu()).unwrap();
    let report = check("relu at kink", |v| v[0].relu()?.sum_all(), &[x]);
    assert_eq!(report.inputs[0].skipped_at_kinks, 3);
    assert_eq!(report.inputs[0].checked, 2);
}

#[test]
fn gradcheck_binary_ops_with_broadcasting() {
    let shapes: [(&[usize], &[usize]); 3] =
        [(&[3, 4], &[3, 4]), (&[3, 4], &[4]), (&[2, 1, 4], &[3, 1])];
    for op in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Max,
        BinaryOp::Min,
    ] {
        for (i, (ls, rs)) in shapes.iter().enumerate() {
            let a = f64_tensor(10 + i as u64, ls, 0.5, 2.0);
            let b = f64_tensor(20 + i as u64, rs, 0.5, 2.0);
            // A weighted sum makes every output element matter differently.
            check(
                &format!("{op:?} {ls:?}·{rs:?}"),
                |v| weighted_sum(&v[0].binary(op, &v[1])?),
                &[a, b],
            );
        }
    }
}

fn weighted_sum(v: &Var<CpuBackend>) -> kiln::tensor::Result<Var<CpuBackend>> {
    let n = v.value().numel();
    let weights: Vec<f64> = (0..n).map(|i| 0.5 + (i % 7) as f64 * 0.25).collect();
    let w = Var::constant(Tensor::from_vec(weights, v.shape().clone(), &cpu())?);
    v.mul(&w)?.sum_all()
}

#[test]
fn gradcheck_scalar_forms() {
    let x = f64_tensor(3, &[7], 0.5, 2.0);
    for op in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Max,
        BinaryOp::Min,
    ] {
        check(
            &format!("x {op:?} 1.7"),
            |v| weighted_sum(&v[0].binary_scalar(op, 1.7)?),
            std::slice::from_ref(&x),
        );
        check(
            &format!("1.7 {op:?} x"),
            |v| weighted_sum(&Var::scalar_binary(1.7, op, &v[0])?),
            std::slice::from_ref(&x),
        );
    }
}

#[test]
fn gradcheck_matmul_reductions_and_views() {
    let a = f64_tensor(4, &[3, 5], -1.0, 1.0);
    let b = f64_tensor(5, &[5, 4], -1.0, 1.0);
    check(
        "matmul",
        |v| weighted_sum(&v[0].matmul(&v[1])?),
        &[a.clone(), b.clone()],
    );
    check(
        "matmul of transposes",
        |v| weighted_sum(&v[1].transpose(0, 1)?.matmul(&v[0].transpose(0, 1)?)?),
        &[a.clone(), b],
    );
    check(
        "sum axis 0",
        |v| weighted_sum(&v[0].sum(0)?),
        std::slice::from_ref(&a),
    );
    check(
        "mean axis 1",
        |v| weighted_sum(&v[0].mean(1)?),
        std::slice::from_ref(&a),
    );
    check(
        "mean_all",
        |v| v[0].unary(UnaryOp::Square)?.mean_all(),
        std::slice::from_ref(&a),
    );
    check(
        "reshape",
        |v| weighted_sum(&v[0].reshape([5, 3])?),
        std::slice::from_ref(&a),
    );
    check(
        "broadcast_to",
        |v| weighted_sum(&v[0].reshape([1, 3, 5])?.broadcast_to([2, 3, 5])?),
        std::slice::from_ref(&a),
    );
}

#[test]
fn gradcheck_softmax_select_and_batched_matmul() {
    let x = f64_tensor(70, &[3, 5], -2.0, 2.0);
    check(
        "softmax",
        |v| weighted_sum(&v[0].softmax()?),
        std::slice::from_ref(&x),
    );
    check(
        "log_softmax",
        |v| weighted_sum(&v[0].log_softmax()?),
        std::slice::from_ref(&x),
    );
    let cond =
        Var::constant(Tensor::from_vec(vec![1.0f64, 0.0, 1.0, 1.0, 0.0], [5], &cpu()).unwrap());
    let other = f64_tensor(71, &[3, 1], -1.0, 1.0);
    check(
        "select",
        |v| weighted_sum(&cond.select(&v[0], &v[1])?),
        &[x, other],
    );
    let a = f64_tensor(72, &[2, 3, 4], -1.0, 1.0);
    let b3 = f64_tensor(73, &[2, 4, 5], -1.0, 1.0);
    let b2 = f64_tensor(74, &[4, 5], -1.0, 1.0);
    check(
        "batched matmul",
        |v| weighted_sum(&v[0].matmul(&v[1])?),
        &[a.clone(), b3],
    );
    check(
        "batched matmul, broadcast matrix",
        |v| weighted_sum(&v[0].matmul(&v[1])?),
        &[a, b2],
    );
}

#[test]
fn gradcheck_fused_linear_layer_and_narrow() {
    let x = f64_tensor(80, &[5, 4], -1.0, 1.0);
    let w = f64_tensor(81, &[4, 3], -1.0, 1.0);
    let b = f64_tensor(82, &[3], -0.5, 0.5);
    for act in [
        None,
        Some(UnaryOp::Tanh),
        Some(UnaryOp::Sigmoid),
        Some(UnaryOp::Relu),
    ] {
        check(
            &format!("matmul_bias_act {act:?}"),
            |v| weighted_sum(&v[0].matmul_bias_act(&v[1], &v[2], act)?),
            &[x.clone(), w.clone(), b.clone()],
        );
    }
    let t = f64_tensor(83, &[4, 6, 3], -1.0, 1.0);
    check(
        "narrow dim 0",
        |v| weighted_sum(&v[0].narrow(0, 1, 2)?),
        std::slice::from_ref(&t),
    );
    check(
        "narrow dim 1",
        |v| weighted_sum(&v[0].narrow(1, 2, 3)?),
        std::slice::from_ref(&t),
    );
    check(
        "narrow dim 2",
        |v| weighted_sum(&v[0].narrow(-1, 1, 1)?),
        &[t],
    );
}

#[test]
fn gradcheck_softmax_cross_entropy() {
    let logits = f64_tensor(6, &[4, 5], -2.0, 2.0);
    let labels = Tensor::from_vec(vec![0u32, 4, 2, 2], [4], &cpu()).unwrap();
    check(
        "xent labels",
        |v| v[0].softmax_xent(&labels)?.mean_all(),
        std::slice::from_ref(&logits),
    );
    let soft = Tensor::from_vec(vec![0.2f64; 20], [4, 5], &cpu()).unwrap();
    check(
        "xent soft",
        |v| weighted_sum(&v[0].softmax_xent(&soft)?),
        &[logits],
    );
}

/// A 2-layer MLP: softmax-xent(relu(x·W1 + b1)·W2 + b2), mean over the batch.
fn mlp2<B: kiln::tensor::Backend>(
    v: &[Var<B>],
    labels: &Tensor<B>,
) -> kiln::tensor::Result<Var<B>> {
    let (x, w1, b1, w2, b2) = (&v[0], &v[1], &v[2], &v[3], &v[4]);
    let h = x.matmul(w1)?.add(b1)?.tanh()?;
    h.matmul(w2)?.add(b2)?.softmax_xent(labels)?.mean_all()
}

#[test]
fn gradcheck_two_layer_mlp() {
    let inputs = [
        f64_tensor(30, &[6, 4], -1.0, 1.0),
        f64_tensor(31, &[4, 8], -0.5, 0.5),
        f64_tensor(32, &[8], -0.1, 0.1),
        f64_tensor(33, &[8, 3], -0.5, 0.5),
        f64_tensor(34, &[3], -0.1, 0.1),
    ];
    let labels = Tensor::from_vec(vec![0u32, 1, 2, 1, 0, 2], [6], &cpu()).unwrap();
    check("mlp", |v| mlp2(v, &labels), &inputs);
}

/// A 3-layer tanh MLP over (x, W1, b1, W2, b2, W3, b3).
fn mlp3<B: kiln::tensor::Backend>(
    v: &[Var<B>],
    labels: &Tensor<B>,
) -> kiln::tensor::Result<Var<B>> {
    let h = v[0].matmul(&v[1])?.add(&v[2])?.tanh()?;
    let h = h.matmul(&v[3])?.add(&v[4])?.sigmoid()?;
    h.matmul(&v[5])?
        .add(&v[6])?
        .softmax_xent(labels)?
        .mean_all()
}

#[test]
fn gpu_f32_gradients_match_cpu_f64_gradients_for_an_mlp() {
    let Some(gpu) = gpu() else { return };
    let shapes: [&[usize]; 7] = [
        &[32, 20],
        &[20, 16],
        &[16],
        &[16, 12],
        &[12],
        &[12, 5],
        &[5],
    ];
    let labels: Vec<u32> = (0..32).map(|i| (i * 7 % 5) as u32).collect();
    let host: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| random_vec(40 + i as u64, s.iter().product(), -0.5, 0.5))
        .collect();
    let gpu_vars: Vec<Var<WgpuBackend>> = host
        .iter()
        .zip(shapes)
        .map(|(d, s)| Var::parameter(Tensor::from_slice(d, s.to_vec(), &gpu).unwrap()))
        .collect();
    let cpu_vars: Vec<Var<CpuBackend>> = host
        .iter()
        .zip(shapes)
        .map(|(d, s)| {
            Var::parameter(
                Tensor::from_host(
                    &HostData::F64(d.iter().map(|&x| x as f64).collect()),
                    s.to_vec(),
                    &cpu(),
                )
                .unwrap(),
            )
        })
        .collect();
    mlp3(&gpu_vars, &Tensor::from_slice(&labels, [32], &gpu).unwrap())
        .unwrap()
        .backward()
        .unwrap();
    mlp3(
        &cpu_vars,
        &Tensor::from_slice(&labels, [32], &cpu()).unwrap(),
    )
    .unwrap()
    .backward()
    .unwrap();
    for (i, (g, c)) in gpu_vars.iter().zip(&cpu_vars).enumerate() {
        let g = values(g.grad().unwrap().to_host().unwrap());
        let c = values(c.grad().unwrap().to_host().unwrap());
        assert_close(
            &format!("gradient of input {i}"),
            &g,
            &c,
            GRADIENT_GPU_VS_CPU,
        );
    }
}

#[test]
fn gradients_accumulate_until_zeroed() {
    let c = cpu();
    let x = Var::parameter(Tensor::from_vec(vec![1.0f64, 2.0], [2], &c).unwrap());
    for _ in 0..2 {
        let y = x.mul(&x).unwrap().sum_all().unwrap(); // dy/dx = 2x
        y.backward().unwrap();
    }
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![4.0, 8.0]);
    x.zero_grad();
    assert!(x.grad().is_none());
    // A variable used twice gets the sum of both paths: d(x·x + x)/dx = 2x + 1.
    x.mul(&x)
        .unwrap()
        .add(&x)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![3.0, 5.0]);
}

#[test]
fn no_grad_and_detach_record_nothing() {
    let c = cpu();
    let x = Var::parameter(Tensor::from_vec(vec![1.0f64, 2.0], [2], &c).unwrap());
    let y = no_grad(|| x.mul(&x).unwrap());
    assert!(!y.requires_grad());
    let z = x.detach().mul(&x).unwrap().sum_all().unwrap(); // only the second factor is tracked
    z.backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![1.0, 2.0]);
}

#[test]
fn backward_errors_name_the_problem() {
    let c = cpu();
    let x = Var::parameter(Tensor::from_vec(vec![1.0f64, 2.0], [2], &c).unwrap());
    let y = x.mul(&x).unwrap();
    let err = y.backward().unwrap_err().to_string();
    assert!(
        err.contains("scalar") && err.contains("[2]") && err.contains("mul"),
        "{err}"
    );
    let err = y
        .backward_with(Tensor::ones([3], DType::F64, &c).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("[2]") && err.contains("[3]"), "{err}");
    let constant = Var::constant(Tensor::ones([1], DType::F64, &c).unwrap());
    assert!(constant.backward().is_err());
    // The graph is freed by backward; a second backward through it is an error, not a panic.
    let z = x.mul(&x).unwrap().sum_all().unwrap();
    z.backward().unwrap();
    let err = z.backward().unwrap_err().to_string();
    assert!(err.contains("already freed"), "{err}");
}

#[test]
fn gradcheck_extremes_prelu_dropout_gather_and_batch_norm() {
    let x = f64_tensor(50, &[4, 6], -2.0, 2.0);
    check(
        "max axis 1",
        |v| weighted_sum(&v[0].max(1)?),
        std::slice::from_ref(&x),
    );
    check(
        "min axis 0",
        |v| weighted_sum(&v[0].min(0)?),
        std::slice::from_ref(&x),
    );
    let alpha = f64_tensor(51, &[6], 0.05, 0.3);
    check(
        "prelu",
        |v| weighted_sum(&v[0].prelu(&v[1])?),
        &[x.clone(), alpha],
    );
    let rng = RngState { seed: 3, offset: 0 };
    check(
        "dropout",
        |v| weighted_sum(&v[0].dropout(0.4, rng)?),
        std::slice::from_ref(&x),
    );
    let indices = Tensor::from_vec(vec![3u32, 0, 3, 1, 2], [5], &cpu()).unwrap();
    check(
        "gather_rows (row 3 twice)",
        |v| weighted_sum(&v[0].gather_rows(&indices)?),
        std::slice::from_ref(&x),
    );
    let (gamma, beta) = (
        f64_tensor(52, &[6], 0.5, 1.5),
        f64_tensor(53, &[6], -0.5, 0.5),
    );
    let bn = |v: &[Var<CpuBackend>],
              running: Option<(&Tensor<CpuBackend>, &Tensor<CpuBackend>)>| {
        weighted_sum(&v[0].batch_norm((&v[1], &v[2]), running, 1e-5)?.0)
    };
    check(
        "batch_norm [4, 6] (batch statistics)",
        |v| bn(v, None),
        &[x.clone(), gamma.clone(), beta.clone()],
    );
    // Images: statistics per channel over N·H·W.
    let (gamma3, beta3) = (
        f64_tensor(54, &[3], 0.5, 1.5),
        f64_tensor(55, &[3], -0.5, 0.5),
    );
    check(
        "batch_norm [2, 3, 3, 5] (batch statistics)",
        |v| bn(v, None),
        &[f64_tensor(56, &[2, 3, 3, 5], -2.0, 2.0), gamma3, beta3],
    );
    // Running statistics are constants.
    let (mean, var) = (
        f64_tensor(57, &[6], -0.5, 0.5),
        f64_tensor(58, &[6], 0.5, 2.0),
    );
    check(
        "batch_norm [4, 6] (running statistics)",
        |v| bn(v, Some((&mean, &var))),
        &[x, gamma, beta],
    );
}

/// An MLP with batch norm: xent(relu(bn(x·W1) · γ + β) · W2 + b2).
fn mlp_bn<B: kiln::tensor::Backend>(
    v: &[Var<B>],
    labels: &Tensor<B>,
) -> kiln::tensor::Result<Var<B>> {
    let (x, w1, gamma, beta, w2, b2) = (&v[0], &v[1], &v[2], &v[3], &v[4], &v[5]);
    let h = x
        .matmul(w1)?
        .batch_norm((gamma, beta), None, 1e-5)?
        .0
        .relu()?;
    h.matmul(w2)?.add(b2)?.softmax_xent(labels)?.mean_all()
}

#[test]
fn gradcheck_mlp_with_batch_norm() {
    let inputs = [
        f64_tensor(60, &[8, 5], -1.0, 1.0),
        f64_tensor(61, &[5, 6], -0.5, 0.5),
        f64_tensor(62, &[6], 0.5, 1.5),
        f64_tensor(63, &[6], -0.1, 0.1),
        f64_tensor(64, &[6, 3], -0.5, 0.5),
        f64_tensor(65, &[3], -0.1, 0.1),
    ];
    let labels = Tensor::from_vec(vec![0u32, 1, 2, 1, 0, 2, 2, 1], [8], &cpu()).unwrap();
    check("mlp with batch norm", |v| mlp_bn(v, &labels), &inputs);
}

#[test]
fn anomaly_mode_names_the_first_op_that_made_a_nan() {
    let c = cpu();
    let x = Var::parameter(Tensor::from_vec(vec![1.0f64, -1.0], [2], &c).unwrap());
    kiln::autograd::set_anomaly_detection(true);
    let result = x.unary(UnaryOp::Sqrt).and_then(|y| y.sum_all());
    kiln::autograd::set_anomaly_detection(false);
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("sqrt")
            && err.contains("NaN")
            && err.contains("[2]")
            && err.contains("tests/autograd.rs"),
        "{err}"
    );
    // Off: the same computation records quietly.
    assert!(x.unary(UnaryOp::Sqrt).unwrap().sum_all().is_ok());
}

#[test]
fn backward_on_the_gpu_neither_submits_nor_reads_back() {
    let Some(gpu) = fresh_gpu() else { return };
    let (vars, labels) = gpu_mlp(&gpu, &[64, 32, 32, 10]);
    let loss = mlp(&vars, &labels).unwrap();
    gpu.sync().unwrap();
    let before = gpu.counters();
    loss.backward().unwrap();
    let after = gpu.counters();
    assert_eq!(after.submits, before.submits, "backward submitted work");
    assert_eq!(after.readbacks, before.readbacks, "backward read back");
    assert!(after.dispatches > before.dispatches);
}

#[test]
fn backward_frees_activations_as_it_goes() {
    let Some(gpu) = fresh_gpu() else { return };
    let widths = [256, 512, 512, 512, 10];
    let (vars, labels) = gpu_mlp(&gpu, &widths);
    gpu.sync().unwrap();
    let params_live = gpu.counters().live_bytes;
    let loss = mlp(&vars, &labels).unwrap();
    gpu.sync().unwrap();
    let forward_live = gpu.counters().live_bytes;
    gpu.reset_peak_memory();
    loss.backward().unwrap();
    gpu.sync().unwrap();
    let peak = gpu.counters().peak_live_bytes;
    let activations = forward_live - params_live;
    let gradients: u64 = vars[1..]
        .iter()
        .map(|v| kiln::tensor::wgpu::size_class(v.value().numel() as u64 * 4))
        .sum();
    // Without freeing, backward would hold every activation, every activation gradient and
    // every parameter gradient at once; with freeing it stays within the forward activations
    // plus the gradients (parameter gradients, and the largest activation and its gradient
    // in flight).
    let largest_activation = kiln::tensor::wgpu::size_class(256 * 512 * 4);
    let bound = forward_live + gradients + 2 * largest_activation;
    assert!(peak <= bound, "peak {peak} B during backward; forward live {forward_live} B (activations {activations} B), gradients {gradients} B");
    // The loss is still held, but backward released the graph behind it: what stays is the
    // parameters, their gradients and the loss itself (one small buffer).
    let after = gpu.counters().live_bytes;
    assert!(
        after <= params_live + gradients + 256,
        "{after} B live after backward; parameters {params_live} B, gradients {gradients} B"
    );
    drop(loss);
}

/// Parameters (and a batch) of an MLP with the given widths; the first width is the input.
fn gpu_mlp(gpu: &WgpuBackend, widths: &[usize]) -> (Vec<Var<WgpuBackend>>, Tensor<WgpuBackend>) {
    let batch = 64;
    let mut vars = vec![Var::constant(
        Tensor::rand_normal(
            [batch, widths[0]],
            0.0,
            1.0,
            RngState { seed: 1, offset: 0 },
            gpu,
        )
        .unwrap(),
    )];
    for (i, pair) in widths.windows(2).enumerate() {
        let rng = RngState {
            seed: 100 + i as u64,
            offset: 0,
        };
        vars.push(Var::parameter(
            Tensor::rand_normal(
                [pair[0], pair[1]],
                0.0,
                (1.0 / pair[0] as f32).sqrt(),
                rng,
                gpu,
            )
            .unwrap(),
        ));
        vars.push(Var::parameter(
            Tensor::zeros([pair[1]], DType::F32, gpu).unwrap(),
        ));
    }
    let labels: Vec<u32> = (0..batch as u32)
        .map(|i| i % *widths.last().unwrap() as u32)
        .collect();
    (vars, Tensor::from_vec(labels, [batch], gpu).unwrap())
}

/// relu MLP over (x, W1, b1, W2, b2, ...) ending in mean softmax cross-entropy.
fn mlp<B: kiln::tensor::Backend>(v: &[Var<B>], labels: &Tensor<B>) -> kiln::tensor::Result<Var<B>> {
    let layers = (v.len() - 1) / 2;
    let mut h = v[0].clone();
    for l in 0..layers {
        h = h.matmul(&v[1 + 2 * l])?.add(&v[2 + 2 * l])?;
        if l + 1 < layers {
            h = h.relu()?;
        }
    }
    h.softmax_xent(labels)?.mean_all()
}

/// A 2-layer tanh MLP whose products run in mixed precision: f32 parameters cast to f16, f16
/// products with f32 results (the bias's dtype), the loss in f32.
fn mixed_mlp<B: kiln::tensor::Backend>(
    v: &[Var<B>],
    labels: &Tensor<B>,
) -> kiln::tensor::Result<Var<B>> {
    let half = |x: &Var<B>| x.cast(DType::F16);
    let h = half(&v[0])?.matmul_bias_act(&half(&v[1])?, &v[2], Some(UnaryOp::Tanh))?;
    half(&h)?
        .matmul_bias_act(&half(&v[3])?, &v[4], None)?
        .softmax_xent(labels)?
        .mean_all()
}

#[test]
fn mixed_precision_gradients_flow_through_casts_to_f32_parameters() {
    let shapes: [&[usize]; 5] = [&[33, 20], &[20, 17], &[17], &[17, 5], &[5]];
    let host: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| random_vec(90 + i as u64, s.iter().product(), -0.5, 0.5))
        .collect();
    let labels: Vec<u32> = (0..33).map(|i| (i * 3 % 5) as u32).collect();
    // An f64 reference on the CPU, then mixed precision on the CPU and on the GPU.
    let cpu_vars = |f64: bool| -> Vec<Var<CpuBackend>> {
        host.iter()
            .zip(shapes)
            .map(|(d, s)| {
                let t = Tensor::from_slice(d, s.to_vec(), &cpu()).unwrap();
                Var::parameter(if f64 { t.cast(DType::F64).unwrap() } else { t })
            })
            .collect()
    };
    let reference = cpu_vars(true);
    mlp2_tanh(
        &reference,
        &Tensor::from_slice(&labels, [33], &cpu()).unwrap(),
    )
    .unwrap()
    .backward()
    .unwrap();
    let mixed = cpu_vars(false);
    let loss = mixed_mlp(&mixed, &Tensor::from_slice(&labels, [33], &cpu()).unwrap()).unwrap();
    assert_eq!(loss.value().dtype(), DType::F32);
    loss.backward().unwrap();
    let f16_tolerance = precision::F16_OPERANDS;
    for (i, (m, r)) in mixed.iter().zip(&reference).enumerate() {
        let g = m.grad().unwrap();
        assert_eq!(g.dtype(), DType::F32, "parameter {i} keeps an f32 gradient");
        assert_close(
            &format!("mixed vs f64 gradient of input {i}"),
            &values(g.to_host().unwrap()),
            &values(r.grad().unwrap().to_host().unwrap()),
            f16_tolerance,
        );
    }
    let Some(gpu) = gpu() else { return };
    let gpu_vars: Vec<Var<WgpuBackend>> = host
        .iter()
        .zip(shapes)
        .map(|(d, s)| Var::parameter(Tensor::from_slice(d, s.to_vec(), &gpu).unwrap()))
        .collect();
    mixed_mlp(&gpu_vars, &Tensor::from_slice(&labels, [33], &gpu).unwrap())
        .unwrap()
        .backward()
        .unwrap();
    for (i, (g, c)) in gpu_vars.iter().zip(&mixed).enumerate() {
        assert_close(
            &format!("mixed gradient of input {i}, GPU vs CPU"),
            &values(g.grad().unwrap().to_host().unwrap()),
            &values(c.grad().unwrap().to_host().unwrap()),
            f16_tolerance,
        );
    }
}

/// `mixed_mlp` in one dtype throughout.
fn mlp2_tanh<B: kiln::tensor::Backend>(
    v: &[Var<B>],
    labels: &Tensor<B>,
) -> kiln::tensor::Result<Var<B>> {
    let h = v[0].matmul_bias_act(&v[1], &v[2], Some(UnaryOp::Tanh))?;
    h.matmul_bias_act(&v[3], &v[4], None)?
        .softmax_xent(labels)?
        .mean_all()
}
