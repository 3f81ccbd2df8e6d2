//! A fully connected layer: act(x · W + b) as one fused kernel on the GPU.

use crate::error::invalid;
use crate::init::Init;
use crate::module::{Module, Parameter};
use crate::precision::Precision;
use kiln_autograd::Var;
use kiln_tensor::{Backend, DType, Result, Tensor, UnaryOp};

pub struct Linear<B: Backend> {
    name: String,
    weight: Parameter<B>,
    bias: Parameter<B>,
    activation: Option<UnaryOp>,
    precision: Precision,
}

impl<B: Backend> Linear<B> {
    /// A layer `name` from `inputs` to `outputs` units with weights from `init` (seeded), zero
    /// biases and an optional activation. An initialiser that draws equal weights is allowed
    /// but warned about on stderr: such a layer's units stay identical forever.
    pub fn new(
        name: impl Into<String>,
        inputs: usize,
        outputs: usize,
        init: Init,
        activation: Option<UnaryOp>,
        seed: u64,
        backend: &B,
    ) -> Result<Self> {
        let name = name.into();
        if inputs == 0 || outputs == 0 {
            return Err(invalid(
                "Linear::new",
                &format!("{name} width"),
                format!("{inputs}→{outputs}"),
                "≥ 1 unit on both sides",
            ));
        }
        if !init.breaks_symmetry() {
            eprintln!("warning: every weight of {name} starts equal ({init:?}): its units will never differ; use a random initialiser");
        }
        let weight = Parameter::new(
            format!("{name}.weight"),
            init.tensor([inputs, outputs], inputs, outputs, seed, backend)?,
        );
        let bias = Parameter::new(
            format!("{name}.bias"),
            Tensor::zeros([outputs], DType::F32, backend)?,
        );
        Ok(Linear {
            name,
            weight,
            bias,
            activation,
            precision: Precision::F32,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn weight(&self) -> &Parameter<B> {
        &self.weight
    }

    pub fn bias(&self) -> &Parameter<B> {
        &self.bias
    }
}

impl<B: Backend> Module<B> for Linear<B> {
    fn spec(&self) -> Option<crate::LayerSpec> {
        let dims = self.weight.value().dims().to_vec();
        Some(crate::LayerSpec::Linear {
            name: self.name.clone(),
            inputs: dims[0],
            outputs: dims[1],
            activation: match self.activation {
                Some(op) => Some(crate::ActivationKind::from_op(op)?),
                None => None,
            },
        })
    }

    fn forward(&self, x: &Var<B>) -> Result<Var<B>> {
        match self.precision {
            Precision::F32 => {
                x.matmul_bias_act(&self.weight.var(), &self.bias.var(), self.activation)
            }
            // f16 copies of the input and the f32 weight; the f32 bias makes the result f32.
            Precision::Mixed => x.cast(DType::F16)?.matmul_bias_act(
                &self.weight.var().cast(DType::F16)?,
                &self.bias.var(),
                self.activation,
            ),
        }
    }

    fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn output_activation(&self) -> Option<UnaryOp> {
        self.activation
    }

    fn parameters(&self) -> Vec<Parameter<B>> {
        vec![self.weight.clone(), self.bias.clone()]
    }
}
