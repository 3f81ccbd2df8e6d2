//! The micro workloads: one op (or the few ops of a batch-norm pass) on random inputs from
//! fixed seeds, the same values on every backend, and the work each does (FLOPs, or bytes
//! moved at the least).

use crate::device::BenchDevice;
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
            Op::BatchNormBackward { rows, cols } => Work::Bytes(20.0 * f(rows * cols)),
            // Adam reads param, grad, m, v and writes param, m, v.
            Op::Adam { n } => Work::Bytes(28.0 * f(n)),
            // SGD with momentum reads param, grad, velocity and writes param, velocity.
            Op::SgdMomentum { n } => Work::Bytes(20.0 * f(n)),
        }
    }

    /// The largest relative difference from the CPU backend that still passes.
    pub fn tolerance(&self) -> f64 {
        match self.op {
            Op::Matmul { k, .. } => 1e-5 * (k as f64).sqrt().max(10.0),
            // Sums rounded to f16 may land one f16 step (2⁻¹⁰) apart.
            Op::MatmulF16 { .. } => 2e-3,
            Op::SumRows { cols, .. } => 1e-6 * (cols as f64).sqrt().max(10.0),
            Op::BatchNormForward { .. } | Op::BatchNormBackward { .. } => 1e-3,
            _ => 1e-4,
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
            Op::BatchNormForward { rows, cols } => {
                vec![Tensor::rand_normal([rows, cols], 1.0, 2.0, rng(7), b)?]
            }
            Op::BatchNormBackward { rows, cols } => vec![
                Tensor::rand_normal([rows, cols], 1.0, 2.0, rng(7), b)?,
                Tensor::rand_normal([rows, cols], 0.0, 1.0, rng(8), b)?,
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
                let (mean, var) = t[0].batchnorm_stats()?;
                let inv_std = (var + BN_EPS)?.sqrt()?.recip()?;
                (&t[0] - &mean)? * &inv_std
            }
            Op::BatchNormBackward { rows, .. } => {
                let (x, dy) = (&t[0], &t[1]);
                let (mean, var) = x.batchnorm_stats()?;
                let (sum_dy, sum_dy_xhat) = x.batchnorm_backward_reduce(dy, &mean, &var, BN_EPS)?;
                let inv_std = (var + BN_EPS)?.sqrt()?.recip()?;
                let xhat = ((x - &mean)? * &inv_std)?;
                let n = rows as f32;
                // dx = (dy − Σdy / N − x̂ · Σ(dy·x̂) / N) / √(var + ε)
                let centred = ((dy - &(sum_dy / n)?)? - &(xhat * &(sum_dy_xhat / n)?)?)?;
                centred * &inv_std
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
        }
    }
}
