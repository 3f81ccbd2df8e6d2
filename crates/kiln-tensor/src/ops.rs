//! Op families. Each variant knows its code, which the WGSL kernels switch on (the same
//! numbers appear in `shaders/common.wgsl`), and the CPU backend matches on it once.

/// Elementwise functions of one argument, activations included. The parameterised
/// activations carry their slope/scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Identity,
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    Square,
    Recip,
    Sign,
    Sigmoid,
    Tanh,
    Relu,
    LeakyRelu {
        alpha: f32,
    },
    Elu {
        alpha: f32,
    },
    Softplus,
    /// Clamp to [-1, 1].
    HardTanh,
    /// SiLU (swish): x · sigmoid(x).
    Silu,
}

impl UnaryOp {
    /// Every op, with representative parameters; tests iterate over it.
    pub const ALL: [UnaryOp; 17] = [
        UnaryOp::Identity,
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Square,
        UnaryOp::Recip,
        UnaryOp::Sign,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Relu,
        UnaryOp::LeakyRelu { alpha: 0.01 },
        UnaryOp::Elu { alpha: 1.0 },
        UnaryOp::Softplus,
        UnaryOp::HardTanh,
        UnaryOp::Silu,
    ];

    /// The op code the WGSL `unary_eval`/`unary_derivative` functions switch on.
    pub fn code(self) -> u32 {
        match self {
            UnaryOp::Identity => 0,
            UnaryOp::Neg => 1,
            UnaryOp::Abs => 2,
            UnaryOp::Exp => 3,
            UnaryOp::Log => 4,
            UnaryOp::Sqrt => 5,
            UnaryOp::Square => 6,
            UnaryOp::Recip => 7,
            UnaryOp::Sign => 8,
            UnaryOp::Sigmoid => 9,
            UnaryOp::Tanh => 10,
            UnaryOp::Relu => 11,
            UnaryOp::LeakyRelu { .. } => 12,
            UnaryOp::Elu { .. } => 13,
            UnaryOp::Softplus => 14,
            UnaryOp::HardTanh => 15,
            UnaryOp::Silu => 16,
        }
    }

    /// The op's parameter (slope or scale), 0 when it has none.
    pub fn param(self) -> f32 {
        match self {
            UnaryOp::LeakyRelu { alpha } | UnaryOp::Elu { alpha } => alpha,
            _ => 0.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Identity => "identity",
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Square => "square",
            UnaryOp::Recip => "recip",
            UnaryOp::Sign => "sign",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Relu => "relu",
            UnaryOp::LeakyRelu { .. } => "leaky_relu",
            UnaryOp::Elu { .. } => "elu",
            UnaryOp::Softplus => "softplus",
            UnaryOp::HardTanh => "hard_tanh",
            UnaryOp::Silu => "silu",
        }
    }

    /// True where the function has a kink (derivative jumps); gradient checks skip near it.
    pub fn has_kink(self) -> bool {
        matches!(
            self,
            UnaryOp::Abs
                | UnaryOp::Sign
                | UnaryOp::Relu
                | UnaryOp::LeakyRelu { .. }
                | UnaryOp::Elu { .. }
                | UnaryOp::HardTanh
        )
    }
}

/// Elementwise functions of two arguments. Comparisons return 1.0 or 0.0 in the float dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 13] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Pow,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
    ];

    pub fn code(self) -> u32 {
        self as u32
    }

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
            BinaryOp::Pow => "pow",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
        }
    }
}

/// Reductions along one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
    /// Index (u32) of the first maximum.
    ArgMax,
}

impl ReduceOp {
    pub const ALL: [ReduceOp; 5] = [
        ReduceOp::Sum,
        ReduceOp::Mean,
        ReduceOp::Max,
        ReduceOp::Min,
        ReduceOp::ArgMax,
    ];

    pub fn code(self) -> u32 {
        self as u32
    }

    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::ArgMax => "argmax",
        }
    }
}

/// How a random fill draws its values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    Uniform { low: f32, high: f32 },
    Normal { mean: f32, std: f32 },
}

/// Where a counter-based random stream starts: the same (seed, offset) gives the same values
/// on every backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RngState {
    pub seed: u64,
    pub offset: u64,
}

/// Hyper-parameters of one fused Adam/AdamW step. `step` counts from 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// AdamW (weight decay applied to the parameter, decoupled from the gradient) when true;
    /// classic L2 (decay added to the gradient) when false.
    pub decoupled: bool,
    pub step: u32,
}

impl AdamStep {
    /// Bias corrections 1 - β1^t and 1 - β2^t, computed in f64.
    pub fn bias_corrections(&self) -> (f32, f32) {
        let t = self.step as i32;
        (
            (1.0 - (self.beta1 as f64).powi(t)) as f32,
            (1.0 - (self.beta2 as f64).powi(t)) as f32,
        )
    }
}

/// Hyper-parameters of one fused SGD step (PyTorch's form, dampening 0):
/// g = ∇ + weight_decay·w; v ← momentum·v + g; w ← w − lr·(nesterov ? g + momentum·v : v).
/// Without momentum there is no velocity and w ← w − lr·g.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    pub lr: f32,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
}

/// Hyper-parameters of one fused AdaGrad/RMSProp step over the accumulator s:
/// g = ∇ + weight_decay·w; s ← decay·s + gain·g²; w ← w − lr·g / (√s + eps).
/// How dynamic loss scaling moves the scale after each step (PyTorch's GradScaler rule): a step
/// with a non-finite gradient is skipped and the scale multiplied by `backoff`; `interval`
/// finite steps in a row multiply it by `growth` (capped at 2²⁴).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossScaleRule {
    pub growth: f32,
    pub backoff: f32,
    pub interval: u32,
}

impl Default for LossScaleRule {
    /// PyTorch's defaults: ×2 after 2000 finite steps, ×0.5 on overflow.
    fn default() -> Self {
        LossScaleRule {
            growth: 2.0,
            backoff: 0.5,
            interval: 2000,
        }
    }
}

/// AdaGrad is decay = gain = 1; RMSProp is decay = α, gain = 1 − α.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptiveStep {
    pub lr: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decay: f32,
    pub gain: f32,
}

/// Matrix product shape: C[batch, m, n] = op(A)[batch, m, k] · op(B)[batch, k, n].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulShape {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// A is stored [k, m] (row-major) and read transposed.
    pub trans_a: bool,
    /// B is stored [n, k] (row-major) and read transposed.
    pub trans_b: bool,
    /// Elements between consecutive matrices of A and B in the batch (0 broadcasts one matrix).
    pub batch_stride_a: usize,
    pub batch_stride_b: usize,
}

impl MatmulShape {
    pub fn flops(&self) -> f64 {
        2.0 * (self.batch * self.m * self.n * self.k) as f64
    }
}

/// The targets of a softmax cross-entropy.
pub enum XentTargets<'a, S> {
    /// One u32 class index per row.
    Labels(&'a S),
    /// A probability row per row of logits (same shape as the logits).
    Soft(&'a S),
}

/// A batch of images stored as rows of a [count, channels · height · width] f32 tensor,
/// channel-major within a row (planes of height × width).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageBatch {
    pub count: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageBatch {
    /// Values per image.
    pub fn features(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn numel(&self) -> usize {
        self.count * self.features()
    }
}

/// How `warp_images` samples the source image at a mapped coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Warp {
    /// Bilinear interpolation of the four neighbours; otherwise the nearest pixel
    /// (coordinates rounded half up, exact for integer maps such as flips and crops).
    pub bilinear: bool,
    /// Coordinates outside the image reflect about the edge pixels (−1 → 1, width → width −
    /// 2); otherwise they read zero.
    pub reflect: bool,
}

/// A 2-D convolution over NCHW tensors: x [batch, in_channels, height, width], w [out_channels,
/// in_channels / groups, kernel_h, kernel_w], y [batch, out_channels, out_height, out_width].
/// Output pixel (oh, ow) reads input pixel (oh·stride + kh·dilation − padding, ...) through tap
/// (kh, kw); taps outside the image read the zero padding. With `groups` g, the channels split
/// into g groups: output channel o reads only the in_channels / g input channels of its group
/// o / (out_channels / g) (g = in_channels: depthwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dShape {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Conv2dShape {
    /// How the convolution slides, as `Tensor::conv2d` takes it.
    pub fn options(&self) -> crate::Conv2dOptions {
        crate::Conv2dOptions {
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
        }
    }

    /// Input channels each output channel reads: in_channels / groups.
    pub fn group_in(&self) -> usize {
        self.in_channels / self.groups.max(1)
    }

    /// Output channels per group: out_channels / groups.
    pub fn group_out(&self) -> usize {
        self.out_channels / self.groups.max(1)
    }

    /// The kernel's extent with dilation: (kernel − 1)·dilation + 1.
    fn span(&self, kernel: usize) -> usize {
        (kernel.max(1) - 1) * self.dilation + 1
    }

    /// Output rows: (height + 2·padding − span) / stride + 1 (0 when the kernel does not fit).
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding)
            .checked_sub(self.span(self.kernel_h))
            .map_or(0, |r| r / self.stride.max(1) + 1)
    }

    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding)
            .checked_sub(self.span(self.kernel_w))
            .map_or(0, |r| r / self.stride.max(1) + 1)
    }

    /// Taps per output pixel: (in_channels / groups) · kernel_h · kernel_w (the GEMM depth;
    /// one output channel's weights).
    pub fn patch_len(&self) -> usize {
        self.group_in() * self.kernel_h * self.kernel_w
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.height * self.width
    }

    pub fn weight_len(&self) -> usize {
        self.out_channels * self.patch_len()
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_height() * self.out_width()
    }

    pub fn flops(&self) -> f64 {
        2.0 * self.output_len() as f64 * self.patch_len() as f64
    }
}

/// 2-D pooling over NCHW tensors with a square `kernel` window: x [batch, channels, height,
/// width], y [batch, channels, out_height, out_width]; window (oh, ow) starts at input pixel
/// (oh·stride − padding, ow·stride − padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2dShape {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Pool2dShape {
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding)
            .checked_sub(self.kernel)
            .map_or(0, |r| r / self.stride.max(1) + 1)
    }

    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding)
            .checked_sub(self.kernel)
            .map_or(0, |r| r / self.stride.max(1) + 1)
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.channels * self.out_height() * self.out_width()
    }
}
