//! Batch normalisation's tensor ops: x is [N, C] or [N, C, ...] (PyTorch's BatchNorm1d and
//! BatchNorm2d layouts), statistics per channel C over every other axis; the per-channel
//! tensors (mean, var, γ, β and the backward sums) are [C].

use crate::backend::{Backend, BatchNormShape};
use crate::error::{KilnError, Result};
use crate::Tensor;

impl<B: Backend> Tensor<B> {
    /// The [outer, channels, inner] view of a [N, C, ...] tensor.
    fn batch_norm_shape(&self, op: &'static str) -> Result<BatchNormShape> {
        self.require_float(op)?;
        let d = self.dims();
        if d.len() < 2 {
            return Err(KilnError::invalid(
                op,
                format!(
                    "expects [N, C] features or [N, C, ...] images, got shape {}",
                    self.shape()
                ),
            ));
        }
        Ok(BatchNormShape {
            outer: d[0],
            channels: d[1],
            inner: d[2..].iter().product(),
        })
    }

    /// Checks that every per-channel tensor is [C] with x's dtype, and that dy matches x.
    fn check_channels(
        &self,
        op: &'static str,
        shape: BatchNormShape,
        dy: Option<&Tensor<B>>,
        per_channel: &[(&str, &Tensor<B>)],
    ) -> Result<()> {
        if let Some(dy) = dy {
            if dy.shape() != self.shape() || dy.dtype() != self.dtype() {
                return Err(KilnError::ShapeMismatch {
                    op,
                    lhs: self.shape().clone(),
                    rhs: dy.shape().clone(),
                    reason: "dy must match x's shape and dtype".into(),
                });
            }
        }
        for (name, t) in per_channel {
            if t.dims() != [shape.channels] || t.dtype() != self.dtype() {
                return Err(KilnError::ShapeMismatch {
                    op,
                    lhs: self.shape().clone(),
                    rhs: t.shape().clone(),
                    reason: format!(
                        "{name} must be [{}] (one entry per channel, axis 1 of x) of x's dtype",
                        shape.channels
                    ),
                });
            }
        }
        Ok(())
    }

    /// Per-channel mean and biased variance.
    pub fn batch_norm_stats(&self) -> Result<(Self, Self)> {
        let shape = self.batch_norm_shape("batch_norm_stats")?;
        let x = self.contiguous()?;
        let (mean, var) = self.backend.batch_norm_stats(&x.storage, shape)?;
        Ok((
            self.wrap(mean, [shape.channels]),
            self.wrap(var, [shape.channels]),
        ))
    }

    /// (x − mean) / sqrt(var + eps) · γ + β per channel, in one pass.
    pub fn batch_norm_forward(
        &self,
        (mean, var): (&Tensor<B>, &Tensor<B>),
        (gamma, beta): (&Tensor<B>, &Tensor<B>),
        eps: f32,
    ) -> Result<Self> {
        let op = "batch_norm_forward";
        let shape = self.batch_norm_shape(op)?;
        let named = [
            ("mean", mean),
            ("var", var),
            ("gamma", gamma),
            ("beta", beta),
        ];
        self.check_channels(op, shape, None, &named)?;
        let [x, m, v, g, b] = [self, mean, var, gamma, beta].map(|t| t.contiguous());
        let storage = self.backend.batch_norm_forward(
            &x?.storage,
            &m?.storage,
            &v?.storage,
            &g?.storage,
            &b?.storage,
            shape,
            eps,
        )?;
        Ok(self.wrap(storage, self.shape().clone()))
    }

    /// Per-channel Σ dy and Σ dy · x̂ for batch-norm's backward pass (β's and γ's gradients).
    pub fn batch_norm_backward_reduce(
        &self,
        dy: &Tensor<B>,
        (mean, var): (&Tensor<B>, &Tensor<B>),
        eps: f32,
    ) -> Result<(Self, Self)> {
        let op = "batch_norm_backward_reduce";
        let shape = self.batch_norm_shape(op)?;
        self.check_channels(op, shape, Some(dy), &[("mean", mean), ("var", var)])?;
        let [x, d, m, v] = [self, dy, mean, var].map(|t| t.contiguous());
        let (sum_dy, sum_dy_xhat) = self.backend.batch_norm_backward_reduce(
            &x?.storage,
            &d?.storage,
            &m?.storage,
            &v?.storage,
            shape,
            eps,
        )?;
        Ok((
            self.wrap(sum_dy, [shape.channels]),
            self.wrap(sum_dy_xhat, [shape.channels]),
        ))
    }

    /// dx of batch normalisation with the batch's statistics, from the two sums of
    /// `batch_norm_backward_reduce`: γ · inv_std · (dy − Σdy / n − x̂ · Σ(dy·x̂) / n).
    pub fn batch_norm_backward_input(
        &self,
        dy: &Tensor<B>,
        (mean, var, gamma): (&Tensor<B>, &Tensor<B>, &Tensor<B>),
        (sum_dy, sum_dy_xhat): (&Tensor<B>, &Tensor<B>),
        eps: f32,
    ) -> Result<Self> {
        let op = "batch_norm_backward_input";
        let shape = self.batch_norm_shape(op)?;
        let named = [
            ("mean", mean),
            ("var", var),
            ("gamma", gamma),
            ("sum_dy", sum_dy),
            ("sum_dy_xhat", sum_dy_xhat),
        ];
        self.check_channels(op, shape, Some(dy), &named)?;
        let [x, d, m, v, g, a, b] =
            [self, dy, mean, var, gamma, sum_dy, sum_dy_xhat].map(|t| t.contiguous());
        let storage = self.backend.batch_norm_backward_input(
            &x?.storage,
            &d?.storage,
            &m?.storage,
            &v?.storage,
            &g?.storage,
            (&a?.storage, &b?.storage),
            shape,
            eps,
        )?;
        Ok(self.wrap(storage, self.shape().clone()))
    }
}
