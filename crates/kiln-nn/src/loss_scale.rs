//! Dynamic loss scaling for mixed-precision training, kept on the device.
//!
//! f16 gradients underflow below 2⁻²⁴; multiplying the loss by a large scale lifts them into
//! range, and dividing the f32 parameter gradients by it afterwards restores their size. If the
//! scale is too large a gradient overflows to inf: that step is skipped and the scale halved;
//! after `interval` clean steps it doubles. The scale and the flags live in device tensors and
//! the optimiser kernels read the flags, so a step needs no readback (PyTorch's GradScaler
//! with a fused optimiser does the same).
//!
//! ```text
//! let loss = scaler.scale_loss(&loss)?;  loss.backward()?;
//! scaler.unscale(&params)?;              // grads / scale, non-finite check
//! scaler.step(&mut optimizer, &params)?; // skipped on the device if flagged; scale updated
//! ```

use crate::module::Parameter;
use crate::optim::Optimizer;
use kiln_autograd::Var;
use kiln_tensor::{Backend, DType, HostData, KilnError, LossScaleRule, Result, Tensor};

pub struct LossScaler<B: Backend> {
    /// One f32: the factor the loss is multiplied by.
    scale: Tensor<B>,
    /// Three u32: [this step's gradients were not finite, steps skipped, clean steps in a row].
    flags: Tensor<B>,
    rule: LossScaleRule,
}

impl<B: Backend> LossScaler<B> {
    /// PyTorch's defaults: scale 2¹⁶, ×2 after 2000 clean steps, ×0.5 on overflow.
    pub fn new(backend: &B) -> Result<Self> {
        Self::with_rule(65536.0, LossScaleRule::default(), backend)
    }

    pub fn with_rule(initial_scale: f32, rule: LossScaleRule, backend: &B) -> Result<Self> {
        let valid = initial_scale.is_finite()
            && initial_scale > 0.0
            && rule.growth >= 1.0
            && rule.backoff > 0.0
            && rule.backoff < 1.0
            && rule.interval >= 1;
        if !valid {
            return Err(KilnError::invalid(
                "LossScaler",
                format!(
                    "scale {initial_scale}, growth {}, backoff {}, interval {}: the scale must be \
                     finite and > 0, growth ≥ 1, backoff in (0, 1), interval ≥ 1",
                    rule.growth, rule.backoff, rule.interval
                ),
            ));
        }
        Ok(LossScaler {
            scale: Tensor::from_vec(vec![initial_scale], [1], backend)?,
            flags: Tensor::from_vec(vec![0u32; 3], [3], backend)?,
            rule,
        })
    }

    /// loss × scale, to call `backward` on.
    pub fn scale_loss(&self, loss: &Var<B>) -> Result<Var<B>> {
        let scale = Var::constant(self.scale.reshape(loss.value().shape().clone())?);
        loss.mul(&scale)
    }

    /// Divides every parameter's gradient by the scale in place and flags the step when any
    /// element is inf or NaN. A gradient shared by several parameters is divided once; a view
    /// is first replaced by a copy of its own.
    pub fn unscale(&self, parameters: &[Parameter<B>]) -> Result<()> {
        let mut done: Vec<Tensor<B>> = Vec::new();
        for p in parameters {
            let Some(grad) = p.grad() else { continue };
            if done
                .iter()
                .any(|d| std::ptr::eq(d.storage(), grad.storage()))
            {
                continue;
            }
            let grad = if grad.is_whole() {
                grad
            } else {
                let copy = grad.contiguous()?;
                p.set_grad(copy.clone());
                copy
            };
            grad.unscale_gradient(&self.scale, &self.flags)?;
            done.push(grad);
        }
        Ok(())
    }

    /// The optimiser's step, skipped on the device if `unscale` flagged it, then the scale's
    /// update.
    pub fn step(
        &self,
        optimizer: &mut dyn Optimizer<B>,
        parameters: &[Parameter<B>],
    ) -> Result<()> {
        optimizer.step_gated(parameters, Some(&self.flags))?;
        Tensor::update_loss_scale(&self.scale, &self.flags, &self.rule)
    }

    /// The flags the gated optimiser steps read (three u32).
    pub fn flags(&self) -> &Tensor<B> {
        &self.flags
    }

    /// The scale (one f32) and the flags, to save in a checkpoint.
    pub fn state(&self) -> (&Tensor<B>, &Tensor<B>) {
        (&self.scale, &self.flags)
    }

    /// Continues from a saved `state()`: copies of `scale` (one f32) and `flags` (three u32).
    pub fn load_state(&mut self, scale: &Tensor<B>, flags: &Tensor<B>) -> Result<()> {
        let scale_ok = scale.dtype() == DType::F32 && scale.numel() == 1;
        let flags_ok = flags.dtype() == DType::U32 && flags.numel() == 3;
        if !scale_ok || !flags_ok {
            return Err(KilnError::invalid(
                "LossScaler::load_state",
                format!(
                    "expects one f32 scale and three u32 flags, got {} {} and {} {}",
                    scale.shape(),
                    scale.dtype(),
                    flags.shape(),
                    flags.dtype()
                ),
            ));
        }
        self.scale = scale.deep_copy()?.reshape([1])?;
        self.flags = flags.deep_copy()?.reshape([3])?;
        Ok(())
    }

    /// The current scale and the steps skipped so far (a readback: call at log intervals).
    pub fn read(&self) -> Result<(f32, u32)> {
        let host = Tensor::read_many(&[&self.scale, &self.flags])?;
        match (&host[0], &host[1]) {
            (HostData::F32(scale), HostData::U32(flags)) => Ok((scale[0], flags[1])),
            _ => Err(KilnError::invalid(
                "LossScaler::read",
                "the scale and flags came back in the wrong dtypes",
            )),
        }
    }
}
