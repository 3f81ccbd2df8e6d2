//! Adam and AdamW through the fused `adam_step` kernel: one pass per parameter tensor updates
//! the weights and both moments in place, with bias correction.

use super::state::{OptimizerState, Slots};
use super::Optimizer;
use crate::error::check_range;
use crate::module::Parameter;
use kiln_tensor::{AdamStep, Backend, KilnError, Result, Tensor};

pub struct Adam<B: Backend> {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    decoupled: bool,
    steps: u64,
    moments: Slots<B>,
}

impl<B: Backend> Adam<B> {
    /// Adam with PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8, no weight decay.
    pub fn new(lr: f32) -> Result<Self> {
        check_range("Adam::new", "learning rate", lr as f64, lr > 0.0, "(0, ∞)")?;
        Ok(Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            steps: 0,
            moments: Slots::new(&["m", "v"]),
        })
    }

    /// AdamW: weight decay applied to the weights, decoupled from the gradient.
    pub fn adamw(lr: f32, weight_decay: f32) -> Result<Self> {
        let mut adam = Self::new(lr)?.weight_decay(weight_decay)?;
        adam.decoupled = true;
        Ok(adam)
    }

    pub fn betas(mut self, beta1: f32, beta2: f32) -> Result<Self> {
        check_range(
            "Adam::betas",
            "beta1",
            beta1 as f64,
            (0.0..1.0).contains(&beta1),
            "[0, 1)",
        )?;
        check_range(
            "Adam::betas",
            "beta2",
            beta2 as f64,
            (0.0..1.0).contains(&beta2),
            "[0, 1)",
        )?;
        self.beta1 = beta1;
        self.beta2 = beta2;
        Ok(self)
    }

    pub fn eps(mut self, eps: f32) -> Result<Self> {
        check_range("Adam::eps", "eps", eps as f64, eps > 0.0, "(0, ∞)")?;
        self.eps = eps;
        Ok(self)
    }

    /// Classic L2 weight decay (added to the gradient) for Adam, decoupled for AdamW.
    pub fn weight_decay(mut self, weight_decay: f32) -> Result<Self> {
        check_range(
            "Adam::weight_decay",
            "weight decay",
            weight_decay as f64,
            weight_decay >= 0.0,
            "[0, ∞)",
        )?;
        self.weight_decay = weight_decay;
        Ok(self)
    }

    fn kind(&self) -> &'static str {
        if self.decoupled {
            "adamw"
        } else {
            "adam"
        }
    }
}

impl<B: Backend> Optimizer<B> for Adam<B> {
    fn step_gated(
        &mut self,
        parameters: &[Parameter<B>],
        skip_if: Option<&Tensor<B>>,
    ) -> Result<()> {
        self.steps += 1;
        let Ok(step_number) = u32::try_from(self.steps) else {
            return Err(KilnError::invalid("Adam::step", "more than 2³² − 1 steps"));
        };
        let step = AdamStep {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            decoupled: self.decoupled,
            step: step_number,
        };
        for p in parameters {
            let Some(grad) = p.grad() else { continue };
            let w = p.value();
            let moments = self.moments.get(p, &w)?;
            w.adam_step_gated(&grad, &moments[0], &moments[1], &step, skip_if)?;
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
        self.moments.to_state(self.kind(), self.steps)
    }

    fn load_state(&mut self, state: &OptimizerState<B>, parameters: &[Parameter<B>]) -> Result<()> {
        self.steps = self.moments.load(self.kind(), state, parameters)?;
        Ok(())
    }
}
