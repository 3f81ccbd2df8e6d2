//! Tensor-level matmul, indexing, randomness and the fused training ops.

use crate::backend::{Backend, Epilogue, ReduceDims, Rows};
use crate::error::{KilnError, Result};
use crate::ops::{
    AdamStep, AdaptiveStep, LossScaleRule, MatmulShape, RngState, SgdStep, UnaryOp, XentTargets,
};
use crate::{DType, Shape, Tensor};

/// A contiguous-or-transposed matrix operand: the tensor to bind and whether it is read transposed.
fn matrix_operand<B: Backend>(t: &Tensor<B>) -> Result<(Tensor<B>, bool)> {
    if t.layout.offset() == 0 {
        if let Some((transposed, _)) = t.layout.as_matrix() {
            return Ok((t.clone(), transposed));
        }
    }
    Ok((t.contiguous()?, false))
}

impl<B: Backend> Tensor<B> {
    /// Matrix product. 2-D · 2-D, or batched 3-D · 3-D / 3-D · 2-D (the matrix broadcast over
    /// the batch). Transposed 2-D views are read through transpose flags, never copied.
    pub fn matmul(&self, rhs: &Tensor<B>) -> Result<Self> {
        self.matmul_bias_act(rhs, None, None)
    }

    /// act(self · rhs + bias) in one kernel; bias has shape [n].
    pub fn matmul_bias_act(
        &self,
        rhs: &Tensor<B>,
        bias: Option<&Tensor<B>>,
        activation: Option<UnaryOp>,
    ) -> Result<Self> {
        self.matmul_bias_act_to(rhs, bias, activation, self.dtype())
    }

    /// act(self · rhs + bias) with the result in dtype `output`: the operands' own dtype, or
    /// f32 for f16 operands (mixed precision: f16 storage, f32 accumulation, one rounding).
    /// The bias has the result's dtype.
    pub fn matmul_bias_act_to(
        &self,
        rhs: &Tensor<B>,
        bias: Option<&Tensor<B>>,
        activation: Option<UnaryOp>,
        output: DType,
    ) -> Result<Self> {
        if self.dtype() != rhs.dtype() {
            return Err(KilnError::DTypeMismatch {
                op: "matmul",
                lhs: self.dtype(),
                rhs: rhs.dtype(),
            });
        }
        if output != self.dtype() && (self.dtype(), output) != (DType::F16, DType::F32) {
            return Err(KilnError::invalid(
                "matmul",
                format!(
                    "{} operands give a {} result, not {output} (only f16 operands may give f32)",
                    self.dtype(),
                    self.dtype()
                ),
            ));
        }
        if let Some(bias) = bias {
            if bias.dtype() != output {
                return Err(KilnError::DTypeMismatch {
                    op: "matmul bias",
                    lhs: bias.dtype(),
                    rhs: output,
                });
            }
        }
        if self.dtype() != DType::F16 {
            self.require_float("matmul")?;
        }
        let mismatch = |reason: &str| KilnError::ShapeMismatch {
            op: "matmul",
            lhs: self.shape().clone(),
            rhs: rhs.shape().clone(),
            reason: reason.into(),
        };
        let (a, b, shape, out_shape) = match (self.rank(), rhs.rank()) {
            (2, 2) => {
                let (m, k) = (self.dims()[0], self.dims()[1]);
                let (k2, n) = (rhs.dims()[0], rhs.dims()[1]);
                if k != k2 {
                    return Err(mismatch(&format!("inner dimensions {k} and {k2} differ")));
                }
                let (a, trans_a) = matrix_operand(self)?;
                let (b, trans_b) = matrix_operand(rhs)?;
                let shape = MatmulShape {
                    batch: 1,
                    m,
                    n,
                    k,
                    trans_a,
                    trans_b,
                    batch_stride_a: 0,
                    batch_stride_b: 0,
                };
                (a, b, shape, Shape::new([m, n]))
            }
            (3, 2) | (3, 3) => {
                let (batch, m, k) = (self.dims()[0], self.dims()[1], self.dims()[2]);
                let (bb, k2, n) = if rhs.rank() == 3 {
                    (rhs.dims()[0], rhs.dims()[1], rhs.dims()[2])
                } else {
                    (batch, rhs.dims()[0], rhs.dims()[1])
                };
                if k != k2 {
                    return Err(mismatch(&format!("inner dimensions {k} and {k2} differ")));
                }
                if bb != batch {
                    return Err(mismatch(&format!("batch sizes {batch} and {bb} differ")));
                }
                let a = self.contiguous()?;
                let b = rhs.contiguous()?;
                let stride_b = if rhs.rank() == 3 { k * n } else { 0 };
                let shape = MatmulShape {
                    batch,
                    m,
                    n,
                    k,
                    trans_a: false,
                    trans_b: false,
                    batch_stride_a: m * k,
                    batch_stride_b: stride_b,
                };
                (a, b, shape, Shape::new([batch, m, n]))
            }
            _ => return Err(mismatch("matmul takes 2-D · 2-D, 3-D · 2-D or 3-D · 3-D")),
        };
        let bias = match bias {
            Some(bias) => {
                if bias.dims() != [shape.n] {
                    return Err(KilnError::ShapeMismatch {
                        op: "matmul_bias_act",
                        lhs: bias.shape().clone(),
                        rhs: Shape::new([shape.n]),
                        reason: "bias must have one entry per output column".into(),
                    });
                }
                Some(bias.contiguous()?)
            }
            None => None,
        };
        let epilogue = Epilogue {
            bias: bias.as_ref().map(|t| &*t.storage),
            activation,
            output: (output != self.dtype()).then_some(output),
        };
        let storage = self
            .backend
            .matmul(&a.storage, &b.storage, &shape, epilogue)?;
        Ok(self.wrap(storage, out_shape))
    }

    fn as_rows(&self, op: &'static str) -> Result<Rows> {
        if self.rank() != 2 {
            return Err(KilnError::invalid(
                op,
                format!("expects a [rows, cols] tensor, got shape {}", self.shape()),
            ));
        }
        Ok(Rows {
            rows: self.dims()[0],
            cols: self.dims()[1],
        })
    }

    /// Rows of a [rows, cols] tensor picked by a u32 index tensor of shape [n]: gives [n, cols].
    pub fn gather_rows(&self, indices: &Tensor<B>) -> Result<Self> {
        let shape = self.as_rows("gather_rows")?;
        if indices.dtype() != DType::U32 || indices.rank() != 1 {
            return Err(KilnError::invalid(
                "gather_rows",
                format!(
                    "indices must be a 1-D u32 tensor, got {} of shape {}",
                    indices.dtype(),
                    indices.shape()
                ),
            ));
        }
        let src = self.contiguous()?;
        let idx = indices.contiguous()?;
        let storage = self
            .backend
            .gather_rows(&src.storage, shape, &idx.storage)?;
        Ok(self.wrap(storage, [indices.numel(), shape.cols]))
    }

    /// A minibatch from a u8 dataset stored as `chunks` of whole rows (`(chunk [rows,
    /// features], index of its first row)`): out[i, c] = data[indices[i], c] · scale[c] +
    /// shift[c], f32 [indices.len, features].
    pub fn gather_u8_affine(
        chunks: &[(&Tensor<B>, usize)],
        indices: &Tensor<B>,
        scale: &Tensor<B>,
        shift: &Tensor<B>,
    ) -> Result<Self> {
        let op = "gather_u8_affine";
        let Some((first, _)) = chunks.first() else {
            return Err(KilnError::invalid(op, "no dataset chunks"));
        };
        let features = first.dims().get(1).copied().unwrap_or(0);
        let mut contiguous = Vec::with_capacity(chunks.len());
        for (chunk, first_row) in chunks {
            if chunk.dtype() != DType::U8 || chunk.rank() != 2 || chunk.dims()[1] != features {
                return Err(KilnError::invalid(
                    op,
                    format!(
                        "chunks must be u8 [rows, {features}], got {} of shape {}",
                        chunk.dtype(),
                        chunk.shape()
                    ),
                ));
            }
            contiguous.push((chunk.contiguous()?, *first_row));
        }
        if indices.dtype() != DType::U32 || indices.rank() != 1 {
            return Err(KilnError::invalid(
                op,
                format!(
                    "indices must be a 1-D u32 tensor, got {} of shape {}",
                    indices.dtype(),
                    indices.shape()
                ),
            ));
        }
        for (name, t) in [("scale", scale), ("shift", shift)] {
            if t.dtype() != DType::F32 || t.dims() != [features] {
                return Err(KilnError::invalid(
                    op,
                    format!(
                        "{name} must be f32 [{features}], got {} of shape {}",
                        t.dtype(),
                        t.shape()
                    ),
                ));
            }
        }
        let (idx, scale, shift) = (
            indices.contiguous()?,
            scale.contiguous()?,
            shift.contiguous()?,
        );
        let storages: Vec<(&B::Storage, usize)> =
            contiguous.iter().map(|(t, f)| (&*t.storage, *f)).collect();
        let storage = first.backend.gather_u8_affine(
            &storages,
            features,
            &idx.storage,
            &scale.storage,
            &shift.storage,
        )?;
        Ok(first.wrap(storage, [indices.numel(), features]))
    }

    fn channel_dims(&self, alpha: &Tensor<B>) -> Result<ReduceDims> {
        let channels = if self.rank() >= 2 { self.dims()[1] } else { 1 };
        if alpha.dims() != [channels] {
            return Err(KilnError::ShapeMismatch {
                op: "prelu",
                lhs: self.shape().clone(),
                rhs: alpha.shape().clone(),
                reason: format!(
                    "alpha needs one slope per channel (dimension 1), i.e. shape [{channels}]"
                ),
            });
        }
        Ok(ReduceDims {
            outer: self.dims().first().copied().unwrap_or(1),
            len: channels,
            inner: self.dims().iter().skip(2).product(),
        })
    }

    /// PReLU with one learnable slope per channel (dimension 1).
    pub fn prelu(&self, alpha: &Tensor<B>) -> Result<Self> {
        self.require_float("prelu")?;
        let dims = self.channel_dims(alpha)?;
        let (x, a) = (self.contiguous()?, alpha.contiguous()?);
        let storage = self.backend.prelu(&x.storage, &a.storage, dims)?;
        Ok(self.wrap(storage, self.shape().clone()))
    }

    /// PReLU's gradients with respect to the input and to alpha.
    pub fn prelu_backward(&self, alpha: &Tensor<B>, grad: &Tensor<B>) -> Result<(Self, Self)> {
        let dims = self.channel_dims(alpha)?;
        if grad.shape() != self.shape() {
            return Err(KilnError::ShapeMismatch {
                op: "prelu_backward",
                lhs: self.shape().clone(),
                rhs: grad.shape().clone(),
                reason: "the gradient must have the input's shape".into(),
            });
        }
        let (x, a, g) = (self.contiguous()?, alpha.contiguous()?, grad.contiguous()?);
        let (dx, dalpha) = self
            .backend
            .prelu_backward(&x.storage, &a.storage, &g.storage, dims)?;
        Ok((
            self.wrap(dx, self.shape().clone()),
            self.wrap(dalpha, alpha.shape().clone()),
        ))
    }

    /// Inverted dropout with keep probability 1 − p: (output, scaled mask).
    pub fn dropout(&self, p: f32, rng: RngState) -> Result<(Self, Self)> {
        self.require_float("dropout")?;
        if !(0.0..1.0).contains(&p) {
            return Err(KilnError::invalid(
                "dropout",
                format!("p = {p} is outside the allowed range [0, 1)"),
            ));
        }
        let x = self.contiguous()?;
        let (y, mask) = self.backend.dropout(&x.storage, p, rng)?;
        Ok((
            self.wrap(y, self.shape().clone()),
            self.wrap(mask, self.shape().clone()),
        ))
    }

    /// Softmax over the last dimension of a [rows, cols] tensor.
    pub fn softmax(&self) -> Result<Self> {
        self.softmax_impl(false)
    }

    /// Log-softmax over the last dimension of a [rows, cols] tensor.
    pub fn log_softmax(&self) -> Result<Self> {
        self.softmax_impl(true)
    }

    fn softmax_impl(&self, log: bool) -> Result<Self> {
        self.require_float("softmax")?;
        let shape = self.as_rows("softmax")?;
        let x = self.contiguous()?;
        let storage = self.backend.softmax(&x.storage, shape, log)?;
        Ok(self.wrap(storage, self.shape().clone()))
    }

    fn xent_targets<'a>(
        &self,
        targets: &'a Tensor<B>,
        shape: Rows,
    ) -> Result<XentTargets<'a, B::Storage>> {
        if targets.dtype() == DType::U32 && targets.dims() == [shape.rows] {
            Ok(XentTargets::Labels(&targets.storage))
        } else if targets.dtype() == self.dtype() && targets.shape() == self.shape() {
            Ok(XentTargets::Soft(&targets.storage))
        } else {
            Err(KilnError::ShapeMismatch {
                op: "softmax_xent",
                lhs: self.shape().clone(),
                rhs: targets.shape().clone(),
                reason: format!("targets must be u32 labels of shape [{}] or probabilities of the logits' shape and dtype (got {})", shape.rows, targets.dtype()),
            })
        }
    }

    /// Per-row cross-entropy of softmax(self) against labels (u32 [rows]) or soft targets
    /// (probabilities, the logits' shape). Out-of-range labels give NaN on the GPU and an error
    /// on the CPU.
    pub fn softmax_xent(&self, targets: &Tensor<B>) -> Result<Self> {
        self.require_float("softmax_xent")?;
        let shape = self.as_rows("softmax_xent")?;
        let x = self.contiguous()?;
        let t = targets.contiguous()?;
        let targets = x.xent_targets(&t, shape)?;
        let storage = self.backend.softmax_xent(&x.storage, shape, targets)?;
        Ok(self.wrap(storage, [shape.rows]))
    }

    /// Gradient of the per-row cross-entropy with respect to the logits, each row scaled by
    /// `grad_rows` ([rows]; 1/rows for a mean loss).
    pub fn softmax_xent_backward(
        &self,
        targets: &Tensor<B>,
        grad_rows: &Tensor<B>,
    ) -> Result<Self> {
        let shape = self.as_rows("softmax_xent_backward")?;
        if grad_rows.dims() != [shape.rows] {
            return Err(KilnError::ShapeMismatch {
                op: "softmax_xent_backward",
                lhs: self.shape().clone(),
                rhs: grad_rows.shape().clone(),
                reason: "needs one upstream gradient per row".into(),
            });
        }
        let (x, t, g) = (
            self.contiguous()?,
            targets.contiguous()?,
            grad_rows.contiguous()?,
        );
        let targets = x.xent_targets(&t, shape)?;
        let storage = self
            .backend
            .softmax_xent_backward(&x.storage, shape, targets, &g.storage)?;
        Ok(self.wrap(storage, self.shape().clone()))
    }

    /// Checks the tensors of an in-place optimiser step: every state tensor and the gradient
    /// match the parameter's shape and dtype, and the parameter and its state are whole
    /// contiguous tensors (they are updated in place).
    fn check_optimizer_step(
        &self,
        op: &'static str,
        grad: &Tensor<B>,
        state: &[(&str, &Tensor<B>)],
    ) -> Result<Tensor<B>> {
        self.require_float(op)?;
        for (name, t) in state.iter().copied().chain([("grad", grad)]) {
            if t.shape() != self.shape() || t.dtype() != self.dtype() {
                return Err(KilnError::ShapeMismatch {
                    op,
                    lhs: self.shape().clone(),
                    rhs: t.shape().clone(),
                    reason: format!("{name} must match the parameter's shape and dtype"),
                });
            }
        }
        for (name, t) in [("param", self)].into_iter().chain(state.iter().copied()) {
            if !t.is_whole() {
                return Err(KilnError::invalid(
                    op,
                    format!("{name} must be a whole contiguous tensor: it is updated in place"),
                ));
            }
        }
        grad.contiguous()
    }

    /// One fused Adam/AdamW step; `self` (the parameter), `m` and `v` are updated in place.
    /// All four tensors must be of one shape; the parameter and moments contiguous.
    pub fn adam_step(
        &self,
        grad: &Tensor<B>,
        m: &Tensor<B>,
        v: &Tensor<B>,
        step: &AdamStep,
    ) -> Result<()> {
        self.adam_step_gated(grad, m, v, step, None)
    }

    /// `adam_step`, skipped on the device when a loss scaler's `flags` (see
    /// [`Tensor::unscale_gradient`]) say this step's gradients were not finite; the bias
    /// corrections then count only the steps taken.
    pub fn adam_step_gated(
        &self,
        grad: &Tensor<B>,
        m: &Tensor<B>,
        v: &Tensor<B>,
        step: &AdamStep,
        skip_if: Option<&Tensor<B>>,
    ) -> Result<()> {
        let g = self.check_optimizer_step("adam_step", grad, &[("m", m), ("v", v)])?;
        if step.step == 0 {
            return Err(KilnError::invalid("adam_step", "step counts from 1"));
        }
        let skip_if = flags_storage("adam_step", skip_if)?;
        self.backend.adam_step(
            &self.storage,
            &g.storage,
            &m.storage,
            &v.storage,
            step,
            skip_if,
        )
    }

    /// One fused SGD step; `self` and the velocity (required exactly when the step has
    /// momentum) are updated in place.
    pub fn sgd_step(
        &self,
        grad: &Tensor<B>,
        velocity: Option<&Tensor<B>>,
        step: &SgdStep,
    ) -> Result<()> {
        self.sgd_step_gated(grad, velocity, step, None)
    }

    /// `sgd_step`, skipped on the device when a loss scaler's `flags` say so.
    pub fn sgd_step_gated(
        &self,
        grad: &Tensor<B>,
        velocity: Option<&Tensor<B>>,
        step: &SgdStep,
        skip_if: Option<&Tensor<B>>,
    ) -> Result<()> {
        if velocity.is_some() != (step.momentum != 0.0) {
            return Err(KilnError::invalid(
                "sgd_step",
                "a velocity tensor is needed exactly when momentum is non-zero",
            ));
        }
        let state: Vec<(&str, &Tensor<B>)> =
            velocity.map(|v| ("velocity", v)).into_iter().collect();
        let g = self.check_optimizer_step("sgd_step", grad, &state)?;
        let skip_if = flags_storage("sgd_step", skip_if)?;
        self.backend.sgd_step(
            &self.storage,
            &g.storage,
            velocity.map(|v| &*v.storage),
            step,
            skip_if,
        )
    }

    /// One fused AdaGrad/RMSProp step; `self` and the accumulator are updated in place.
    pub fn adaptive_step(
        &self,
        grad: &Tensor<B>,
        accumulator: &Tensor<B>,
        step: &AdaptiveStep,
    ) -> Result<()> {
        self.adaptive_step_gated(grad, accumulator, step, None)
    }

    /// `adaptive_step`, skipped on the device when a loss scaler's `flags` say so.
    pub fn adaptive_step_gated(
        &self,
        grad: &Tensor<B>,
        accumulator: &Tensor<B>,
        step: &AdaptiveStep,
        skip_if: Option<&Tensor<B>>,
    ) -> Result<()> {
        let g =
            self.check_optimizer_step("adaptive_step", grad, &[("accumulator", accumulator)])?;
        let skip_if = flags_storage("adaptive_step", skip_if)?;
        self.backend.adaptive_step(
            &self.storage,
            &g.storage,
            &accumulator.storage,
            step,
            skip_if,
        )
    }

    /// Dynamic loss scaling, first half: `self` (an f32 gradient of a loss multiplied by
    /// `scale`, one f32) is divided by the scale in place, and `flags[0]` (three u32: found
    /// non-finite, steps skipped, finite steps since the scale changed) is set when any element
    /// was inf or NaN. Nothing is read back: the gated optimiser steps read the flags.
    pub fn unscale_gradient(&self, scale: &Tensor<B>, flags: &Tensor<B>) -> Result<()> {
        let op = "unscale_gradient";
        if self.dtype() != DType::F32 {
            return Err(KilnError::invalid(
                op,
                format!("gradients are f32, got {}", self.dtype()),
            ));
        }
        if !self.is_whole() {
            return Err(KilnError::invalid(
                op,
                "the gradient must be a whole contiguous tensor: it is updated in place",
            ));
        }
        check_scale(op, scale)?;
        let flags = flags_storage(op, Some(flags))?.expect("given");
        self.backend
            .unscale_gradient(&self.storage, &scale.storage, flags)
    }

    /// Dynamic loss scaling, second half (after the gated optimiser steps): moves `scale` by
    /// `rule` as the flags say and clears the non-finite flag for the next step.
    pub fn update_loss_scale(
        scale: &Tensor<B>,
        flags: &Tensor<B>,
        rule: &LossScaleRule,
    ) -> Result<()> {
        let op = "update_loss_scale";
        check_scale(op, scale)?;
        let flags = flags_storage(op, Some(flags))?.expect("given");
        scale.backend.update_loss_scale(&scale.storage, flags, rule)
    }
}

/// A loss scale: one f32 in a storage of its own.
fn check_scale<B: Backend>(op: &'static str, scale: &Tensor<B>) -> Result<()> {
    if scale.dtype() != DType::F32 || scale.numel() != 1 || scale.storage.len() != 1 {
        return Err(KilnError::invalid(
            op,
            format!(
                "the loss scale is one f32 in a storage of its own, got {} {}",
                scale.shape(),
                scale.dtype()
            ),
        ));
    }
    Ok(())
}

/// A loss scaler's flags: three u32 in a storage of their own.
fn flags_storage<'a, B: Backend>(
    op: &'static str,
    flags: Option<&'a Tensor<B>>,
) -> Result<Option<&'a B::Storage>> {
    match flags {
        None => Ok(None),
        Some(f) if f.dtype() == DType::U32 && f.numel() == 3 && f.storage.len() == 3 => {
            Ok(Some(&*f.storage))
        }
        Some(f) => Err(KilnError::invalid(
            op,
            format!(
                "a loss scaler's flags are three u32 in a storage of their own, got {} {}",
                f.shape(),
                f.dtype()
            ),
        )),
    }
}

use crate::backend::BackendStorage as _;
