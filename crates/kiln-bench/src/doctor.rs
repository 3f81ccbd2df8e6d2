//! The self-check behind `examples/doctor.rs`: every kernel family on a backend against the
//! CPU backend, on random inputs at awkward sizes (not multiples of any tile or workgroup),
//! plus a short training run on both. Drivers return wrong answers more often than one would
//! hope; this says so before a week of training does. Each output is held to the tolerance
//! the precision table (kiln_tensor::precision) derives from WGSL's accuracy rules, so a
//! conforming driver passes and a failure names the precision class and the bound it broke.
//! The image kernels' cases are in `doctor_images.rs`, the training run in `training_run.rs`.

use crate::doctor_images as images;
pub use crate::training_run::{training_run, training_tolerance};
use kiln_cpu::CpuBackend;
use kiln_tensor::precision::{self, Tolerance, DIVISION, EXACT, EXACT_UP_TO_FLUSH, ROUNDED};
use kiln_tensor::wgpu::{MatmulKernel, WgpuBackend, WgpuOptions};
use kiln_tensor::{
    AdamStep, AdaptiveStep, Backend, BinaryOp, DType, KilnError, Result, RngState, SgdStep, Tensor,
    UnaryOp,
};

/// One kernel (or a few kernels of one family) checked against the CPU backend. Where an op
/// switches between forms of a kernel by size or layout (`_vec4`, `_narrow`), the check runs
/// both sides of the switch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Check {
    /// 1000 elements (vec4 form) and 999 (strided form).
    Unary(UnaryOp),
    UnaryBackward(UnaryOp),
    /// [33, 17] ∘ [17] (strided) and [32, 16] ∘ [16] (vec4, a repeated row), broadcast.
    Binary(BinaryOp),
    /// Scalar forms: x ∘ 2.5 and 2.5 ∘ x, at 257 and 256 elements.
    BinaryScalar,
    Select,
    Prelu,
    /// Sum, mean, max, min and argmax along each axis of [127, 33], [17, 65] and [64, 64]
    /// (rows of 33, 65 and 64: both sides of the narrow-row switch), and their global sums
    /// (4191 elements: partial sums first; 1105 and 4096: one pass).
    Reductions,
    /// C = op(A) · op(B) at 33 × 127 × 17 with transpose flags (Aᵀ, Bᵀ).
    Matmul {
        transpose_a: bool,
        transpose_b: bool,
    },
    /// act(A · B + bias) with ReLU, and K = 1.
    MatmulEpilogue,
    /// Softmax and log-softmax of rows with entries up to ±80, 1000 and 10 wide.
    Softmax,
    /// Forward and backward with labels, 10 classes (narrow form) and 100 (a workgroup a row).
    SoftmaxXent,
    BatchNorm,
    Adam,
    Sgd,
    Adaptive,
    /// Counter-based uniform and normal fills and a dropout mask.
    Random,
    GatherRows,
    /// Minibatch rows of a u8 dataset scaled and shifted per feature, at 37 features and at
    /// 36 (four features per invocation).
    DataGather,
    /// f32 → f16 → f32 and u8 → f32.
    Casts,
    /// A transposed view made contiguous.
    StridedCopy,
    /// The augmentation kernels: bilinear affine warp with reflection, colour jitter, CutMix.
    Augment,
    /// Convolution [3, 5, 9, 7] ⊛ [6, 5, 3, 3], stride 2, padding 1, with bias and ReLU, and
    /// both gradients; a 1×1 convolution (the matmul route).
    Conv,
    /// Max pooling (values, arg-max indices, gradient) and average pooling (forward and
    /// backward), 3×3 windows, stride 2, padding 1, on [3, 5, 9, 7].
    Pool,
}

/// The matmul checks again with each kernel the device did not pick by default: a tuned device
/// may switch to any of them for some shape, and a forced one must work too. The convolution
/// check runs with them: its path follows the matmul kernel (the packed-texture path with the
/// texture kernel, the implicit GEMM with a tiled one), so both paths are checked wherever the
/// adapter can run them. Returns their
/// results and a line for each kernel the adapter cannot run (the subgroup ones without
/// fixed-size subgroups), which is not a failure.
pub fn other_matmul_kernels(
    device: &WgpuBackend,
    cpu: &CpuBackend,
) -> (Vec<CheckResult>, Vec<String>) {
    let matmul_checks: Vec<Check> = Check::all()
        .into_iter()
        .filter(|c| {
            matches!(
                c,
                Check::Matmul { .. } | Check::MatmulEpilogue | Check::Conv
            )
        })
        .collect();
    let mut results = Vec::new();
    let mut unavailable = Vec::new();
    for kernel in MatmulKernel::EXPLICIT {
        if kernel == device.matmul_kernel() {
            continue;
        }
        let forced = match WgpuBackend::with_options(WgpuOptions {
            adapter: Some(device.adapter_info().name.clone()),
            matmul: kernel,
            ..WgpuOptions::default()
        }) {
            Ok(forced) => forced,
            Err(e) => {
                unavailable.push(format!("{kernel:?} matmul kernel not available here: {e}"));
                continue;
            }
        };
        for check in &matmul_checks {
            let mut result = check.run(&forced, cpu);
            result.kernel = format!("{} [{kernel:?} kernel]", result.kernel);
            results.push(result);
        }
    }
    (results, unavailable)
}

/// A check's outcome.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CheckResult {
    pub kernel: String,
    /// The largest |gpu − cpu| over every output, as a multiple of what its tolerance allows
    /// there (≤ 1 passes).
    pub worst: f64,
    /// The precision class and bound of the output that came closest to (or past) its limit.
    pub tolerance: String,
    pub passed: bool,
    /// Set when the kernel returned an error instead of a result.
    pub error: Option<String>,
}

fn rng(seed: u64) -> RngState {
    RngState { seed, offset: 0 }
}

/// Uniform inputs drawn on the CPU and uploaded, so both backends start from the same bits
/// (`low + (high − low)·u` may round differently on a driver).
pub(crate) fn uniform<B: Backend>(
    dims: &[usize],
    low: f32,
    high: f32,
    seed: u64,
    b: &B,
) -> Result<Tensor<B>> {
    let host = Tensor::rand_uniform(dims.to_vec(), low, high, rng(seed), &CpuBackend::new())?;
    Tensor::from_host(&host.to_host()?, dims.to_vec(), b)
}

impl Check {
    /// Every check.
    pub fn all() -> Vec<Check> {
        let mut checks = Vec::new();
        for op in UnaryOp::ALL {
            checks.push(Check::Unary(op));
            checks.push(Check::UnaryBackward(op));
        }
        checks.extend(BinaryOp::ALL.map(Check::Binary));
        checks.extend([
            Check::BinaryScalar,
            Check::Select,
            Check::Prelu,
            Check::Reductions,
        ]);
        for (transpose_a, transpose_b) in
            [(false, false), (true, false), (false, true), (true, true)]
        {
            checks.push(Check::Matmul {
                transpose_a,
                transpose_b,
            });
        }
        checks.extend([
            Check::MatmulEpilogue,
            Check::Softmax,
            Check::SoftmaxXent,
            Check::BatchNorm,
            Check::Adam,
            Check::Sgd,
            Check::Adaptive,
            Check::Random,
            Check::GatherRows,
            Check::DataGather,
            Check::Casts,
            Check::StridedCopy,
            Check::Augment,
            Check::Conv,
            Check::Pool,
        ]);
        checks
    }

    pub fn name(&self) -> String {
        match self {
            Check::Unary(op) => format!("unary {op:?}"),
            Check::UnaryBackward(op) => format!("unary backward {op:?}"),
            Check::Binary(op) => format!("binary {op:?} (broadcast)"),
            Check::BinaryScalar => "binary with scalars".into(),
            Check::Select => "where/select".into(),
            Check::Prelu => "prelu forward and backward".into(),
            Check::Reductions => "reductions (sum, mean, max, min, argmax, global sum)".into(),
            Check::Matmul {
                transpose_a,
                transpose_b,
            } => format!(
                "matmul {}·{}",
                if *transpose_a { "Aᵀ" } else { "A" },
                if *transpose_b { "Bᵀ" } else { "B" }
            ),
            Check::MatmulEpilogue => "matmul + bias + relu, K = 1".into(),
            Check::Softmax => "softmax and log-softmax (±80)".into(),
            Check::SoftmaxXent => "softmax cross-entropy forward and backward".into(),
            Check::BatchNorm => "batch-norm statistics, forward, backward reductions and dx".into(),
            Check::Adam => "adam step".into(),
            Check::Sgd => "sgd momentum step".into(),
            Check::Adaptive => "rmsprop step".into(),
            Check::Random => "random fills and dropout".into(),
            Check::GatherRows => "gather rows".into(),
            Check::DataGather => "minibatch gather from u8 data (scale, shift)".into(),
            Check::Casts => "casts f32↔f16, u8→f32".into(),
            Check::StridedCopy => "strided copy (transpose)".into(),
            Check::Augment => "augmentation: affine warp, colour jitter, cutmix".into(),
            Check::Conv => {
                "convolution forward (bias, relu), input and weight gradients, 1×1; grouped".into()
            }
            Check::Pool => "max and average pooling, forward and backward".into(),
        }
    }

    /// The tolerance of each output of `outputs`, in order, from the precision table for the
    /// inputs this check draws.
    pub fn tolerances(&self) -> Vec<Tolerance> {
        match *self {
            // Inputs in [−4, 4] ([0.1, 4.1] for log, sqrt, recip); dy in [−1, 1].
            Check::Unary(op) => vec![precision::unary(op, 4.1); 2],
            Check::UnaryBackward(op) => vec![precision::unary_derivative(op, 4.1); 2],
            // pow: bases in [0.1, 3.1], exponents in [−2, 2].
            Check::Binary(op) => vec![precision::binary(op, 2.0, 10f64.log2()); 2],
            Check::BinaryScalar => vec![ROUNDED; 4],
            Check::Select => vec![EXACT; 2],
            // dα sums 17 rows of |x·dy| ≤ 2, each product rounded once more.
            Check::Prelu => vec![
                ROUNDED,
                ROUNDED,
                precision::sum(precision::row_sum_depth(17) + 1, 34.0),
            ],
            Check::Reductions => {
                let mut t = Vec::new();
                for (rows, cols) in [(127, 33), (17, 65), (64, 64)] {
                    let n = rows * cols;
                    t.push(precision::sum(
                        precision::global_sum_depth(n),
                        2.0 * n as f64,
                    ));
                    for (len, depth) in [
                        (rows, precision::column_sum_depth(rows)),
                        (cols, precision::row_sum_depth(cols)),
                    ] {
                        t.extend([
                            precision::sum(depth, 2.0 * len as f64),
                            precision::sum(depth, 2.0),
                            EXACT_UP_TO_FLUSH,
                            EXACT_UP_TO_FLUSH,
                            EXACT,
                        ]);
                    }
                }
                t
            }
            Check::Matmul { .. } => vec![precision::dot(127, 127.0)],
            // 33 products and the bias; ReLU is exact. K = 1: one product.
            Check::MatmulEpilogue => vec![precision::dot(34, 34.0), ROUNDED],
            // Rows of logits within ±80.
            Check::Softmax => [1000, 10]
                .into_iter()
                .flat_map(|cols| [precision::softmax(cols, 160.0); 2])
                .collect(),
            Check::SoftmaxXent => [10, 100]
                .into_iter()
                .flat_map(|classes| [precision::softmax(classes, 8.0); 2])
                .collect(),
            // [127, 33] features, then [6, 5, 7, 9] images (378 elements per channel) and
            // [5, 3, 4, 6] images (120; the maps' vec4 kernels); the maps (y, dx) with γ = 1,
            // β = 0 as the harness's workloads.
            Check::BatchNorm => [127, 6 * 7 * 9, 5 * 4 * 6]
                .into_iter()
                .flat_map(|n| {
                    let maps = [false, true].map(|b| crate::workload::batch_norm_tolerance(n, b));
                    images::batch_norm_tolerances(n).into_iter().chain(maps)
                })
                .collect(),
            // Adam: (param, m, v) at two lengths; SGD: param, velocity; RMSProp: param, state.
            Check::Adam => vec![precision::optimizer_steps(1); 6],
            Check::Sgd | Check::Adaptive => vec![precision::optimizer_steps(1); 2],
            // Uniform words are shared; x·mask is one product.
            Check::Random => vec![EXACT, EXACT, ROUNDED, EXACT],
            Check::GatherRows | Check::StridedCopy => vec![EXACT],
            Check::Casts => vec![EXACT; 2],
            // byte · scale + shift with scale ≤ 2, |shift| ≤ 1.
            Check::DataGather => vec![precision::scale_and_shift(1.0, 510.0); 2],
            // Two f32 sums, the device's and the CPU's: twice the dot bound. Forward: 45 terms
            // of |x·w| ≤ 1 (and the bias); dx: 6·9 terms; dw: 3·5·4 terms; 1×1: 5 terms. Grouped
            // (depthwise ×2): 9 terms and the bias; dx: 2·9; dw: 3·9·7.
            Check::Conv => vec![
                precision::dot(92, 46.0),
                precision::dot(108, 54.0),
                precision::dot(120, 60.0),
                precision::dot(10, 5.0),
                precision::dot(20, 10.0),
                precision::dot(36, 18.0),
                precision::dot(378, 189.0),
            ],
            // Max: exact values and indices; its gradient sums ≤ 4 windows; average: 9 taps and
            // a division, and ≤ 4 windows of gradient.
            Check::Pool => vec![
                EXACT,
                EXACT,
                precision::sum(4, 4.0),
                precision::sum(9, 9.0).plus(DIVISION),
                precision::sum(4, 4.0).plus(DIVISION),
            ],
            Check::Augment => vec![
                precision::augmentation(13),
                precision::augmentation(13),
                EXACT,
            ],
        }
    }

    /// The check's outputs on one backend (the same inputs everywhere).
    pub fn outputs<B: Backend>(&self, b: &B) -> Result<Vec<Tensor<B>>> {
        let n = 1000;
        Ok(match *self {
            Check::Unary(op) => {
                let x = self.unary_input(n, b)?;
                let odd = x.narrow(0, 0, n - 1)?;
                vec![x.unary(op)?, odd.unary(op)?]
            }
            Check::UnaryBackward(op) => {
                let x = self.unary_input(n, b)?;
                let grad = uniform(&[n], -1.0, 1.0, 2, b)?;
                let (odd_x, odd_grad) = (x.narrow(0, 0, n - 1)?, grad.narrow(0, 0, n - 1)?);
                vec![
                    x.unary_backward(op, &grad)?,
                    odd_x.unary_backward(op, &odd_grad)?,
                ]
            }
            Check::Binary(op) => {
                let mut out = Vec::new();
                for (rows, cols) in [(33, 17), (32, 16)] {
                    let x = uniform(&[rows, cols], -3.0, 3.0, 3, b)?;
                    let y = match op {
                        // Positive bases and denominators away from zero.
                        BinaryOp::Pow => uniform(&[cols], -2.0, 2.0, 4, b)?,
                        BinaryOp::Div => uniform(&[cols], 0.5, 2.0, 4, b)?,
                        _ => uniform(&[cols], -3.0, 3.0, 4, b)?,
                    };
                    let x = if op == BinaryOp::Pow {
                        (x.abs()? + 0.1)?
                    } else {
                        x
                    };
                    out.push(x.binary(op, &y)?);
                }
                out
            }
            Check::BinaryScalar => {
                let mut out = Vec::new();
                for n in [257, 256] {
                    let x = uniform(&[n], -3.0, 3.0, 5, b)?;
                    out.push(x.binary_scalar(BinaryOp::Mul, 2.5)?);
                    out.push(Tensor::scalar_binary(2.5, BinaryOp::Sub, &x)?);
                }
                out
            }
            Check::Select => {
                let x = uniform(&[127, 3], -1.0, 1.0, 6, b)?;
                let y = uniform(&[127, 3], -1.0, 1.0, 7, b)?;
                let mask = x.lt(&y)?;
                vec![mask.clone(), mask.select(&x, &y)?]
            }
            Check::Prelu => {
                let x = uniform(&[17, 33], -2.0, 2.0, 8, b)?;
                let alpha = uniform(&[33], 0.0, 0.5, 9, b)?;
                let grad = uniform(&[17, 33], -1.0, 1.0, 10, b)?;
                let (dx, dalpha) = x.prelu_backward(&alpha, &grad)?;
                vec![x.prelu(&alpha)?, dx, dalpha]
            }
            Check::Reductions => {
                let mut out = Vec::new();
                for (rows, cols) in [(127, 33), (17, 65), (64, 64)] {
                    let x = uniform(&[rows, cols], -2.0, 2.0, 11, b)?;
                    out.push(x.sum_all()?);
                    for axis in [0, 1] {
                        out.extend([
                            x.sum(axis)?,
                            x.mean(axis)?,
                            x.max(axis)?,
                            x.min(axis)?,
                            x.argmax(axis)?.cast(DType::F32)?,
                        ]);
                    }
                }
                out
            }
            Check::Matmul {
                transpose_a,
                transpose_b,
            } => {
                let (m, k, n) = (33, 127, 17);
                let a = if transpose_a {
                    uniform(&[k, m], -1.0, 1.0, 12, b)?.t()?
                } else {
                    uniform(&[m, k], -1.0, 1.0, 12, b)?
                };
                let bb = if transpose_b {
                    uniform(&[n, k], -1.0, 1.0, 13, b)?.t()?
                } else {
                    uniform(&[k, n], -1.0, 1.0, 13, b)?
                };
                vec![a.matmul(&bb)?]
            }
            Check::MatmulEpilogue => {
                let a = uniform(&[257, 33], -1.0, 1.0, 14, b)?;
                let w = uniform(&[33, 20], -1.0, 1.0, 15, b)?;
                let bias = uniform(&[20], -1.0, 1.0, 16, b)?;
                let a1 = uniform(&[17, 1], -1.0, 1.0, 17, b)?;
                let b1 = uniform(&[1, 3], -1.0, 1.0, 18, b)?;
                vec![
                    a.matmul_bias_act(&w, Some(&bias), Some(UnaryOp::Relu))?,
                    a1.matmul(&b1)?,
                ]
            }
            Check::Softmax => {
                let mut out = Vec::new();
                for cols in [1000, 10] {
                    let x = (uniform(&[17, cols], -1.0, 1.0, 19, b)? * 80.0)?;
                    out.extend([x.softmax()?, x.log_softmax()?]);
                }
                out
            }
            Check::SoftmaxXent => {
                let mut out = Vec::new();
                for classes in [10u32, 100] {
                    let logits = uniform(&[33, classes as usize], -4.0, 4.0, 20, b)?;
                    let labels = (0..33u32).map(|i| i * 7 % classes).collect::<Vec<_>>();
                    let labels = Tensor::from_vec(labels, [33], b)?;
                    let grad_rows = Tensor::full([33], 1.0 / 33.0, DType::F32, b)?;
                    out.extend([
                        logits.softmax_xent(&labels)?,
                        logits.softmax_xent_backward(&labels, &grad_rows)?,
                    ]);
                }
                out
            }
            Check::BatchNorm => images::batch_norm_outputs(b)?,
            Check::Adam => {
                let step = AdamStep {
                    lr: 1e-2,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.01,
                    decoupled: true,
                    step: 3,
                };
                // 1000 parameters run the vec4 kernel, 999 the scalar one.
                let mut out = Vec::new();
                for len in [n, n - 1] {
                    let (p, g, m, v) = self.optimizer_state(len, b)?;
                    p.adam_step(&g, &m, &v, &step)?;
                    out.extend([p, m, v]);
                }
                out
            }
            Check::Sgd => {
                let (p, g, velocity, _) = self.optimizer_state(n, b)?;
                let step = SgdStep {
                    lr: 0.1,
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: 1e-3,
                };
                p.sgd_step(&g, Some(&velocity), &step)?;
                vec![p, velocity]
            }
            Check::Adaptive => {
                let (p, g, s, _) = self.optimizer_state(n, b)?;
                let step = AdaptiveStep {
                    lr: 1e-2,
                    eps: 1e-8,
                    weight_decay: 0.0,
                    decay: 0.99,
                    gain: 0.01,
                };
                p.adaptive_step(&g, &s, &step)?;
                vec![p, s]
            }
            Check::Random => {
                let x = uniform(&[n], -1.0, 1.0, 23, b)?;
                let (dropped, mask) = x.dropout(0.3, rng(24))?;
                vec![
                    x,
                    Tensor::rand_normal([n], 0.0, 1.0, rng(25), b)?,
                    dropped,
                    mask,
                ]
            }
            Check::GatherRows => {
                let x = uniform(&[127, 17], -1.0, 1.0, 26, b)?;
                let idx = Tensor::from_vec(
                    (0..33u32).map(|i| (i * 31) % 127).collect::<Vec<_>>(),
                    [33],
                    b,
                )?;
                vec![x.gather_rows(&idx)?]
            }
            Check::DataGather => {
                let rows = 50usize;
                let mut out = Vec::new();
                for features in [37usize, 36] {
                    let bytes: Vec<u8> = (0..rows * features)
                        .map(|i| (i * 7 + i / 13) as u8)
                        .collect();
                    let chunk = Tensor::from_vec(bytes, [rows, features], b)?;
                    let idx = (0..33u32).map(|i| i * 17 % rows as u32).collect::<Vec<_>>();
                    let idx = Tensor::from_vec(idx, [33], b)?;
                    let scale = uniform(&[features], 0.5, 2.0, 35, b)?;
                    let shift = uniform(&[features], -1.0, 1.0, 36, b)?;
                    out.push(Tensor::gather_u8_affine(
                        &[(&chunk, 0)],
                        &idx,
                        &scale,
                        &shift,
                    )?);
                }
                out
            }
            Check::Casts => {
                let x = uniform(&[257], -100.0, 100.0, 27, b)?;
                let bytes = Tensor::from_vec((0..=255u8).collect::<Vec<_>>(), [256], b)?;
                vec![
                    x.cast(DType::F16)?.cast(DType::F32)?,
                    bytes.cast(DType::F32)?,
                ]
            }
            Check::StridedCopy => {
                let x = uniform(&[33, 127], -1.0, 1.0, 28, b)?;
                vec![x.t()?.contiguous()?]
            }
            Check::Conv => images::conv_outputs(b)?,
            Check::Pool => images::pool_outputs(b)?,
            Check::Augment => images::augment_outputs(b)?,
        })
    }

    /// Inputs inside each unary op's domain (positive for log and sqrt).
    fn unary_input<B: Backend>(&self, n: usize, b: &B) -> Result<Tensor<B>> {
        let x = uniform(&[n], -4.0, 4.0, 1, b)?;
        match self {
            Check::Unary(UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Recip)
            | Check::UnaryBackward(UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Recip) => x.abs()? + 0.1,
            _ => Ok(x),
        }
    }

    /// (param, grad, state, state), the state non-zero so every term of the update counts.
    #[allow(clippy::type_complexity)]
    fn optimizer_state<B: Backend>(
        &self,
        n: usize,
        b: &B,
    ) -> Result<(Tensor<B>, Tensor<B>, Tensor<B>, Tensor<B>)> {
        Ok((
            uniform(&[n], -1.0, 1.0, 29, b)?,
            uniform(&[n], -1.0, 1.0, 30, b)?,
            uniform(&[n], 0.0, 0.1, 31, b)?,
            uniform(&[n], 0.0, 0.01, 32, b)?,
        ))
    }

    /// Runs the check on `device` and on the CPU backend and compares every output with its
    /// tolerance.
    pub fn run<B: Backend>(&self, device: &B, cpu: &CpuBackend) -> CheckResult {
        let tolerances = self.tolerances();
        let compared = (|| -> Result<(f64, Tolerance)> {
            let expected = self.outputs(cpu)?;
            let actual = self.outputs(device)?;
            let mut worst = (0.0f64, tolerances[0]);
            for ((a, e), tolerance) in actual.iter().zip(&expected).zip(&tolerances) {
                if a.dims() != e.dims() {
                    return Err(KilnError::invalid(
                        "doctor",
                        format!("shape {:?} where the CPU gives {:?}", a.dims(), e.dims()),
                    ));
                }
                let ratio = tolerance.worst_ratio(&a.to_vec::<f64>()?, &e.to_vec::<f64>()?);
                if ratio >= worst.0 {
                    worst = (ratio, *tolerance);
                }
            }
            Ok(worst)
        })();
        match compared {
            Ok((worst, tolerance)) => CheckResult {
                kernel: self.name(),
                worst,
                tolerance: tolerance.to_string(),
                passed: worst <= 1.0,
                error: None,
            },
            Err(e) => CheckResult {
                kernel: self.name(),
                worst: f64::INFINITY,
                tolerance: tolerances[0].to_string(),
                passed: false,
                error: Some(e.to_string()),
            },
        }
    }
}
