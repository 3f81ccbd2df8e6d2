//! The recorded operations. Each variant keeps what its backward rule needs beyond the
//! inputs' values (which the graph keeps anyway).

use kiln_tensor::{Backend, BinaryOp, Conv2dShape, Pool2dShape, Tensor, UnaryOp};

pub enum Op<B: Backend> {
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// `input op scalar` (or `scalar op input` when `scalar_on_left`).
    BinaryScalar {
        op: BinaryOp,
        scalar: f64,
        scalar_on_left: bool,
    },
    /// 2-D matrix product.
    Matmul,
    /// act(a · b + bias) in one fused kernel, inputs (a, b, bias); the result has the bias's
    /// dtype (f32 for f16 operands in mixed precision).
    MatmulBiasAct {
        activation: Option<UnaryOp>,
    },
    /// `len` entries of dimension `dim` from `start`.
    Narrow {
        dim: usize,
        start: usize,
    },
    /// Sum or mean along one axis (removed from the shape).
    Sum {
        axis: usize,
    },
    Mean {
        axis: usize,
    },
    SumAll,
    Reshape,
    /// A dtype conversion (f32 ↔ f16); the gradient is converted back.
    Cast,
    Transpose {
        a: usize,
        b: usize,
    },
    BroadcastTo,
    /// Max or min along one axis (the gradient goes to the extreme elements, split among ties).
    Max {
        axis: usize,
    },
    Min {
        axis: usize,
    },
    /// Per-row softmax cross-entropy against fixed targets (labels or probabilities).
    SoftmaxXent {
        targets: Tensor<B>,
    },
    /// Row softmax or log-softmax of a [rows, cols] input.
    Softmax {
        log: bool,
    },
    /// `cond != 0 ? on_true : on_false` with inputs (cond, on_true, on_false); cond gets no gradient.
    Select,
    /// PReLU with inputs (x, alpha).
    Prelu,
    /// Inverted dropout with the scaled mask it drew.
    Dropout {
        mask: Tensor<B>,
    },
    /// Rows of the input picked by u32 indices.
    GatherRows {
        indices: Tensor<B>,
    },
    /// act(conv(x, w) + bias) over NCHW, inputs (x, w) or (x, w, bias).
    Conv2d {
        shape: Conv2dShape,
        activation: Option<UnaryOp>,
    },
    /// Max pooling with the arg-max indices it found.
    MaxPool2d {
        shape: Pool2dShape,
        indices: Tensor<B>,
    },
    AvgPool2d {
        shape: Pool2dShape,
    },
    /// Batch normalisation per channel (axis 1): (x − mean) / sqrt(var + eps) · γ + β; inputs
    /// x, γ, β. `batch_stats`: mean and var are the batch's own (training), so dx flows through
    /// them too; else they are constants (running statistics, evaluation).
    BatchNorm {
        mean: Tensor<B>,
        var: Tensor<B>,
        eps: f32,
        batch_stats: bool,
    },
}

impl<B: Backend> Op<B> {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Unary(op) => op.name(),
            Op::Binary(op) => op.name(),
            Op::BinaryScalar { op, .. } => op.name(),
            Op::Matmul => "matmul",
            Op::MatmulBiasAct { .. } => "matmul_bias_act",
            Op::Narrow { .. } => "narrow",
            Op::Sum { .. } => "sum",
            Op::Mean { .. } => "mean",
            Op::SumAll => "sum_all",
            Op::Reshape => "reshape",
            Op::Cast => "cast",
            Op::Transpose { .. } => "transpose",
            Op::BroadcastTo => "broadcast_to",
            Op::Max { .. } => "max",
            Op::Min { .. } => "min",
            Op::SoftmaxXent { .. } => "softmax_xent",
            Op::Softmax { log: false } => "softmax",
            Op::Softmax { log: true } => "log_softmax",
            Op::Select => "select",
            Op::Prelu => "prelu",
            Op::Dropout { .. } => "dropout",
            Op::GatherRows { .. } => "gather_rows",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Conv2d { .. } => "conv2d",
            Op::MaxPool2d { .. } => "max_pool2d",
            Op::AvgPool2d { .. } => "avg_pool2d",
        }
    }
}
