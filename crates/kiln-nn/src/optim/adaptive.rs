//! AdaGrad and RMSProp, following PyTorch's updates (ε added outside the square root), as one
//! fused `adaptive_step` kernel per parameter:
//!   AdaGrad:  G ← G + g²;           w ← w − lr · g / (√G + ε)
//!   RMSProp:  v ← α·v + (1 − α)·g²;  w ← w − lr · g / (√v + ε)
//! with g = ∇ + λ·w when an L2 weight decay λ is set.

use super::state::{OptimizerState, Slots};
use super::Optimizer;
use crate::error::check_range;
use crate::module::Parameter;
use kiln_tensor::{AdaptiveStep, Backend, Result, Tensor};

pub struct Adaptive<B: Backend> {
    kind: &'static str,
    lr: f32,
    eps: f32,
    weight_decay: f32,
    /// s ← decay·s + gain·g².
    decay: f32,
    gain: f32,
    steps: u64,
    accumulator: Slots<B>,
}

/// AdaGrad with ε = 1e-10 (PyTorch's default).
pub fn adagrad<B: Backend>(lr: f32) -> Result<Adaptive<B>> {
    check_range("adagrad", "learning rate", lr as f64, lr > 0.0, "(0, ∞)")?;
    Ok(Adaptive {
        kind: "adagrad",
        lr,
        eps: 1e-10,
        weight_decay: 0.0,
        decay: 1.0,
        gain: 1.0,
        steps: 0,
        accumulator: Slots::new(&["sum_sq"]),
    })
}

/// RMSProp with decay α (PyTorch's default 0.99) and ε = 1e-8.
pub fn rmsprop<B: Backend>(lr: f32, alpha: f32) -> Result<Adaptive<B>> {
    check_range("rmsprop", "learning rate", lr as f64, lr > 0.0, "(0, ∞)")?;
    check_range(
        "rmsprop",
        "alpha",
        alpha as f64,
        (0.0..1.0).contains(&alpha),
        "[0, 1)",
    )?;
    Ok(Adaptive {
        kind: "rmsprop",
        lr,
        eps: 1e-8,
        weight_decay: 0.0,
        decay: alpha,
        gain: 1.0 - alpha,
        steps: 0,
        accumulator: Slots::new(&["mean_sq"]),
    })
}

impl<B: Backend> Adaptive<B> {
    /// L2 weight decay added to the gradient.
    pub fn weight_decay(mut self, weight_decay: f32) -> Result<Self> {
        check_range(
            self.kind,
            "weight decay",
            weight_decay as f64,
            weight_decay >= 0.0,
            "[0, ∞)",
        )?;
        self.weight_decay = weight_decay;
        Ok(self)
    }

    pub fn eps(mut self, eps: f32) -> Result<Self> {
        check_range(self.kind, "eps", eps as f64, eps > 0.0, "(0, ∞)")?;
        self.eps = eps;
        Ok(self)
    }
}

impl<B: Backend> Optimizer<B> for Adaptive<B> {
    fn step_gated(
        &mut self,
        parameters: &[Parameter<B>],
        skip_if: Option<&Tensor<B>>,
    ) -> Result<()> {
        self.steps += 1;
        let step = AdaptiveStep {
            lr: self.lr,
            eps: self.eps,
            weight_decay: self.weight_decay,
            decay: self.decay,
            gain: self.gain,
        };
        for p in parameters {
            let Some(grad) = p.grad() else { continue };
            let w = p.value();
            let accumulator = &self.accumulator.get(p, &w)?[0];
            w.adaptive_step_gated(&grad, accumulator, &step, skip_if)?;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f32 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn steps_taken(&self) -> u64 {
        self.steps
    }

    fn state(&self) -> Result<OptimizerState<B>> {
        self.accumulator.to_state(self.kind, self.steps)
    }

    fn load_state(&mut self, state: &OptimizerState<B>, parameters: &[Parameter<B>]) -> Result<()> {
        self.steps = self.accumulator.load(self.kind, state, parameters)?;
        Ok(())
    }
}
