//! The differentiable operations on [`Var`]: each computes its value with the tensor API and
//! records its op. Arithmetic operators are methods (`a.add(&b)?`) rather than `+`, because
//! recording can fail and the result names the op.

use crate::graph::Var;
use crate::ops::Op;
use kiln_tensor::{Backend, BinaryOp, Result, Shape, UnaryOp};

impl<B: Backend> Var<B> {
    #[track_caller]
    pub fn unary(&self, op: UnaryOp) -> Result<Self> {
        Var::record(self.value().unary(op)?, Op::Unary(op), vec![self.clone()])
    }

    #[track_caller]
    pub fn binary(&self, op: BinaryOp, other: &Var<B>) -> Result<Self> {
        Var::record(
            self.value().binary(op, other.value())?,
            Op::Binary(op),
            vec![self.clone(), other.clone()],
        )
    }

    #[track_caller]
    pub fn binary_scalar(&self, op: BinaryOp, scalar: f64) -> Result<Self> {
        let value = self.value().binary_scalar(op, scalar)?;
        Var::record(
            value,
            Op::BinaryScalar {
                op,
                scalar,
                scalar_on_left: false,
            },
            vec![self.clone()],
        )
    }

    #[track_caller]
    pub fn scalar_binary(scalar: f64, op: BinaryOp, rhs: &Var<B>) -> Result<Self> {
        let value = kiln_tensor::Tensor::scalar_binary(scalar, op, rhs.value())?;
        Var::record(
            value,
            Op::BinaryScalar {
                op,
                scalar,
                scalar_on_left: true,
            },
            vec![rhs.clone()],
        )
    }

    #[track_caller]
    pub fn add(&self, other: &Var<B>) -> Result<Self> {
        self.binary(BinaryOp::Add, other)
    }
    #[track_caller]
    pub fn sub(&self, other: &Var<B>) -> Result<Self> {
        self.binary(BinaryOp::Sub, other)
    }
    #[track_caller]
    pub fn mul(&self, other: &Var<B>) -> Result<Self> {
        self.binary(BinaryOp::Mul, other)
    }
    #[track_caller]
    pub fn div(&self, other: &Var<B>) -> Result<Self> {
        self.binary(BinaryOp::Div, other)
    }
    #[track_caller]
    pub fn relu(&self) -> Result<Self> {
        self.unary(UnaryOp::Relu)
    }
    #[track_caller]
    pub fn tanh(&self) -> Result<Self> {
        self.unary(UnaryOp::Tanh)
    }
    #[track_caller]
    pub fn sigmoid(&self) -> Result<Self> {
        self.unary(UnaryOp::Sigmoid)
    }

    /// act(self · weight + bias) in one fused kernel (a linear layer); 2-D. The result has the
    /// bias's dtype: f16 operands with an f32 bias give an f32 result (mixed precision).
    #[track_caller]
    pub fn matmul_bias_act(
        &self,
        weight: &Var<B>,
        bias: &Var<B>,
        activation: Option<UnaryOp>,
    ) -> Result<Self> {
        let value = self.value().matmul_bias_act_to(
            weight.value(),
            Some(bias.value()),
            activation,
            bias.value().dtype(),
        )?;
        Var::record(
            value,
            Op::MatmulBiasAct { activation },
            vec![self.clone(), weight.clone(), bias.clone()],
        )
    }

    /// The same values in another dtype (f32 ↔ f16); the gradient is converted back, so f16
    /// copies of f32 parameters train the parameters (mixed precision).
    #[track_caller]
    pub fn cast(&self, dtype: kiln_tensor::DType) -> Result<Self> {
        if dtype == self.value().dtype() {
            return Ok(self.clone());
        }
        Var::record(self.value().cast(dtype)?, Op::Cast, vec![self.clone()])
    }

    /// `len` entries of dimension `dim` from `start` (a view forward, a scatter backward).
    #[track_caller]
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Self> {
        let resolved = self.shape().axis("narrow", dim)?;
        Var::record(
            self.value().narrow(dim, start, len)?,
            Op::Narrow {
                dim: resolved,
                start,
            },
            vec![self.clone()],
        )
    }

    /// Matrix product: 2-D · 2-D, or batched 3-D · 3-D / 3-D · 2-D.
    #[track_caller]
    pub fn matmul(&self, other: &Var<B>) -> Result<Self> {
        Var::record(
            self.value().matmul(other.value())?,
            Op::Matmul,
            vec![self.clone(), other.clone()],
        )
    }

    #[track_caller]
    pub fn sum(&self, axis: isize) -> Result<Self> {
        let resolved = self.shape().axis("sum", axis)?;
        Var::record(
            self.value().sum(axis)?,
            Op::Sum { axis: resolved },
            vec![self.clone()],
        )
    }

    #[track_caller]
    pub fn mean(&self, axis: isize) -> Result<Self> {
        let resolved = self.shape().axis("mean", axis)?;
        Var::record(
            self.value().mean(axis)?,
            Op::Mean { axis: resolved },
            vec![self.clone()],
        )
    }

    /// Sum of every element, shape [].
    #[track_caller]
    pub fn sum_all(&self) -> Result<Self> {
        Var::record(self.value().sum_all()?, Op::SumAll, vec![self.clone()])
    }

    /// Mean of every element, shape [].
    #[track_caller]
    pub fn mean_all(&self) -> Result<Self> {
        let n = self.value().numel().max(1) as f64;
        self.sum_all()?.binary_scalar(BinaryOp::Div, n)
    }

    #[track_caller]
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Self> {
        Var::record(
            self.value().reshape(shape)?,
            Op::Reshape,
            vec![self.clone()],
        )
    }

    #[track_caller]
    pub fn transpose(&self, a: isize, b: isize) -> Result<Self> {
        let (ra, rb) = (
            self.shape().axis("transpose", a)?,
            self.shape().axis("transpose", b)?,
        );
        Var::record(
            self.value().transpose(a, b)?,
            Op::Transpose { a: ra, b: rb },
            vec![self.clone()],
        )
    }

    #[track_caller]
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Self> {
        Var::record(
            self.value().broadcast_to(shape)?,
            Op::BroadcastTo,
            vec![self.clone()],
        )
    }

    #[track_caller]
    pub fn max(&self, axis: isize) -> Result<Self> {
        let resolved = self.shape().axis("max", axis)?;
        Var::record(
            self.value().max(axis)?,
            Op::Max { axis: resolved },
            vec![self.clone()],
        )
    }

    #[track_caller]
    pub fn min(&self, axis: isize) -> Result<Self> {
        let resolved = self.shape().axis("min", axis)?;
        Var::record(
            self.value().min(axis)?,
            Op::Min { axis: resolved },
            vec![self.clone()],
        )
    }

    /// Row softmax of a [rows, cols] variable.
    #[track_caller]
    pub fn softmax(&self) -> Result<Self> {
        Var::record(
            self.value().softmax()?,
            Op::Softmax { log: false },
            vec![self.clone()],
        )
    }

    /// Row log-softmax of a [rows, cols] variable.
    #[track_caller]
    pub fn log_softmax(&self) -> Result<Self> {
        Var::record(
            self.value().log_softmax()?,
            Op::Softmax { log: true },
            vec![self.clone()],
        )
    }

    /// `self != 0 ? on_true : on_false`, broadcast together; the condition gets no gradient.
    #[track_caller]
    pub fn select(&self, on_true: &Var<B>, on_false: &Var<B>) -> Result<Self> {
        let value = self.value().select(on_true.value(), on_false.value())?;
        Var::record(
            value,
            Op::Select,
            vec![self.clone(), on_true.clone(), on_false.clone()],
        )
    }

    /// PReLU with one learnable slope per channel (dimension 1).
    #[track_caller]
    pub fn prelu(&self, alpha: &Var<B>) -> Result<Self> {
        Var::record(
            self.value().prelu(alpha.value())?,
            Op::Prelu,
            vec![self.clone(), alpha.clone()],
        )
    }

    /// Inverted dropout with drop probability `p`; the mask comes from the counter-based
    /// stream `rng`, so the same (seed, offset) drops the same units on every backend.
    #[track_caller]
    pub fn dropout(&self, p: f32, rng: kiln_tensor::RngState) -> Result<Self> {
        let (value, mask) = self.value().dropout(p, rng)?;
        Var::record(value, Op::Dropout { mask }, vec![self.clone()])
    }

    /// act(conv(self, weight) + bias) over NCHW: self [N, C, H, W], weight [O, C, KH, KW],
    /// bias [O].
    #[track_caller]
    pub fn conv2d(
        &self,
        weight: &Var<B>,
        bias: Option<&Var<B>>,
        activation: Option<kiln_tensor::UnaryOp>,
        options: kiln_tensor::Conv2dOptions,
    ) -> Result<Self> {
        let shape = self.value().conv2d_shape(weight.value(), options)?;
        let value =
            self.value()
                .conv2d(weight.value(), bias.map(|b| b.value()), activation, options)?;
        let mut inputs = vec![self.clone(), weight.clone()];
        inputs.extend(bias.cloned());
        Var::record(value, Op::Conv2d { shape, activation }, inputs)
    }

    /// Max pooling by a `kernel`×`kernel` window of an NCHW variable.
    #[track_caller]
    pub fn max_pool2d(&self, kernel: usize, stride: usize, padding: usize) -> Result<Self> {
        let shape = self.value().pool2d_shape(kernel, stride, padding)?;
        let (value, indices) = self.value().max_pool2d(kernel, stride, padding)?;
        Var::record(value, Op::MaxPool2d { shape, indices }, vec![self.clone()])
    }

    /// Average pooling by a `kernel`×`kernel` window of an NCHW variable.
    #[track_caller]
    pub fn avg_pool2d(&self, kernel: usize, stride: usize, padding: usize) -> Result<Self> {
        let shape = self.value().pool2d_shape(kernel, stride, padding)?;
        let value = self.value().avg_pool2d(kernel, stride, padding)?;
        Var::record(value, Op::AvgPool2d { shape }, vec![self.clone()])
    }

    /// Rows picked by a u32 index tensor.
    #[track_caller]
    pub fn gather_rows(&self, indices: &kiln_tensor::Tensor<B>) -> Result<Self> {
        let value = self.value().gather_rows(indices)?;
        Var::record(
            value,
            Op::GatherRows {
                indices: indices.clone(),
            },
            vec![self.clone()],
        )
    }

    /// Batch normalisation of a [N, C] or [N, C, ...] variable per channel (axis 1):
    /// (x − mean) / sqrt(var + eps) · γ + β with γ and β [C], in one kernel. With `running`
    /// None the batch's own statistics are used (training); with Some((mean, var)) those
    /// (evaluation). Returns the output and the (mean, biased variance) used.
    #[track_caller]
    pub fn batch_norm(
        &self,
        (gamma, beta): (&Self, &Self),
        running: Option<(&kiln_tensor::Tensor<B>, &kiln_tensor::Tensor<B>)>,
        eps: f32,
    ) -> Result<(Self, kiln_tensor::Tensor<B>, kiln_tensor::Tensor<B>)> {
        let x = self.value();
        let (mean, var) = match running {
            None => x.batch_norm_stats()?,
            Some((mean, var)) => (mean.clone(), var.clone()),
        };
        let value = x.batch_norm_forward((&mean, &var), (gamma.value(), beta.value()), eps)?;
        let out = Var::record(
            value,
            Op::BatchNorm {
                mean: mean.clone(),
                var: var.clone(),
                eps,
                batch_stats: running.is_none(),
            },
            vec![self.clone(), gamma.clone(), beta.clone()],
        )?;
        Ok((out, mean, var))
    }

    /// Per-row softmax cross-entropy against labels (u32 [rows]) or probabilities; targets
    /// get no gradient.
    #[track_caller]
    pub fn softmax_xent(&self, targets: &kiln_tensor::Tensor<B>) -> Result<Self> {
        let value = self.value().softmax_xent(targets)?;
        Var::record(
            value,
            Op::SoftmaxXent {
                targets: targets.clone(),
            },
            vec![self.clone()],
        )
    }
}
