//! AdaGrad and RMSProp, following PyTorch's updates (ε added outside the square root):
//!   AdaGrad:  G ← G + g²;           w ← w − lr · g / (√G + ε)
//!   RMSProp:  v ← α·v + (1 − α)·g²;  w ← w − lr · g / (√v + ε)

use super::Optimizer;
use crate::error::check_range;
use crate::module::Parameter;
use kiln_tensor::{Backend, Result, Tensor};
use std::collections::HashMap;

/// Which running statistic of g² scales the step.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Accumulate {
    Sum,
    Average { alpha: f32 },
}

pub struct Adaptive<B: Backend> {
    lr: f32,
    eps: f32,
    accumulate: Accumulate,
    state: HashMap<String, Tensor<B>>,
}

/// AdaGrad with ε = 1e-10 (PyTorch's default).
pub fn adagrad<B: Backend>(lr: f32) -> Result<Adaptive<B>> {
    check_range("adagrad", "learning rate", lr as f64, lr > 0.0, "(0, ∞)")?;
    Ok(Adaptive {
        lr,
        eps: 1e-10,
        accumulate: Accumulate::Sum,
        state: HashMap::new(),
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
        lr,
        eps: 1e-8,
        accumulate: Accumulate::Average { alpha },
        state: HashMap::new(),
    })
}

impl<B: Backend> Optimizer<B> for Adaptive<B> {
    fn step(&mut self, parameters: &[Parameter<B>]) -> Result<()> {
        for p in parameters {
            let Some(g) = p.grad() else { continue };
            let g2 = g.square()?;
            let s = match (self.state.remove(p.name()), self.accumulate) {
                (None, Accumulate::Sum) => g2,
                (None, Accumulate::Average { alpha }) => (g2 * (1.0 - alpha))?,
                (Some(s), Accumulate::Sum) => (s + &g2)?,
                (Some(s), Accumulate::Average { alpha }) => {
                    ((s * alpha)? + &(g2 * (1.0 - alpha))?)?
                }
            };
            let step = ((g * self.lr)? / &(s.sqrt()? + self.eps)?)?;
            p.set((p.value() - &step)?);
            self.state.insert(p.name().to_string(), s);
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
