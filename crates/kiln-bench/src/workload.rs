//! The micro workloads: one op (or the few ops of a batch-norm pass) on random inputs from
//! fixed seeds, the same values on every backend, and the work each does (FLOPs, or bytes
//! moved at the least).

use crate::device::BenchDevice;
use kiln_tensor::precision::{self, Tolerance, ULP};
use kiln_tensor::{AdamStep, Backend, DType, Result, RngState, SgdStep, Tensor};

/// What a workload's throughput is measured in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Work {
    /// Floating-point operations per run (reported as GFLOP/s, against the FLOP/s ceiling).
    Flops(f64),
    /// Bytes read and written per run at the least (GB/s, against the bandwidth ceiling).
    Bytes(f64),
}

/// One measured operation and its sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// A large buffer-to-buffer copy (`copy_into` between existing tensors): the bandwidth
    /// ceiling.
    Copy { n: usize },
    /// C[m, n] = op(A) · op(B) with op a transpose when the flag is set.
    Matmul {
        m: usize,
        k: usize,
        n: usize,
        transpose_a: bool,
        transpose_b: bool,
    },
    /// The same square product with f16 operands and result (f32 accumulation).
    MatmulF16 { n: usize },
    /// c = a + b on n floats.
    Add { n: usize },
    /// Sum of each row of a [rows, cols] matrix.
    SumRows { rows: usize, cols: usize },
    /// Fused softmax cross-entropy of [rows, cols] logits against integer labels.
    SoftmaxXent { rows: usize, cols: usize },
    /// Batch norm in training mode: statistics, then y = (x − mean) / √(var + ε).
    BatchNormForward { rows: usize, cols: usize },
    /// Batch norm's backward: the two reductions, then dx.
    BatchNormBackward { rows: usize, cols: usize },
    /// One fused Adam step over n parameters (in place).
    Adam { n: usize },
    /// One SGD-with-momentum step over n parameters (in place).
    SgdMomentum { n: usize },
    /// One pass of a convolution: the forward pass, the input gradient or the weight gradient.
    Conv {
        pass: ConvPass,
        shape: kiln_tensor::Conv2dShape,
    },
}

/// Which pass of a convolution a workload runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPass {
    Forward,
    BackwardInput,
    BackwardWeight,
}

impl Op {
    /// A 3×3 convolution (stride 1, padding 1) of [batch, channels, side, side] images into
    /// `out` channels.
    pub fn conv(pass: ConvPass, batch: usize, channels: usize, side: usize, out: usize) -> Op {
        Op::conv_grouped(pass, (batch, channels, side, out), 1)
    }

    /// The same with the channels in `groups` groups (`groups` = channels: depthwise).
    pub fn conv_grouped(
        pass: ConvPass,
        (batch, channels, side, out): (usize, usize, usize, usize),
        groups: usize,
    ) -> Op {
        let shape = kiln_tensor::Conv2dShape {
            batch,
            in_channels: channels,
            height: side,
            width: side,
            out_channels: out,
            kernel_h: 3,
            kernel_w: 3,
            stride: 1,
            padding: 1,
            dilation: 1,
            groups,
        };
        Op::Conv { pass, shape }
    }
}

/// A named op.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub name: String,
    pub op: Op,
}

const BN_EPS: f32 = 1e-5;

fn rng(seed: u64) -> RngState {
    RngState { seed, offset: 0 }
}

impl Workload {
    pub fn new(name: impl Into<String>, op: Op) -> Self {
        Workload {
            name: name.into(),
            op,
        }
    }

    /// The sizes, as the table shows them.
    pub fn shape(&self) -> String {
        match self.op {
            Op::Copy { n } | Op::Add { n } | Op::Adam { n } | Op::SgdMomentum { n } => {
                format!("{n}")
            }
            Op::MatmulF16 { n } => format!("{n}×{n}·{n}×{n} f16"),
            Op::Matmul {
                m,
                k,
                n,
                transpose_a,
                transpose_b,
            } => format!(
                "{m}×{k}{}·{k}×{n}{}",
                if transpose_a { "(ᵀ)" } else { "" },
                if transpose_b { "(ᵀ)" } else { "" }
            ),
            Op::SumRows { rows, cols }
            | Op::SoftmaxXent { rows, cols }
            | Op::BatchNormForward { rows, cols }
            | Op::BatchNormBackward { rows, cols } => format!("{rows}×{cols}"),
            Op::Conv { pass, shape: s } => format!(
                "{}×{}×{}×{} ⊛ {}×{}→{}{} {pass:?}",
                s.batch,
                s.in_channels,
                s.height,
                s.width,
                s.kernel_h,
                s.kernel_w,
                s.out_channels,
                if s.groups > 1 {
                    format!(" (groups {})", s.groups)
                } else {
                    String::new()
                }
            ),
        }
    }

    pub fn work(&self) -> Work {
        let f = |n: usize| n as f64;
        match self.op {
            Op::Copy { n } => Work::Bytes(8.0 * f(n)),
            Op::Matmul { m, k, n, .. } => Work::Flops(2.0 * f(m) * f(k) * f(n)),
            Op::MatmulF16 { n } => Work::Flops(2.0 * f(n) * f(n) * f(n)),
            Op::Add { n } => Work::Bytes(12.0 * f(n)),
            Op::SumRows { rows, cols } => Work::Bytes(4.0 * f(rows * cols + rows)),
            Op::SoftmaxXent { rows, cols } => Work::Bytes(4.0 * f(rows * cols + 2 * rows)),
            // Statistics read x; the normalisation reads x and writes y.
            Op::BatchNormForward { rows, cols } => Work::Bytes(12.0 * f(rows * cols)),
            // The reductions read x and dy; dx reads x and dy and writes dx.
            Op::BatchNormBackward { rows, cols } => Work::Bytes(28.0 * f(rows * cols)),
            // Adam reads param, grad, m, v and writes param, m, v.
            Op::Adam { n } => Work::Bytes(28.0 * f(n)),
            // SGD with momentum reads param, grad, velocity and writes param, velocity.
            Op::SgdMomentum { n } => Work::Bytes(20.0 * f(n)),
            // Each pass multiplies the same three sizes.
            Op::Conv { shape, .. } => Work::Flops(shape.flops()),
        }
    }

    /// How far the result may be from the CPU backend's: the precision table's bound for the
    /// op on these inputs (uniform in [−1, 1]; normal with std 2 for logits and batch norm).
    pub fn tolerance(&self) -> Tolerance {
        match self.op {
            Op::Copy { .. } => precision::EXACT,
            Op::Matmul { k, .. } => precision::dot(k, k as f64),
            // Rounded to f16 at the end: one f16 step (2⁻¹⁰) more.
            Op::MatmulF16 { n } => precision::dot(n, n as f64)
                .plus(precision::F16_ROUNDING)
                .named("f16 dot product"),
            Op::Add { .. } => precision::ROUNDED,
            Op::SumRows { cols, .. } => precision::sum(precision::row_sum_depth(cols), cols as f64),
            // Logits N(0, 2²): within ±11.6.
            Op::SoftmaxXent { cols, .. } => precision::softmax(cols, 23.1),
            Op::BatchNormForward { rows, .. } => batch_norm_tolerance(rows, false),
            Op::BatchNormBackward { rows, .. } => batch_norm_tolerance(rows, true),
            Op::Adam { .. } | Op::SgdMomentum { .. } => precision::optimizer_steps(1),
            // Two f32 sums of K terms (the device's and the CPU's), |x|, |w| ≤ 1.
            Op::Conv { pass, shape: s } => {
                let k = match pass {
                    ConvPass::Forward => s.patch_len(),
                    ConvPass::BackwardInput => s.group_out() * s.kernel_h * s.kernel_w,
                    ConvPass::BackwardWeight => s.batch * s.out_height() * s.out_width(),
                };
                precision::dot(2 * k, k as f64)
            }
        }
    }

    /// The inputs, the same values on every backend (counter-based random fills).
    pub fn inputs<B: Backend>(&self, b: &B) -> Result<Vec<Tensor<B>>> {
        let uniform = |dims: Vec<usize>, seed| Tensor::rand_uniform(dims, -1.0, 1.0, rng(seed), b);
        Ok(match self.op {
            Op::Copy { n } | Op::Add { n } => vec![uniform(vec![n], 1)?, uniform(vec![n], 2)?],

            Op::Matmul {
                m,
                k,
                n,
                transpose_a,
                transpose_b,
            } => {
                let a = if transpose_a { vec![k, m] } else { vec![m, k] };
                let bb = if transpose_b { vec![n, k] } else { vec![k, n] };
                vec![uniform(a, 3)?, uniform(bb, 4)?]
            }
            Op::MatmulF16 { n } => vec![
                uniform(vec![n, n], 3)?.cast(DType::F16)?,
                uniform(vec![n, n], 4)?.cast(DType::F16)?,
            ],
            Op::SumRows { rows, cols } => vec![uniform(vec![rows, cols], 5)?],
            Op::SoftmaxXent { rows, cols } => vec![
                Tensor::rand_normal([rows, cols], 0.0, 2.0, rng(6), b)?,
                Tensor::from_vec(
                    (0..rows).map(|i| (i * 7 % cols) as u32).collect::<Vec<_>>(),
                    [rows],
                    b,
                )?,
            ],
            // x, then γ = 1 and β = 0 (the tolerances' analysis assumes them).
            Op::BatchNormForward { rows, cols } => vec![
                Tensor::rand_normal([rows, cols], 1.0, 2.0, rng(7), b)?,
                Tensor::full([cols], 1.0, DType::F32, b)?,
                Tensor::zeros([cols], DType::F32, b)?,
            ],
            // x, dy, γ = 1.
            Op::BatchNormBackward { rows, cols } => vec![
                Tensor::rand_normal([rows, cols], 1.0, 2.0, rng(7), b)?,
                Tensor::rand_normal([rows, cols], 0.0, 1.0, rng(8), b)?,
                Tensor::full([cols], 1.0, DType::F32, b)?,
            ],
            Op::Adam { n } => vec![
                uniform(vec![n], 9)?,
                uniform(vec![n], 10)?,
                Tensor::zeros([n], DType::F32, b)?,
                Tensor::zeros([n], DType::F32, b)?,
            ],
            Op::SgdMomentum { n } => vec![
                uniform(vec![n], 11)?,
                uniform(vec![n], 12)?,
                Tensor::zeros([n], DType::F32, b)?,
            ],
            // x, w and dy.
            Op::Conv { shape: s, .. } => vec![
                uniform(vec![s.batch, s.in_channels, s.height, s.width], 13)?,
                uniform(
                    vec![s.out_channels, s.group_in(), s.kernel_h, s.kernel_w],
                    14,
                )?,
                uniform(
                    vec![s.batch, s.out_channels, s.out_height(), s.out_width()],
                    15,
                )?,
            ],
        })
    }

    /// Records one run and returns its output (in-place steps return the parameter).
    pub fn run<B: BenchDevice>(&self, t: &[Tensor<B>]) -> Result<Tensor<B>> {
        match self.op {
            Op::Copy { .. } => {
                t[0].backend().copy_into(&t[0], &t[1])?;
                Ok(t[1].clone())
            }
            Op::Matmul {
                transpose_a,
                transpose_b,
                ..
            } => {
                let a = if transpose_a { t[0].t()? } else { t[0].clone() };
                let b = if transpose_b { t[1].t()? } else { t[1].clone() };
                a.matmul(&b)
            }
            Op::MatmulF16 { .. } => t[0].matmul(&t[1]),
            Op::Add { .. } => &t[0] + &t[1],
            Op::SumRows { .. } => t[0].sum(1),
            Op::SoftmaxXent { .. } => t[0].softmax_xent(&t[1]),
            Op::BatchNormForward { .. } => {
                let (mean, var) = t[0].batch_norm_stats()?;
                t[0].batch_norm_forward((&mean, &var), (&t[1], &t[2]), BN_EPS)
            }
            Op::BatchNormBackward { .. } => {
                let (x, dy) = (&t[0], &t[1]);
                let (mean, var) = x.batch_norm_stats()?;
                let sums = x.batch_norm_backward_reduce(dy, (&mean, &var), BN_EPS)?;
                // dx = (dy − Σdy / N − x̂ · Σ(dy·x̂) / N) / √(var + ε), with γ = 1.
                x.batch_norm_backward_input(dy, (&mean, &var, &t[2]), (&sums.0, &sums.1), BN_EPS)
            }
            Op::Adam { .. } => {
                let step = AdamStep {
                    lr: 1e-3,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.01,
                    decoupled: true,
                    step: 1,
                };
                t[0].adam_step(&t[1], &t[2], &t[3], &step)?;
                Ok(t[0].clone())
            }
            Op::SgdMomentum { .. } => {
                let step = SgdStep {
                    lr: 1e-2,
                    momentum: 0.9,
                    nesterov: false,
                    weight_decay: 0.0,
                };
                t[0].sgd_step(&t[1], Some(&t[2]), &step)?;
                Ok(t[0].clone())
            }
            Op::Conv { pass, shape } => {
                let options = shape.options();
                match pass {
                    ConvPass::Forward => t[0].conv2d(&t[1], None, None, options),
                    ConvPass::BackwardInput => t[2].conv2d_backward_input(&t[1], &shape),
                    ConvPass::BackwardWeight => t[0].conv2d_backward_weight(&t[2], &shape),
                }
            }
        }
    }
}

/// Batch norm of `rows` samples of x ~ N(1, 2²) (|x − mean| ≤ 12.6, variance ≈ 4) and
/// dy ~ N(0, 1) (|dy| ≤ 5.8), as `run` composes it. Forward: the mean is off by a column sum's
/// bound (depth·ULP·12.6), the variance by (depth + 2)·ULP·12.6²; 1/√(var + ε) by half the
/// variance's relative error plus 8 ULP (add, sqrt, reciprocal); y = (x − mean)·inv_std
/// inherits both (|y| ≤ 6.3). Backward: x̂ as y; Σdy/N by depth·ULP·5.8; Σdy·x̂/N by
/// (depth + 10)·ULP·36.4 plus the statistics' differences; dx combines them with |x̂| ≤ 6.3,
/// and inv_std ≈ 0.5 scales the lot.
pub(crate) fn batch_norm_tolerance(rows: usize, backward: bool) -> Tolerance {
    let depth = precision::column_sum_depth(rows) as f64;
    let mean = depth * ULP * 12.6;
    let var_rel = (depth + 2.0) * ULP * 12.6 * 12.6 / 4.0;
    let inv_std_rel = var_rel / 2.0 + 8.0 * ULP;
    let y = 0.5 * mean + 6.3 * (inv_std_rel + 2.0 * ULP);
    if !backward {
        return Tolerance::new("batch norm forward", precision::FLUSH + y, 2.0 * ULP);
    }
    let sum_dy = depth * ULP * 5.8;
    let sum_dy_xhat = (depth + 10.0) * ULP * 36.4 + 5.8 * mean * 0.5 + 36.4 * var_rel / 2.0;
    let centred = sum_dy + 6.3 * sum_dy_xhat + 36.4 * y + 4.0 * ULP * 50.0;
    let dx = 0.5 * centred + 50.0 * inv_std_rel;
    Tolerance::new("batch norm backward", precision::FLUSH + dx, 2.0 * ULP)
}
