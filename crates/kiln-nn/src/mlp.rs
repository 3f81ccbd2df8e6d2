//! A builder for multilayer perceptrons: widths, activation, initialiser, seed.

use crate::error::invalid;
use crate::init::{Fan, Init};
use crate::linear::Linear;
use crate::sequential::Sequential;
use kiln_tensor::{Backend, Result, UnaryOp};

pub struct Mlp {
    widths: Vec<usize>,
    activation: UnaryOp,
    init: Init,
    seed: u64,
}

impl Mlp {
    /// Layer widths from the input to the output, e.g. `[784, 512, 512, 10]`. Defaults: ReLU
    /// between layers (none after the last), He-normal weights, seed 0.
    pub fn new(widths: &[usize]) -> Self {
        Mlp {
            widths: widths.to_vec(),
            activation: UnaryOp::Relu,
            init: Init::HeNormal(Fan::In),
            seed: 0,
        }
    }

    pub fn activation(mut self, activation: UnaryOp) -> Self {
        self.activation = activation;
        self
    }

    pub fn init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn build<B: Backend>(&self, backend: &B) -> Result<Sequential<B>> {
        if self.widths.len() < 2 {
            return Err(invalid(
                "Mlp::build",
                "number of widths",
                self.widths.len(),
                "≥ 2 (input and output)",
            ));
        }
        let mut model = Sequential::new();
        let last = self.widths.len() - 2;
        for (i, pair) in self.widths.windows(2).enumerate() {
            let activation = (i < last).then_some(self.activation);
            // Layer seeds are spread apart so no two layers share a random stream.
            let seed = self.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            model = model.push(Linear::new(
                format!("layer{i}"),
                pair[0],
                pair[1],
                self.init,
                activation,
                seed,
                backend,
            )?);
        }
        Ok(model)
    }
}
