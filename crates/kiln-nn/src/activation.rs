//! Activations as layers: any UnaryOp, PReLU (learnable slope per unit) and Maxout.

use crate::error::invalid;
use crate::init::Init;
use crate::linear::Linear;
use crate::module::{Module, Parameter};
use kiln_autograd::Var;
use kiln_tensor::{Backend, DType, Result, Tensor, UnaryOp};

/// A parameter-free activation layer (sigmoid, tanh, ReLU, leaky ReLU, ELU, softplus, hard tanh…).
pub struct Activation(pub UnaryOp);

impl<B: Backend> Module<B> for Activation {
    fn forward(&self, x: &Var<B>) -> Result<Var<B>> {
        x.unary(self.0)
    }

    fn parameters(&self) -> Vec<Parameter<B>> {
        Vec::new()
    }

    fn name(&self) -> String {
        format!("{:?}", self.0).to_lowercase()
    }

    fn output_activation(&self) -> Option<UnaryOp> {
        Some(self.0)
    }
}

/// PReLU: x > 0 ? x : α·x with a learnable α per unit (dimension 1), initialised to `alpha`.
pub struct Prelu<B: Backend> {
    alpha: Parameter<B>,
}

impl<B: Backend> Prelu<B> {
    pub fn new(name: impl Into<String>, units: usize, alpha: f32, backend: &B) -> Result<Self> {
        let name = name.into();
        if units == 0 {
            return Err(invalid(
                "Prelu::new",
                &format!("{name} units"),
                units,
                "≥ 1",
            ));
        }
        Ok(Prelu {
            alpha: Parameter::new(
                format!("{name}.alpha"),
                Tensor::full([units], alpha as f64, DType::F32, backend)?,
            ),
        })
    }
}

impl<B: Backend> Module<B> for Prelu<B> {
    fn forward(&self, x: &Var<B>) -> Result<Var<B>> {
        x.prelu(&self.alpha.var())
    }

    fn parameters(&self) -> Vec<Parameter<B>> {
        vec![self.alpha.clone()]
    }
}

/// Maxout: a linear map to `outputs · pieces` units, then the max over each group of `pieces`.
pub struct Maxout<B: Backend> {
    linear: Linear<B>,
    outputs: usize,
    pieces: usize,
}

impl<B: Backend> Maxout<B> {
    pub fn new(
        name: impl Into<String>,
        inputs: usize,
        outputs: usize,
        pieces: usize,
        init: Init,
        seed: u64,
        backend: &B,
    ) -> Result<Self> {
        let name = name.into();
        if pieces == 0 {
            return Err(invalid(
                "Maxout::new",
                &format!("{name} pieces"),
                pieces,
                "≥ 1",
            ));
        }
        let linear = Linear::new(name, inputs, outputs * pieces, init, None, seed, backend)?;
        Ok(Maxout {
            linear,
            outputs,
            pieces,
        })
    }
}

impl<B: Backend> Module<B> for Maxout<B> {
    fn forward(&self, x: &Var<B>) -> Result<Var<B>> {
        let batch = x.shape().dims()[0];
        self.linear
            .forward(x)?
            .reshape([batch, self.outputs, self.pieces])?
            .max(2)
    }

    fn parameters(&self) -> Vec<Parameter<B>> {
        self.linear.parameters()
    }

    fn set_precision(&mut self, precision: crate::Precision) {
        self.linear.set_precision(precision);
    }
}
