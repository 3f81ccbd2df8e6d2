//! Polyak averaging: an exponential moving average of the parameters, kept beside them and
//! swapped in for evaluation.

use crate::error::check_range;
use crate::module::Parameter;
use kiln_tensor::{Backend, Result, Tensor};
use std::collections::HashMap;

pub struct Ema<B: Backend> {
    decay: f32,
    shadow: HashMap<String, Tensor<B>>,
}

impl<B: Backend> Ema<B> {
    pub fn new(decay: f32) -> Result<Self> {
        check_range(
            "Ema::new",
            "decay",
            decay as f64,
            (0.0..1.0).contains(&decay),
            "[0, 1)",
        )?;
        Ok(Ema {
            decay,
            shadow: HashMap::new(),
        })
    }

    /// shadow ← decay · shadow + (1 − decay) · w (the first call copies w: optimisers update
    /// parameters in place, so the shadow never shares their storage).
    pub fn update(&mut self, params: &[Parameter<B>]) -> Result<()> {
        for p in params {
            let w = p.value();
            let next = match self.shadow.remove(p.name()) {
                Some(s) => ((s * self.decay)? + &(w * (1.0 - self.decay))?)?,
                None => w.deep_copy()?,
            };
            self.shadow.insert(p.name().to_string(), next);
        }
        Ok(())
    }

    /// Exchanges the parameters' values with the averages (call again to swap back).
    pub fn swap(&mut self, params: &[Parameter<B>]) {
        for p in params {
            if let Some(avg) = self.shadow.remove(p.name()) {
                let current = p.value();
                p.set(avg);
                self.shadow.insert(p.name().to_string(), current);
            }
        }
    }

    /// The averages by parameter name (empty before the first update).
    pub fn averages(&self) -> Vec<(String, Tensor<B>)> {
        let mut v: Vec<_> = self
            .shadow
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Sets the average of parameter `name` (restoring a checkpoint).
    pub fn set_average(&mut self, name: &str, value: Tensor<B>) {
        self.shadow.insert(name.to_string(), value);
    }
}
