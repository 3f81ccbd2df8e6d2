//! A builder for multilayer perceptrons: widths, activation, initialiser, seed.

use crate::activation::Activation;
use crate::batch_norm::BatchNorm1d;
use crate::dropout::Dropout;
use crate::error::{check_range, invalid};
use crate::init::{Fan, Init};
use crate::linear::Linear;
use crate::sequential::Sequential;
use kiln_tensor::{Backend, Result, UnaryOp};

pub struct Mlp {
    widths: Vec<usize>,
    activation: UnaryOp,
    init: Init,
    seed: u64,
    batch_norm: bool,
    dropout: f32,
}

impl Mlp {
    /// Layer widths from the input to the output, e.g. `[784, 512, 512, 10]`. Defaults: ReLU
    /// between layers (none after the last), He-normal weights, seed 0, no batch norm, no dropout.
    pub fn new(widths: &[usize]) -> Self {
        Mlp {
            widths: widths.to_vec(),
            activation: UnaryOp::Relu,
            init: Init::HeNormal(Fan::In),
            seed: 0,
            batch_norm: false,
            dropout: 0.0,
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

    /// Batch norm after each hidden linear layer, before its activation.
    pub fn batch_norm(mut self, on: bool) -> Self {
        self.batch_norm = on;
        self
    }

    /// Dropout with probability `p` after each hidden activation (0 for none).
    pub fn dropout(mut self, p: f32) -> Self {
        self.dropout = p;
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
        check_range(
            "Mlp::build",
            "dropout probability",
            self.dropout as f64,
            (0.0..1.0).contains(&self.dropout),
            "[0, 1)",
        )?;
        let mut model = Sequential::new();
        let last = self.widths.len() - 2;
        for (i, pair) in self.widths.windows(2).enumerate() {
            // Layer seeds are spread apart so no two layers share a random stream.
            let seed = self.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            let hidden = i < last;
            // With batch norm the activation comes after it, so the linear layer has none.
            let fused = (hidden && !self.batch_norm).then_some(self.activation);
            model = model.push(Linear::new(
                format!("layer{i}"),
                pair[0],
                pair[1],
                // The output layer starts small (N(0, 0.01²)): near-equal initial logits
                // put the initial loss at ln(classes), the sanity check's expectation.
                if hidden {
                    self.init
                } else {
                    Init::Normal { std: 0.01 }
                },
                fused,
                seed,
                backend,
            )?);
            if hidden && self.batch_norm {
                model = model.push(BatchNorm1d::new(format!("layer{i}.bn"), pair[1], backend)?);
                model = model.push(Activation(self.activation));
            }
            if hidden && self.dropout > 0.0 {
                model = model.push(
                    Dropout::new(self.dropout, seed ^ 0xD0)?.named(format!("layer{i}.dropout")),
                );
            }
        }
        Ok(model)
    }
}
