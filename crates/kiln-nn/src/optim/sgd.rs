//! Stochastic gradient descent, with optional momentum (classic or Nesterov) and L2 weight
//! decay, following PyTorch's update (one fused `sgd_step` kernel per parameter):
//!   g ← ∇ + λ·w;  v ← μ·v + g;  w ← w − lr · (Nesterov ? g + μ·v : v)   (v = g without momentum)

use super::state::{OptimizerState, Slots};
use super::Optimizer;
use crate::error::check_range;
use crate::module::Parameter;
use kiln_tensor::{Backend, Result, SgdStep, Tensor};

pub struct Sgd<B: Backend> {
    lr: f32,
    momentum: f32,
    nesterov: bool,
    weight_decay: f32,
    steps: u64,
    velocity: Slots<B>,
}

impl<B: Backend> Sgd<B> {
    pub fn new(lr: f32) -> Result<Self> {
        check_range("Sgd::new", "learning rate", lr as f64, lr > 0.0, "(0, ∞)")?;
        Ok(Sgd {
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            steps: 0,
            velocity: Slots::new(&["velocity"]),
        })
    }

    pub fn momentum(mut self, momentum: f32) -> Result<Self> {
        check_range(
            "Sgd::momentum",
            "momentum",
            momentum as f64,
            (0.0..1.0).contains(&momentum),
            "[0, 1)",
        )?;
        self.momentum = momentum;
        Ok(self)
    }

    pub fn nesterov(mut self, momentum: f32) -> Result<Self> {
        self = self.momentum(momentum)?;
        self.nesterov = true;
        Ok(self)
    }

    pub fn weight_decay(mut self, weight_decay: f32) -> Result<Self> {
        check_range(
            "Sgd::weight_decay",
            "weight decay",
            weight_decay as f64,
            weight_decay >= 0.0,
            "[0, ∞)",
        )?;
        self.weight_decay = weight_decay;
        Ok(self)
    }
}

impl<B: Backend> Optimizer<B> for Sgd<B> {
    fn step_gated(
        &mut self,
        parameters: &[Parameter<B>],
        skip_if: Option<&Tensor<B>>,
    ) -> Result<()> {
        self.steps += 1;
        let step = SgdStep {
            lr: self.lr,
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
        };
        for p in parameters {
            let Some(grad) = p.grad() else { continue };
            let w = p.value();
            if self.momentum == 0.0 {
                w.sgd_step_gated(&grad, None, &step, skip_if)?;
            } else {
                let velocity = &self.velocity.get(p, &w)?[0];
                w.sgd_step_gated(&grad, Some(velocity), &step, skip_if)?;
            }
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
        self.velocity.to_state("sgd", self.steps)
    }

    fn load_state(&mut self, state: &OptimizerState<B>, parameters: &[Parameter<B>]) -> Result<()> {
        self.steps = self.velocity.load("sgd", state, parameters)?;
        Ok(())
    }
}
