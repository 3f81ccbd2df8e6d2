//! The float types the CPU backend computes in (f32, and f64 for gradient checks), and the
//! scalar definitions of every unary and binary op. These are the reference semantics the
//! WGSL kernels in shaders/common.wgsl are checked against.

use kiln_tensor::{BinaryOp, UnaryOp};

pub trait Real:
    Copy
    + Send
    + Sync
    + PartialOrd
    + std::fmt::Debug
    + 'static
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::iter::Sum
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn tanh(self) -> Self;
    fn powf(self, e: Self) -> Self;
    fn max(self, other: Self) -> Self;
    fn min(self, other: Self) -> Self;
    fn is_nan(self) -> bool;
}

macro_rules! real_impl {
    ($t:ty) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}

real_impl!(f32);
real_impl!(f64);

fn sign<T: Real>(x: T) -> T {
    if x > T::ZERO {
        T::ONE
    } else if x < T::ZERO {
        -T::ONE
    } else {
        T::ZERO
    }
}

pub fn sigmoid<T: Real>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

/// ReLU and its derivative, on their own for the loops that specialise them (`unary_eval` is
/// too large to inline into a per-element loop).
#[inline]
pub fn relu<T: Real>(x: T) -> T {
    x.max(T::ZERO)
}

#[inline]
pub fn relu_derivative<T: Real>(x: T) -> T {
    if x > T::ZERO {
        T::ONE
    } else {
        T::ZERO
    }
}

pub fn unary_eval<T: Real>(op: UnaryOp, x: T) -> T {
    let alpha = T::from_f64(op.param() as f64);
    match op {
        UnaryOp::Identity => x,
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Square => x * x,
        UnaryOp::Recip => T::ONE / x,
        UnaryOp::Sign => sign(x),
        UnaryOp::Sigmoid => sigmoid(x),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Relu => relu(x),
        UnaryOp::LeakyRelu { .. } => {
            if x > T::ZERO {
                x
            } else {
                alpha * x
            }
        }
        UnaryOp::Elu { .. } => {
            if x > T::ZERO {
                x
            } else {
                alpha * (x.exp() - T::ONE)
            }
        }
        UnaryOp::Softplus => x.max(T::ZERO) + (T::ONE + (-x.abs()).exp()).ln(),
        UnaryOp::HardTanh => x.max(-T::ONE).min(T::ONE),
        UnaryOp::Silu => x * sigmoid(x),
    }
}

/// d/dx of `unary_eval(op, x)`; at a kink the right-hand choice matches the WGSL kernels.
pub fn unary_derivative<T: Real>(op: UnaryOp, x: T) -> T {
    let alpha = T::from_f64(op.param() as f64);
    let step = |c: bool| if c { T::ONE } else { T::ZERO };
    match op {
        UnaryOp::Identity => T::ONE,
        UnaryOp::Neg => -T::ONE,
        UnaryOp::Abs => sign(x),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => T::ONE / x,
        UnaryOp::Sqrt => T::from_f64(0.5) / x.sqrt(),
        UnaryOp::Square => T::from_f64(2.0) * x,
        UnaryOp::Recip => -T::ONE / (x * x),
        UnaryOp::Sign => T::ZERO,
        UnaryOp::Sigmoid => {
            let s = sigmoid(x);
            s * (T::ONE - s)
        }
        UnaryOp::Tanh => {
            let t = x.tanh();
            T::ONE - t * t
        }
        UnaryOp::Relu => relu_derivative(x),
        UnaryOp::LeakyRelu { .. } => {
            if x > T::ZERO {
                T::ONE
            } else {
                alpha
            }
        }
        UnaryOp::Elu { .. } => {
            if x > T::ZERO {
                T::ONE
            } else {
                alpha * x.exp()
            }
        }
        UnaryOp::Softplus => sigmoid(x),
        UnaryOp::HardTanh => step(x.abs() < T::ONE),
        UnaryOp::Silu => {
            let s = sigmoid(x);
            s * (T::ONE + x * (T::ONE - s))
        }
    }
}

pub fn binary_eval<T: Real>(op: BinaryOp, a: T, b: T) -> T {
    let flag = |c: bool| if c { T::ONE } else { T::ZERO };
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Max => a.max(b),
        BinaryOp::Min => a.min(b),
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Eq => flag(a == b),
        BinaryOp::Ne => flag(a != b),
        BinaryOp::Lt => flag(a < b),
        BinaryOp::Le => flag(a <= b),
        BinaryOp::Gt => flag(a > b),
        BinaryOp::Ge => flag(a >= b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hand-computed values: sigmoid(0) = 1/2, tanh'(0) = 1, softplus(0) = ln 2,
    // elu(-1) = e⁻¹ − 1, leaky_relu(-2) = -0.02 with slope 0.01.
    #[test]
    fn scalar_definitions_match_hand_computed_values() {
        assert_eq!(unary_eval(UnaryOp::Sigmoid, 0.0f64), 0.5);
        assert_eq!(unary_derivative(UnaryOp::Tanh, 0.0f64), 1.0);
        assert!((unary_eval(UnaryOp::Softplus, 0.0f64) - 2f64.ln()).abs() < 1e-15);
        assert!(
            (unary_eval(UnaryOp::Elu { alpha: 1.0 }, -1.0f64) - (-1f64).exp_m1()).abs() < 1e-15
        );
        assert!((unary_eval(UnaryOp::LeakyRelu { alpha: 0.01 }, -2.0f64) + 0.02).abs() < 1e-9);
        assert_eq!(unary_eval(UnaryOp::HardTanh, 3.0f64), 1.0);
        assert_eq!(binary_eval(BinaryOp::Ge, 2.0f64, 2.0), 1.0);
        assert_eq!(binary_eval(BinaryOp::Pow, 2.0f64, 10.0), 1024.0);
        assert_eq!(unary_eval(UnaryOp::Sigmoid, -800.0f64), 0.0);
    }
}
