//! Activations as layers: any UnaryOp, PReLU (learnable slope per unit) and Maxout.

use crate::error::invalid;
use crate::init::Init;
use crate::linear::Linear;
use crate::module::{Module, Parameter};
use kiln_autograd::Var;
use kiln_tensor::{Backend, DType, Result, Tensor, UnaryOp};

/// The activations a configuration names (`--activation`), each one [`UnaryOp`] with fixed
/// parameters: leaky ReLU's slope 0.01 and ELU's α = 1, PyTorch's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ActivationKind {
    #[default]
    Relu,
    LeakyRelu,
    Elu,
    Tanh,
    Sigmoid,
    Softplus,
    HardTanh,
    /// x · sigmoid(x) (swish).
    Silu,
}

impl ActivationKind {
    pub const ALL: [ActivationKind; 8] = [
        ActivationKind::Relu,
        ActivationKind::LeakyRelu,
        ActivationKind::Elu,
        ActivationKind::Tanh,
        ActivationKind::Sigmoid,
        ActivationKind::Softplus,
        ActivationKind::HardTanh,
        ActivationKind::Silu,
    ];

    pub fn op(self) -> UnaryOp {
        match self {
            ActivationKind::Relu => UnaryOp::Relu,
            ActivationKind::LeakyRelu => UnaryOp::LeakyRelu { alpha: 0.01 },
            ActivationKind::Elu => UnaryOp::Elu { alpha: 1.0 },
            ActivationKind::Tanh => UnaryOp::Tanh,
            ActivationKind::Sigmoid => UnaryOp::Sigmoid,
            ActivationKind::Softplus => UnaryOp::Softplus,
            ActivationKind::HardTanh => UnaryOp::HardTanh,
            ActivationKind::Silu => UnaryOp::Silu,
        }
    }

    /// The kind whose op is `op` exactly (parameters included), if any.
    pub fn from_op(op: UnaryOp) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.op() == op)
    }

    /// The name configurations and command lines use (`leaky-relu`).
    pub fn name(self) -> &'static str {
        match self {
            ActivationKind::Relu => "relu",
            ActivationKind::LeakyRelu => "leaky-relu",
            ActivationKind::Elu => "elu",
            ActivationKind::Tanh => "tanh",
            ActivationKind::Sigmoid => "sigmoid",
            ActivationKind::Softplus => "softplus",
            ActivationKind::HardTanh => "hard-tanh",
            ActivationKind::Silu => "silu",
        }
    }
}

impl std::str::FromStr for ActivationKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|k| k.name()).collect();
                format!("unknown activation `{s}`; allowed: {}", names.join(", "))
            })
    }
}

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

    fn spec(&self) -> Option<crate::LayerSpec> {
        Some(crate::LayerSpec::Activation {
            activation: ActivationKind::from_op(self.0)?,
        })
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

    fn spec(&self) -> Option<crate::LayerSpec> {
        let name = self.alpha.name().strip_suffix(".alpha")?.to_string();
        Some(crate::LayerSpec::Prelu {
            name,
            units: self.alpha.value().numel(),
        })
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

    fn spec(&self) -> Option<crate::LayerSpec> {
        Some(crate::LayerSpec::Maxout {
            name: self.linear.name().to_string(),
            inputs: self.linear.weight().value().dims()[0],
            outputs: self.outputs,
            pieces: self.pieces,
        })
    }
}
