//! Elementwise tensor ops (unary, binary with broadcasting, scalar forms, comparisons,
//! select) and the arithmetic operators. Operators return `Result<Tensor>`: shape errors are
//! values, never panics, so `(&a + &b)?` is the idiom.

use crate::backend::Backend;
use crate::error::{KilnError, Result};
use crate::ops::{BinaryOp, ReduceOp, UnaryOp};
use crate::{Shape, Tensor};
use std::ops::{Add, Div, Mul, Neg, Sub};

impl<B: Backend> Tensor<B> {
    pub(crate) fn require_float(&self, op: &'static str) -> Result<()> {
        if self.dtype().is_float() {
            Ok(())
        } else {
            Err(KilnError::UnsupportedDType {
                op,
                dtype: self.dtype(),
                backend: self.backend.name(),
                supported: "f32, f64 (cast other dtypes first)".into(),
            })
        }
    }

    fn require_same_dtype(&self, other: &Tensor<B>, op: &'static str) -> Result<()> {
        if self.dtype() == other.dtype() {
            Ok(())
        } else {
            Err(KilnError::DTypeMismatch {
                op,
                lhs: self.dtype(),
                rhs: other.dtype(),
            })
        }
    }

    pub fn unary(&self, op: UnaryOp) -> Result<Self> {
        self.require_float(op.name())?;
        let storage = self.backend.unary(op, &self.storage, &self.layout)?;
        Ok(self.wrap(storage, self.shape().clone()))
    }

    /// grad · op'(self): the backward of a unary op evaluated at this tensor.
    pub fn unary_backward(&self, op: UnaryOp, grad: &Tensor<B>) -> Result<Self> {
        self.require_float(op.name())?;
        self.require_same_dtype(grad, "unary_backward")?;
        if self.shape() != grad.shape() {
            return Err(KilnError::ShapeMismatch {
                op: "unary_backward",
                lhs: self.shape().clone(),
                rhs: grad.shape().clone(),
                reason: "the gradient must have the input's shape".into(),
            });
        }
        let storage = self.backend.unary_backward(
            op,
            &self.storage,
            &self.layout,
            &grad.storage,
            &grad.layout,
        )?;
        Ok(self.wrap(storage, self.shape().clone()))
    }

    pub fn exp(&self) -> Result<Self> {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Result<Self> {
        self.unary(UnaryOp::Log)
    }
    pub fn sqrt(&self) -> Result<Self> {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn abs(&self) -> Result<Self> {
        self.unary(UnaryOp::Abs)
    }
    pub fn square(&self) -> Result<Self> {
        self.unary(UnaryOp::Square)
    }
    pub fn recip(&self) -> Result<Self> {
        self.unary(UnaryOp::Recip)
    }
    pub fn sign(&self) -> Result<Self> {
        self.unary(UnaryOp::Sign)
    }
    pub fn sigmoid(&self) -> Result<Self> {
        self.unary(UnaryOp::Sigmoid)
    }
    pub fn tanh(&self) -> Result<Self> {
        self.unary(UnaryOp::Tanh)
    }
    pub fn relu(&self) -> Result<Self> {
        self.unary(UnaryOp::Relu)
    }
    pub fn leaky_relu(&self, alpha: f32) -> Result<Self> {
        self.unary(UnaryOp::LeakyRelu { alpha })
    }
    pub fn elu(&self, alpha: f32) -> Result<Self> {
        self.unary(UnaryOp::Elu { alpha })
    }
    pub fn softplus(&self) -> Result<Self> {
        self.unary(UnaryOp::Softplus)
    }
    pub fn hard_tanh(&self) -> Result<Self> {
        self.unary(UnaryOp::HardTanh)
    }

    /// Elementwise `self op other` with NumPy broadcasting.
    pub fn binary(&self, op: BinaryOp, other: &Tensor<B>) -> Result<Self> {
        self.require_float(op.name())?;
        self.require_same_dtype(other, op.name())?;
        let shape = Shape::broadcast(op.name(), self.shape(), other.shape())?;
        let lhs = self.layout.broadcast_to(&shape)?;
        let rhs = other.layout.broadcast_to(&shape)?;
        let storage = self
            .backend
            .binary(op, &self.storage, &lhs, &other.storage, &rhs)?;
        Ok(self.wrap(storage, shape))
    }

    /// `self op scalar`.
    pub fn binary_scalar(&self, op: BinaryOp, scalar: f64) -> Result<Self> {
        self.require_float(op.name())?;
        let storage = self
            .backend
            .binary_scalar(op, &self.storage, &self.layout, scalar, false)?;
        Ok(self.wrap(storage, self.shape().clone()))
    }

    /// `scalar op self`.
    pub fn scalar_binary(scalar: f64, op: BinaryOp, rhs: &Tensor<B>) -> Result<Self> {
        rhs.require_float(op.name())?;
        let storage = rhs
            .backend
            .binary_scalar(op, &rhs.storage, &rhs.layout, scalar, true)?;
        Ok(rhs.wrap(storage, rhs.shape().clone()))
    }

    pub fn maximum(&self, other: &Tensor<B>) -> Result<Self> {
        self.binary(BinaryOp::Max, other)
    }
    pub fn minimum(&self, other: &Tensor<B>) -> Result<Self> {
        self.binary(BinaryOp::Min, other)
    }
    pub fn pow(&self, other: &Tensor<B>) -> Result<Self> {
        self.binary(BinaryOp::Pow, other)
    }
    pub fn powf(&self, exponent: f64) -> Result<Self> {
        self.binary_scalar(BinaryOp::Pow, exponent)
    }
    pub fn eq(&self, other: &Tensor<B>) -> Result<Self> {
        self.binary(BinaryOp::Eq, other)
    }
    pub fn ne(&self, other: &Tensor<B>) -> Result<Self> {
        self.binary(BinaryOp::Ne, other)
    }
    pub fn lt(&self, other: &Tensor<B>) -> Result<Self> {
        self.binary(BinaryOp::Lt, other)
    }
    pub fn le(&self, other: &Tensor<B>) -> Result<Self> {
        self.binary(BinaryOp::Le, other)
    }
    pub fn gt(&self, other: &Tensor<B>) -> Result<Self> {
        self.binary(BinaryOp::Gt, other)
    }
    pub fn ge(&self, other: &Tensor<B>) -> Result<Self> {
        self.binary(BinaryOp::Ge, other)
    }

    /// `self != 0 ? on_true : on_false`, all three broadcast together.
    pub fn select(&self, on_true: &Tensor<B>, on_false: &Tensor<B>) -> Result<Self> {
        self.require_float("select")?;
        self.require_same_dtype(on_true, "select")?;
        on_true.require_same_dtype(on_false, "select")?;
        let shape = Shape::broadcast("select", self.shape(), on_true.shape())?;
        let shape = Shape::broadcast("select", &shape, on_false.shape())?;
        let cond = self.layout.broadcast_to(&shape)?;
        let t = on_true.layout.broadcast_to(&shape)?;
        let f = on_false.layout.broadcast_to(&shape)?;
        let storage = self.backend.select(
            (&self.storage, &cond),
            (&on_true.storage, &t),
            (&on_false.storage, &f),
        )?;
        Ok(self.wrap(storage, shape))
    }

    /// Sum over all elements, as a tensor of shape [].
    pub fn sum_all(&self) -> Result<Self> {
        self.require_float("sum_all")?;
        let x = self.contiguous()?;
        let storage = self.backend.sum_all(&x.storage)?;
        Ok(self.wrap(storage, ()))
    }

    /// Mean over all elements, as a tensor of shape [].
    pub fn mean_all(&self) -> Result<Self> {
        let n = self.numel().max(1) as f64;
        (self.sum_all()? / n as f32)?.reshape(())
    }

    pub(crate) fn reduce(&self, op: ReduceOp, axis: isize) -> Result<Self> {
        self.require_float(op.name())?;
        let axis = self.shape().axis(op.name(), axis)?;
        let dims = self.dims();
        let len = dims[axis];
        if len == 0 {
            return Err(KilnError::invalid(
                op.name(),
                format!("cannot reduce empty axis {axis} of shape {}", self.shape()),
            ));
        }
        let reduce_dims = crate::ReduceDims {
            outer: dims[..axis].iter().product(),
            len,
            inner: dims[axis + 1..].iter().product(),
        };
        let x = self.contiguous()?;
        let storage = self.backend.reduce(op, &x.storage, reduce_dims)?;
        let mut out = dims.to_vec();
        out.remove(axis);
        Ok(self.wrap(storage, out))
    }

    /// Sum along an axis (removed from the shape).
    pub fn sum(&self, axis: isize) -> Result<Self> {
        self.reduce(ReduceOp::Sum, axis)
    }
    pub fn mean(&self, axis: isize) -> Result<Self> {
        self.reduce(ReduceOp::Mean, axis)
    }
    pub fn max(&self, axis: isize) -> Result<Self> {
        self.reduce(ReduceOp::Max, axis)
    }
    pub fn min(&self, axis: isize) -> Result<Self> {
        self.reduce(ReduceOp::Min, axis)
    }
    /// Index of the first maximum along an axis, as u32.
    pub fn argmax(&self, axis: isize) -> Result<Self> {
        self.reduce(ReduceOp::ArgMax, axis)
    }
}

/// Operators on tensors and f32 scalars. They return `Result<Tensor>` because shapes may not
/// broadcast; the macro only writes out the owned/borrowed combinations.
macro_rules! binary_operator {
    ($trait:ident, $method:ident, $op:expr) => {
        impl<B: Backend> $trait<&Tensor<B>> for &Tensor<B> {
            type Output = Result<Tensor<B>>;
            fn $method(self, rhs: &Tensor<B>) -> Self::Output {
                self.binary($op, rhs)
            }
        }
        impl<B: Backend> $trait<Tensor<B>> for &Tensor<B> {
            type Output = Result<Tensor<B>>;
            fn $method(self, rhs: Tensor<B>) -> Self::Output {
                self.binary($op, &rhs)
            }
        }
        impl<B: Backend> $trait<&Tensor<B>> for Tensor<B> {
            type Output = Result<Tensor<B>>;
            fn $method(self, rhs: &Tensor<B>) -> Self::Output {
                self.binary($op, rhs)
            }
        }
        impl<B: Backend> $trait<Tensor<B>> for Tensor<B> {
            type Output = Result<Tensor<B>>;
            fn $method(self, rhs: Tensor<B>) -> Self::Output {
                self.binary($op, &rhs)
            }
        }
        impl<B: Backend> $trait<f32> for &Tensor<B> {
            type Output = Result<Tensor<B>>;
            fn $method(self, rhs: f32) -> Self::Output {
                self.binary_scalar($op, rhs as f64)
            }
        }
        impl<B: Backend> $trait<f32> for Tensor<B> {
            type Output = Result<Tensor<B>>;
            fn $method(self, rhs: f32) -> Self::Output {
                self.binary_scalar($op, rhs as f64)
            }
        }
        impl<B: Backend> $trait<&Tensor<B>> for f32 {
            type Output = Result<Tensor<B>>;
            fn $method(self, rhs: &Tensor<B>) -> Self::Output {
                Tensor::scalar_binary(self as f64, $op, rhs)
            }
        }
        impl<B: Backend> $trait<Tensor<B>> for f32 {
            type Output = Result<Tensor<B>>;
            fn $method(self, rhs: Tensor<B>) -> Self::Output {
                Tensor::scalar_binary(self as f64, $op, &rhs)
            }
        }
    };
}

binary_operator!(Add, add, BinaryOp::Add);
binary_operator!(Sub, sub, BinaryOp::Sub);
binary_operator!(Mul, mul, BinaryOp::Mul);
binary_operator!(Div, div, BinaryOp::Div);

impl<B: Backend> Neg for &Tensor<B> {
    type Output = Result<Tensor<B>>;
    fn neg(self) -> Self::Output {
        self.unary(UnaryOp::Neg)
    }
}

impl<B: Backend> Neg for Tensor<B> {
    type Output = Result<Tensor<B>>;
    fn neg(self) -> Self::Output {
        self.unary(UnaryOp::Neg)
    }
}
