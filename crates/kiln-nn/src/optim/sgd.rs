//! Stochastic gradient descent, with optional momentum (classic or Nesterov) and L2 weight
//! decay, following PyTorch's update:
//!   g ← ∇ + λ·w;  v ← μ·v + g;  w ← w − lr · (Nesterov ? g + μ·v : v)   (v = g without momentum)

use super::Optimizer;
use crate::error::check_range;
use crate::module::Parameter;
use kiln_tensor::{Backend, Result, Tensor};
use std::collections::HashMap;

pub struct Sgd<B: Backend> {
    lr: f32,
    momentum: f32,
    nesterov: bool,
    weight_decay: f32,
    velocity: HashMap<String, Tensor<B>>,
}

impl<B: Backend> Sgd<B> {
    pub fn new(lr: f32) -> Result<Self> {
        check_range("Sgd::new", "learning rate", lr as f64, lr > 0.0, "(0, ∞)")?;
        Ok(Sgd {
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            velocity: HashMap::new(),
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
    fn step(&mut self, parameters: &[Parameter<B>]) -> Result<()> {
        for p in parameters {
            let Some(grad) = p.grad() else { continue };
            let w = p.value();
            let mut g = grad;
            if self.weight_decay != 0.0 {
                g = (g + &(&w * self.weight_decay)?)?;
            }
            let update = if self.momentum != 0.0 {
                let v = match self.velocity.remove(p.name()) {
                    Some(v) => ((v * self.momentum)? + &g)?,
                    None => g.clone(),
                };
                let update = if self.nesterov {
                    (&g + &(&v * self.momentum)?)?
                } else {
                    v.clone()
                };
                self.velocity.insert(p.name().to_string(), v);
                update
            } else {
                g
            };
            p.set((w - &(update * self.lr)?)?);
        }
        Ok(())
    }

    fn learning_rate(&self) -> f32 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.lr = lr;
    }
}
