//! The differentiable operations on [`Var`]: each computes its value with the tensor API and
//! records its op. Arithmetic operators are methods (`a.add(&b)?`) rather than `+`, because
//! recording can fail and the result names the op.

use crate::graph::Var;
use crate::ops::Op;
use kiln_tensor::{Backend, BinaryOp, Result, Shape, UnaryOp};

impl<B: Backend> Var<B> {
    pub fn unary(&self, op: UnaryOp) -> Result<Self> {
        Ok(Var::record(
            self.value().unary(op)?,
            Op::Unary(op),
            vec![self.clone()],
        ))
    }

    pub fn binary(&self, op: BinaryOp, other: &Var<B>) -> Result<Self> {
        Ok(Var::record(
            self.value().binary(op, other.value())?,
            Op::Binary(op),
            vec![self.clone(), other.clone()],
        ))
    }

    pub fn binary_scalar(&self, op: BinaryOp, scalar: f64) -> Result<Self> {
        let value = self.value().binary_scalar(op, scalar)?;
        Ok(Var::record(
            value,
            Op::BinaryScalar {
                op,
                scalar,
                scalar_on_left: false,
            },
            vec![self.clone()],
        ))
    }

    pub fn scalar_binary(scalar: f64, op: BinaryOp, rhs: &Var<B>) -> Result<Self> {
        let value = kiln_tensor::Tensor::scalar_binary(scalar, op, rhs.value())?;
        Ok(Var::record(
            value,
            Op::BinaryScalar {
                op,
                scalar,
                scalar_on_left: true,
            },
            vec![rhs.clone()],
        ))
    }

    pub fn add(&self, other: &Var<B>) -> Result<Self> {
        self.binary(BinaryOp::Add, other)
    }
    pub fn sub(&self, other: &Var<B>) -> Result<Self> {
        self.binary(BinaryOp::Sub, other)
    }
    pub fn mul(&self, other: &Var<B>) -> Result<Self> {
        self.binary(BinaryOp::Mul, other)
    }
    pub fn div(&self, other: &Var<B>) -> Result<Self> {
        self.binary(BinaryOp::Div, other)
    }
    pub fn relu(&self) -> Result<Self> {
        self.unary(UnaryOp::Relu)
    }
    pub fn tanh(&self) -> Result<Self> {
        self.unary(UnaryOp::Tanh)
    }
    pub fn sigmoid(&self) -> Result<Self> {
        self.unary(UnaryOp::Sigmoid)
    }

    /// 2-D matrix product.
    pub fn matmul(&self, other: &Var<B>) -> Result<Self> {
        Ok(Var::record(
            self.value().matmul(other.value())?,
            Op::Matmul,
            vec![self.clone(), other.clone()],
        ))
    }

    pub fn sum(&self, axis: isize) -> Result<Self> {
        let resolved = self.shape().axis("sum", axis)?;
        Ok(Var::record(
            self.value().sum(axis)?,
            Op::Sum { axis: resolved },
            vec![self.clone()],
        ))
    }

    pub fn mean(&self, axis: isize) -> Result<Self> {
        let resolved = self.shape().axis("mean", axis)?;
        Ok(Var::record(
            self.value().mean(axis)?,
            Op::Mean { axis: resolved },
            vec![self.clone()],
        ))
    }

    /// Sum of every element, shape [].
    pub fn sum_all(&self) -> Result<Self> {
        Ok(Var::record(
            self.value().sum_all()?,
            Op::SumAll,
            vec![self.clone()],
        ))
    }

    /// Mean of every element, shape [].
    pub fn mean_all(&self) -> Result<Self> {
        let n = self.value().numel().max(1) as f64;
        self.sum_all()?.binary_scalar(BinaryOp::Div, n)
    }

    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Self> {
        Ok(Var::record(
            self.value().reshape(shape)?,
            Op::Reshape,
            vec![self.clone()],
        ))
    }

    pub fn transpose(&self, a: isize, b: isize) -> Result<Self> {
        let (ra, rb) = (
            self.shape().axis("transpose", a)?,
            self.shape().axis("transpose", b)?,
        );
        Ok(Var::record(
            self.value().transpose(a, b)?,
            Op::Transpose { a: ra, b: rb },
            vec![self.clone()],
        ))
    }

    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Self> {
        Ok(Var::record(
            self.value().broadcast_to(shape)?,
            Op::BroadcastTo,
            vec![self.clone()],
        ))
    }

    /// Per-row softmax cross-entropy against labels (u32 [rows]) or probabilities; targets
    /// get no gradient.
    pub fn softmax_xent(&self, targets: &kiln_tensor::Tensor<B>) -> Result<Self> {
        let value = self.value().softmax_xent(targets)?;
        Ok(Var::record(
            value,
            Op::SoftmaxXent {
                targets: targets.clone(),
            },
            vec![self.clone()],
        ))
    }
}
