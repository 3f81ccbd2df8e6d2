//! Inverted dropout: in training each unit is kept with probability 1 − p and scaled by
//! 1 / (1 − p); in evaluation it is the identity. Masks come from a counter-based stream that
//! advances with every call, so a run is reproducible from its seed on any backend.

use crate::error::check_range;
use crate::module::{Module, Parameter};
use kiln_autograd::Var;
use kiln_tensor::{Backend, Result, RngState};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Dropout {
    name: String,
    p: f32,
    seed: u64,
    offset: AtomicU64,
    training: bool,
}

impl Dropout {
    pub fn new(p: f32, seed: u64) -> Result<Self> {
        check_range(
            "Dropout::new",
            "p",
            p as f64,
            (0.0..1.0).contains(&p),
            "[0, 1)",
        )?;
        Ok(Dropout {
            name: "dropout".into(),
            p,
            seed,
            offset: AtomicU64::new(0),
            training: true,
        })
    }

    /// Names the layer (checkpoints save its stream position under this name).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Where the random stream stands (to save and restore a run).
    pub fn rng_state(&self) -> RngState {
        RngState {
            seed: self.seed,
            offset: self.offset.load(Ordering::Relaxed),
        }
    }
}

impl<B: Backend> Module<B> for Dropout {
    fn spec(&self) -> Option<crate::LayerSpec> {
        Some(crate::LayerSpec::Dropout {
            name: self.name.clone(),
            p: self.p,
            seed: self.seed,
        })
    }

    fn forward(&self, x: &Var<B>) -> Result<Var<B>> {
        if !self.training || self.p == 0.0 {
            return Ok(x.clone());
        }
        let n = x.value().numel() as u64;
        let offset = self
            .offset
            .fetch_add(n.next_multiple_of(4), Ordering::Relaxed);
        x.dropout(
            self.p,
            RngState {
                seed: self.seed,
                offset,
            },
        )
    }

    fn parameters(&self) -> Vec<Parameter<B>> {
        Vec::new()
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn rng_states(&self) -> Vec<(String, RngState)> {
        vec![(self.name.clone(), self.rng_state())]
    }

    fn set_rng_state(&mut self, name: &str, state: RngState) -> bool {
        if name != self.name || state.seed != self.seed {
            return false;
        }
        self.offset.store(state.offset, Ordering::Relaxed);
        true
    }
}
