//! Precision across drivers: what WGSL promises about each family of f32 operations, and the
//! tolerance that follows for a GPU result against the CPU backend's. The parity tests, the
//! doctor and the benchmark harness take their tolerances from here, so no comparison asks a
//! driver for more than the specification lets it give. docs/kernels.md ("Precision across
//! drivers") tells the same story for readers.
//!
//! What WGSL guarantees (§ "Floating Point Accuracy"), for f32:
//!
//! | operation | guarantee |
//! | --- | --- |
//! | `x + y`, `x − y`, `x · y`, `−x` | correctly rounded, in either direction (no rounding mode is set): within 1 ULP; a·b + c may be fused |
//! | `x / y` | 2.5 ULP for \|y\| in [2⁻¹²⁶, 2¹²⁶] |
//! | `inverseSqrt` | 2 ULP; `sqrt` inherits `1 / inverseSqrt`: 4.5 ULP |
//! | `exp`, `exp2` | 3 + 2\|x\| ULP |
//! | `log`, `log2` | 2⁻²¹ absolute on [0.5, 2]; 3 ULP elsewhere |
//! | `pow(x, y)` | inherits `exp2(y · log2(x))` |
//! | `tanh` | the worse of 10⁻⁵ absolute and `sinh / cosh` (each from `exp`) |
//! | `sin`, `cos` | 2⁻¹¹ absolute on [−π, π] |
//! | `abs`, `min`, `max`, `clamp`, `select`, comparisons, integer operations | exact |
//! | any of the above | a subnormal input or output may be flushed to zero |
//! | float → f16, int → float beyond 2²⁴ | left to the driver out of range / either neighbour |
//!
//! The CPU backend rounds to nearest (½ ULP per operation) and uses Rust's `libm` (≤ 1 ULP), or
//! sums in f64; each bound below adds the CPU's own error to the GPU's. A tolerance compares
//! elementwise: |gpu − cpu| ≤ abs + rel · |cpu|.
//!
//! Kiln leans on none of the loose spots where it needs exactness: random normals, f16
//! conversions, dropout masks and uniform words are computed with integer operations, which
//! WGSL defines exactly, so those compare with [`EXACT`].

use crate::ops::{BinaryOp, UnaryOp};
use std::fmt;

/// One unit in the last place, relative: ULP(x) ≤ 2⁻²³ · |x| for a normal f32 x.
pub const ULP: f64 = f32::EPSILON as f64;
/// The most a flushed subnormal can move a value: the smallest normal f32, 2⁻¹²⁶.
pub const FLUSH: f64 = f32::MIN_POSITIVE as f64;
/// `log`'s absolute bound on [0.5, 2]: 2⁻²¹.
pub const LOG_ABS: f64 = 4.76837158203125e-7;
/// `tanh`'s absolute bound.
pub const TANH_ABS: f64 = 1e-5;

/// An allowed difference between a GPU result and the CPU backend's, and the precision class
/// it comes from (printed with every failure).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub class: &'static str,
    pub abs: f64,
    pub rel: f64,
}

impl Tolerance {
    pub const fn new(class: &'static str, abs: f64, rel: f64) -> Tolerance {
        Tolerance { class, abs, rel }
    }

    /// How far apart `actual` and `expected` may be.
    pub fn allowance(&self, expected: f64) -> f64 {
        self.abs + self.rel * expected.abs()
    }

    /// |actual − expected| as a multiple of the allowance: ≤ 1 passes. Equal values (infinities
    /// of one sign, NaN against NaN included) give 0; a NaN against a number gives infinity.
    pub fn ratio(&self, actual: f64, expected: f64) -> f64 {
        if actual == expected || (actual.is_nan() && expected.is_nan()) {
            return 0.0;
        }
        if !(actual.is_finite() && expected.is_finite()) {
            return f64::INFINITY;
        }
        (actual - expected).abs() / self.allowance(expected)
    }

    /// The largest `ratio` over two slices; infinity when their lengths differ.
    pub fn worst_ratio(&self, actual: &[f64], expected: &[f64]) -> f64 {
        if actual.len() != expected.len() {
            return f64::INFINITY;
        }
        actual
            .iter()
            .zip(expected)
            .map(|(&a, &e)| self.ratio(a, e))
            .fold(0.0, f64::max)
    }

    /// The same bounds scaled by `factor` (an input's magnitude, an upstream gradient's).
    pub fn times(self, factor: f64) -> Tolerance {
        Tolerance {
            abs: self.abs * factor,
            rel: self.rel,
            ..self
        }
    }

    /// The same bounds under another class name.
    pub const fn named(self, class: &'static str) -> Tolerance {
        Tolerance { class, ..self }
    }

    /// The bounds of two error sources that add up (a composite operation).
    pub fn plus(self, other: Tolerance) -> Tolerance {
        Tolerance {
            class: self.class,
            abs: self.abs + other.abs,
            rel: self.rel + other.rel,
        }
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: |gpu − cpu| ≤ {:.2e} + {:.2e}·|cpu|",
            self.class, self.abs, self.rel
        )
    }
}

/// Bits moved or compared, or integer arithmetic: copies, gathers, casts, comparisons, select,
/// max/min, argmax, uniform words, normal draws, dropout masks. Nothing may differ.
pub const EXACT: Tolerance = Tolerance::new("exact", 0.0, 0.0);

/// Exact operations on floats that WGSL lets a driver flush when subnormal (abs, neg, max,
/// clamp, sign): equal up to a flushed subnormal.
pub const EXACT_UP_TO_FLUSH: Tolerance = Tolerance::new("exact up to flushing", FLUSH, 0.0);

/// One `+`, `−` or `·` (or a fused a·b + c): the GPU within 1 ULP, the CPU within ½.
pub const ROUNDED: Tolerance = Tolerance::new("one rounded operation", FLUSH, 1.5 * ULP);

/// A `/`: 2.5 ULP on the GPU, ½ on the CPU.
pub const DIVISION: Tolerance = Tolerance::new("division", FLUSH, 3.0 * ULP);

/// `sqrt` = 1 / inverseSqrt: 2 + 2.5 ULP on the GPU, ½ on the CPU.
pub const SQRT: Tolerance = Tolerance::new("square root", FLUSH, 5.0 * ULP);

/// `log`: 2⁻²¹ absolute on [0.5, 2], 3 ULP elsewhere; 1 ULP on the CPU.
pub const LOG: Tolerance = Tolerance::new("log", LOG_ABS + FLUSH, 4.0 * ULP);

/// `tanh`: 10⁻⁵ absolute (the `sinh / cosh` form is within it for the clamped inputs
/// |x| ≤ 15 Kiln passes: 2(3 + 30) + 4 ULP ≈ 8·10⁻⁶); 1 ULP on the CPU.
pub const TANH: Tolerance = Tolerance::new("tanh", TANH_ABS, ULP);

/// One more rounding of an f32 result to f16: half an f16 step (2⁻¹¹ relative, stated as 2⁻¹⁰
/// for the f16 ULP of values just under a power of two) and f16's smallest subnormal, 2⁻²⁴.
pub const F16_ROUNDING: Tolerance = Tolerance::new("f16 rounding", 5.960_464_5e-8, 9.765_625e-4);

/// Products of f16-rounded operands against the f32 products (a mixed-precision layer against
/// the f32 one): each operand carries 2⁻¹¹ relative error, so about three decimal digits.
pub const F16_OPERANDS: Tolerance = Tolerance::new("f16 operands", 2e-3, 2e-2);

/// A mixed-precision training run's losses against the f32 run's over tens of steps: the
/// f16 operands' error compounds through the steps.
pub const MIXED_VS_F32_TRAINING: Tolerance = Tolerance::new("mixed vs f32 training", 2e-2, 2e-2);

/// A few training steps on the GPU against the CPU: every step's differences (each within the
/// table's bounds) compound through the next; not a per-operation bound, but measured on both
/// software drivers. With f16 products (`mixed`) 10×: an f32 sum that differs in its last bit
/// can round to the neighbouring f16.
pub fn training_steps(mixed: bool) -> Tolerance {
    if mixed {
        Tolerance::new("training steps (mixed)", 1e-2, 1e-2)
    } else {
        Tolerance::new("training steps (f32)", 1e-3, 1e-3)
    }
}

/// `exp(x)` for |x| ≤ `max_abs_x`: 3 + 2|x| ULP on the GPU, 1 on the CPU.
pub fn exp(max_abs_x: f64) -> Tolerance {
    Tolerance::new("exp", FLUSH, (4.0 + 2.0 * max_abs_x) * ULP)
}

/// `pow(a, b)` = exp2(b · log2 a), |b| ≤ `max_abs_exponent`, |log2 a| ≤ `max_abs_log2_base`:
/// log2 is off by at most max(2⁻²¹, 3 ULP·|log2 a|), the product t = b·log2 a by |b| times
/// that plus 1 ULP, and exp2(t) by 3 + 2|t| ULP plus ln 2 · Δt relative; 1 ULP on the CPU.
pub fn pow(max_abs_exponent: f64, max_abs_log2_base: f64) -> Tolerance {
    let t = max_abs_exponent * max_abs_log2_base;
    let log2_error = LOG_ABS.max(3.0 * ULP * max_abs_log2_base);
    let t_error = max_abs_exponent * log2_error + ULP * t;
    let rel = std::f64::consts::LN_2 * t_error + (4.0 + 2.0 * t) * ULP;
    Tolerance::new("pow", FLUSH, rel)
}

/// A sum accumulated along a chain of at most `depth` additions, each correctly rounded, whose
/// terms have absolute values summing to at most `sum_abs`: within depth · ULP · Σ|x| (the
/// classic bound for recursive summation), against the CPU's f64 sum; a mean's division adds
/// 2.5 ULP. The depth is the kernel's: [`row_sum_depth`], [`column_sum_depth`],
/// [`global_sum_depth`].
pub fn sum(depth: usize, sum_abs: f64) -> Tolerance {
    Tolerance::new("sum", FLUSH + depth as f64 * ULP * sum_abs, 3.5 * ULP)
}

/// reduce_rows folds ⌈len/256⌉ terms per invocation, then a tree of 8 levels;
/// reduce_rows_narrow (len ≤ 64) folds the row serially.
pub fn row_sum_depth(len: usize) -> usize {
    if len <= 64 {
        len
    } else {
        len.div_ceil(256) + 8
    }
}

/// reduce_columns: 4 lanes fold every 4th row, then lane 0 adds the 4 lanes.
pub fn column_sum_depth(len: usize) -> usize {
    len.div_ceil(4) + 3
}

/// batch_norm.wgsl's reductions: with inner 1, reduce_columns' 4 lanes and a tree of 2 levels;
/// with images (inner > 1), 256 lanes each fold ⌈count/256⌉ terms, then a tree of 8 levels.
pub fn batch_norm_sum_depth(count: usize, inner: usize) -> usize {
    if inner == 1 {
        column_sum_depth(count)
    } else {
        count.div_ceil(256) + 8
    }
}

/// batch_norm_forward and batch_norm_backward_input against the CPU: a per-channel coefficient
/// from var + eps through a sqrt (WGSL allows 3 ULP, as 1 / inverseSqrt) and a division
/// (2.5 ULP), then a few subtractions, products and an add, every intermediate at most `bound`
/// in magnitude: within 16 ULP of `bound`.
pub fn batch_norm_map(bound: f64) -> Tolerance {
    Tolerance::new("batch norm map", FLUSH + 16.0 * ULP * bound, 2.0 * ULP)
}

/// A global sum: one row reduction up to 4096 terms; beyond, ⌈n/256⌉ (at most 1024) workgroups
/// of 256 lanes each fold a grid-stride share, a tree of 8 levels combines each workgroup's,
/// and a row reduction sums the partials.
pub fn global_sum_depth(n: usize) -> usize {
    if n <= 4096 {
        row_sum_depth(n)
    } else {
        let partials = n.div_ceil(256).min(1024);
        n.div_ceil(partials * 256) + 8 + row_sum_depth(partials)
    }
}

/// A K-long dot product: each product and each addition correctly rounded (or fused), so the
/// result is within K · ULP · Σ|a·b| (+ ½ ULP for the CPU's final rounding of its f64-accurate
/// sum); `sum_abs_products` bounds Σ|a·b|, e.g. K · max|a| · max|b|.
pub fn dot(k: usize, sum_abs_products: f64) -> Tolerance {
    Tolerance::new(
        "dot product",
        FLUSH + k.max(1) as f64 * ULP * sum_abs_products,
        1.5 * ULP,
    )
}

/// Softmax, log-softmax and softmax cross-entropy over rows of `classes` logits spanning at most
/// `range` (max − min). Each exp(x − max) is within 3 + 2|x − max| ULP, which weighted by the
/// term's size stays under 3 ULP of the sum S plus 0.74 ULP a term; summing adds a ULP of S a
/// term; log S adds 2⁻²¹ (S ∈ [1, 2]) or 3 ULP of log S; x − max adds a ULP of `range`; soft
/// targets add a sum of `classes` terms of at most `range`. The probabilities (softmax, the
/// backward pass) inherit the first two and a division: (6 + 2·classes) ULP absolute.
pub fn softmax(classes: usize, range: f64) -> Tolerance {
    let c = classes as f64;
    let targets = row_sum_depth(classes) as f64 * range;
    let forward = (4.0 + 1.74 * c + c + range + 3.0 * c.ln().max(0.0) + targets) * ULP + LOG_ABS;
    let backward = (6.0 + 2.0 * c) * ULP;
    Tolerance::new("softmax", FLUSH + forward.max(backward), 2.0 * ULP)
}

/// `steps` fused optimiser steps (Adam, SGD with momentum, AdaGrad/RMSProp) on parameters,
/// gradients and states of magnitude ≤ 1: a step is a handful of correctly rounded operations
/// (1 ULP each), a sqrt (4.5) and up to three divisions (2.5 each), so each value moves by at
/// most 20 ULP of the largest term per step, and the errors add up over the steps.
pub fn optimizer_steps(steps: usize) -> Tolerance {
    let s = steps.max(1) as f64;
    Tolerance::new("optimizer steps", FLUSH + s * 20.0 * ULP, s * 3.0 * ULP)
}

/// `shift + scale·u` with |scale·u| ≤ `scale_bound` (uniform fills, `mean + std·z` normal
/// fills, u8 data scaled and shifted): a multiply and an add, each within 1 ULP on the GPU (or
/// fused) and ½ on the CPU, plus the rounding of `scale` itself where it is computed
/// (high − low).
pub fn scale_and_shift(shift: f64, scale_bound: f64) -> Tolerance {
    Tolerance::new(
        "scale and shift",
        FLUSH + 3.0 * ULP * scale_bound + 1.5 * ULP * shift.abs(),
        1.5 * ULP,
    )
}

/// Augmentation (augment.wgsl) of images at most `side` pixels wide with values in [0, 1]. A
/// warp's source coordinate is two products and two adds of terms up to 2·side (≤ 8·side
/// ULP), and a bilinear tap moves by at most the coordinate's error (neighbours differ by ≤ 1)
/// plus its own eight roundings; colour jitter's mean grey level is a sum over side² pixels,
/// and its blends a dozen roundings more.
pub fn augmentation(side: usize) -> Tolerance {
    let pixels = side * side;
    let ulps = 8.0 * side as f64 + 16.0 + row_sum_depth(pixels) as f64 + 12.0;
    Tolerance::new("augmentation", FLUSH + ulps * ULP, 2.0 * ULP)
}

/// `op(x)` for |x| ≤ `max_abs_x` (common.wgsl's `unary_eval`, against the CPU's f32 libm).
pub fn unary(op: UnaryOp, max_abs_x: f64) -> Tolerance {
    let x = max_abs_x;
    match op {
        UnaryOp::Identity
        | UnaryOp::Neg
        | UnaryOp::Abs
        | UnaryOp::Sign
        | UnaryOp::Relu
        | UnaryOp::HardTanh => EXACT_UP_TO_FLUSH,
        UnaryOp::Square | UnaryOp::LeakyRelu { .. } => ROUNDED,
        UnaryOp::Recip => DIVISION,
        UnaryOp::Sqrt => SQRT,
        UnaryOp::Exp => exp(x),
        UnaryOp::Log => LOG,
        UnaryOp::Tanh => TANH,
        // 1/(1 + e) or e/(1 + e) with e = exp(−|x|) ≤ 1: exp's error shrinks by e/(1 + e), the
        // sum adds 1 ULP, the division 2.5.
        UnaryOp::Sigmoid => exp(x)
            .plus(Tolerance::new("", 0.0, 3.5 * ULP))
            .named("sigmoid"),
        // α(exp(x) − 1) for x < 0: exp's error is absolute once the 1 is subtracted.
        UnaryOp::Elu { alpha } => {
            let e = exp(x);
            Tolerance::new("elu", FLUSH + e.rel * alpha.abs() as f64, 2.0 * ULP)
        }
        // max(x, 0) + log(1 + exp(−|x|)): exp(−|x|) ≤ 1 is off by its ULP bound absolutely, the
        // log of a value in [1, 2] by 2⁻²¹, and three roundings follow.
        UnaryOp::Softplus => Tolerance::new("softplus", FLUSH + LOG_ABS + exp(x).rel, 3.0 * ULP),
        // x · sigmoid(x): sigmoid's relative bound and one more rounding.
        UnaryOp::Silu => unary(UnaryOp::Sigmoid, x)
            .plus(Tolerance::new("", 0.0, 0.5 * ULP))
            .named("silu"),
    }
}

/// `dy · op'(x)` for |x| ≤ `max_abs_x` and |dy| ≤ 1 (common.wgsl's `unary_derivative`, then
/// one multiply).
pub fn unary_derivative(op: UnaryOp, max_abs_x: f64) -> Tolerance {
    let x = max_abs_x;
    let times_dy = Tolerance::new("", 0.0, 1.5 * ULP);
    let class = match op {
        UnaryOp::Identity
        | UnaryOp::Neg
        | UnaryOp::Abs
        | UnaryOp::Sign
        | UnaryOp::Relu
        | UnaryOp::HardTanh
        | UnaryOp::LeakyRelu { .. }
        | UnaryOp::Square => ROUNDED,
        UnaryOp::Exp => exp(x),
        UnaryOp::Log => DIVISION,
        // 0.5 / sqrt(x).
        UnaryOp::Sqrt => SQRT.plus(DIVISION),
        // −1 / (x · x).
        UnaryOp::Recip => DIVISION.plus(ROUNDED),
        // s(1 − s): an error δ in s moves it by |1 − 2s|·δ ≤ δ ≤ s's relative bound.
        UnaryOp::Sigmoid | UnaryOp::Softplus => {
            let s = unary(UnaryOp::Sigmoid, x);
            Tolerance::new("sigmoid derivative", FLUSH + s.rel, 3.0 * ULP)
        }
        // 1 − t²: an error δ in t moves it by 2|t|·δ ≤ 2δ.
        UnaryOp::Tanh => Tolerance::new("tanh derivative", 2.0 * TANH_ABS, 3.0 * ULP),
        UnaryOp::Elu { .. } => exp(x).plus(ROUNDED),
        // s(1 + x(1 − s)): an error δ in s moves it by |1 + x(1 − 2s)|·δ ≤ (1 + |x|)·δ, and
        // four roundings of terms up to 1 + |x| follow.
        UnaryOp::Silu => {
            let s = unary(UnaryOp::Sigmoid, x);
            Tolerance::new(
                "silu derivative",
                FLUSH + (1.0 + x) * (s.rel + 4.0 * ULP),
                ULP,
            )
        }
    };
    class.plus(times_dy)
}

/// `a ∘ b` (common.wgsl's `binary_eval`); `pow` with |b| ≤ `max_abs_exponent` and
/// |log2 a| ≤ `max_abs_log2_base`.
pub fn binary(op: BinaryOp, max_abs_exponent: f64, max_abs_log2_base: f64) -> Tolerance {
    match op {
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul => ROUNDED,
        BinaryOp::Div => DIVISION,
        BinaryOp::Pow => pow(max_abs_exponent, max_abs_log2_base),
        BinaryOp::Max | BinaryOp::Min => EXACT_UP_TO_FLUSH,
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            EXACT
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_treat_specials_and_compare_against_the_allowance() {
        let t = Tolerance::new("t", 1e-6, 1e-3);
        assert_eq!(t.ratio(f64::INFINITY, f64::INFINITY), 0.0);
        assert_eq!(t.ratio(f64::NAN, f64::NAN), 0.0);
        assert_eq!(t.ratio(f64::NAN, 1.0), f64::INFINITY);
        assert_eq!(t.ratio(f64::NEG_INFINITY, f64::INFINITY), f64::INFINITY);
        assert_eq!(t.ratio(1.0, f64::INFINITY), f64::INFINITY);
        assert!((t.ratio(2.002, 2.0) - 0.002 / (1e-6 + 2e-3)).abs() < 1e-9);
        assert_eq!(t.worst_ratio(&[1.0], &[1.0, 2.0]), f64::INFINITY);
        assert_eq!(EXACT.ratio(1.0, 1.0), 0.0);
        assert_eq!(EXACT.ratio(1.0 + 1e-15, 1.0), f64::INFINITY);
    }

    #[test]
    fn bounds_grow_with_what_the_specification_says_they_grow_with() {
        assert!(exp(10.0).rel > exp(1.0).rel);
        assert_eq!(exp(0.0).rel, 4.0 * ULP);
        assert!(sum(20, 100.0).abs > sum(10, 100.0).abs);
        assert!(dot(1000, 250.0).abs > dot(10, 2.5).abs);
        assert!(pow(3.0, 3.4).rel > pow(1.0, 1.0).rel);
        assert_eq!(row_sum_depth(1000), 12);
        assert_eq!(row_sum_depth(33), 33);
        assert_eq!(column_sum_depth(127), 35);
        assert_eq!(global_sum_depth(4096), 24);
        assert_eq!(global_sum_depth(4097), 26);
        assert_eq!(global_sum_depth(100_000), 19);
        assert_eq!(global_sum_depth(1_000_003), 4 + 8 + 12);
        assert!(TANH.abs >= TANH_ABS && LOG.abs >= LOG_ABS);
    }
}
