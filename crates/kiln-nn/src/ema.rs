//! Polyak averaging: an exponential moving average of the parameters, kept beside them and
//! swapped in for evaluation.

use crate::error::check_range;
use crate::module::Parameter;
use kiln_tensor::{Backend, Result, Tensor};
use std::collections::HashMap;

pub struct Ema<B: Backend> {
    decay: f32,
    shadow: HashMap<String, Tensor<B>>,
    /// With warm-up the decay of update t (from 0) is min(decay, (1 + t) / (10 + t)), so the
    /// average forgets the random initialisation within the first few hundred steps.
    warmup: bool,
    updates: u64,
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
            warmup: false,
            updates: 0,
        })
    }

    /// Turns on the decay warm-up (TensorFlow's `num_updates` rule).
    pub fn with_warmup(mut self) -> Self {
        self.warmup = true;
        self
    }

    /// Updates so far (saved with the averages to resume exactly).
    pub fn updates(&self) -> u64 {
        self.updates
    }

    pub fn set_updates(&mut self, updates: u64) {
        self.updates = updates;
    }

    /// shadow ← decay · shadow + (1 − decay) · w (the first call copies w: optimisers update
    /// parameters in place, so the shadow never shares their storage).
    pub fn update(&mut self, params: &[Parameter<B>]) -> Result<()> {
        let t = self.updates as f32;
        let decay = if self.warmup {
            self.decay.min((1.0 + t) / (10.0 + t))
        } else {
            self.decay
        };
        self.updates += 1;
        for p in params {
            let w = p.value();
            let next = match self.shadow.remove(p.name()) {
                Some(s) => ((s * decay)? + &(w * (1.0 - decay))?)?,
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
