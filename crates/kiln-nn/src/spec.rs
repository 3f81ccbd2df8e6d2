//! A serialisable description of a stack of Kiln's layers: what a checkpoint stores so the
//! model can be rebuilt without the code that built it (the weights then load by name).
//! Every built-in layer describes itself through [`Module::spec`]; a module of the caller's
//! own has no description (`None`) and is rebuilt by its own code.

use crate::activation::{Activation, ActivationKind, Maxout, Prelu};
use crate::batch_norm::{BatchNorm1d, BatchNorm2d};
use crate::conv::{Conv2d, Conv2dConfig};
use crate::dropout::Dropout;
use crate::init::{Fan, Init};
use crate::linear::Linear;
use crate::module::Module;
use crate::pool::{Flatten, GlobalAvgPool, Pool2d, PoolKind};
use crate::sequential::Sequential;
use kiln_tensor::{Backend, Result};
use serde::{Deserialize, Serialize};

/// One layer, or a sequence of them. Only what the weights do not say is kept: names, sizes,
/// the activation, the dropout probability and seed, batch norm's momentum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "layer", rename_all = "kebab-case")]
pub enum LayerSpec {
    Linear {
        name: String,
        inputs: usize,
        outputs: usize,
        /// The activation fused into the layer's kernel, if any.
        activation: Option<ActivationKind>,
    },
    Activation {
        activation: ActivationKind,
    },
    Prelu {
        name: String,
        units: usize,
    },
    Maxout {
        name: String,
        inputs: usize,
        outputs: usize,
        pieces: usize,
    },
    BatchNorm1d {
        name: String,
        features: usize,
        momentum: f32,
    },
    Dropout {
        name: String,
        p: f32,
        seed: u64,
    },
    Sequential {
        layers: Vec<LayerSpec>,
    },
    Conv2d {
        name: String,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
        /// Channel groups (1 in checkpoints written before groups existed).
        #[serde(default = "one_group")]
        groups: usize,
        bias: bool,
        activation: Option<ActivationKind>,
    },
    Pool2d {
        kind: PoolKind,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    GlobalAvgPool,
    BatchNorm2d {
        name: String,
        channels: usize,
        momentum: f32,
    },
    Flatten,
}

fn one_group() -> usize {
    1
}

/// A boxed layer, as `Sequential` holds them.
pub type BoxedModule<B> = Box<dyn Module<B> + Send + Sync>;

impl LayerSpec {
    /// The layer (or stack) this describes, with fresh weights (He normal, seed 0; the
    /// caller loads the trained ones by name) and the described dropout streams.
    pub fn build<B: Backend>(&self, backend: &B) -> Result<BoxedModule<B>> {
        let init = Init::HeNormal(Fan::In);
        Ok(match self {
            LayerSpec::Linear {
                name,
                inputs,
                outputs,
                activation,
            } => Box::new(Linear::new(
                name.as_str(),
                *inputs,
                *outputs,
                init,
                activation.map(ActivationKind::op),
                0,
                backend,
            )?),
            LayerSpec::Activation { activation } => Box::new(Activation(activation.op())),
            LayerSpec::Prelu { name, units } => {
                Box::new(Prelu::new(name.as_str(), *units, 0.25, backend)?)
            }
            LayerSpec::Maxout {
                name,
                inputs,
                outputs,
                pieces,
            } => Box::new(Maxout::new(
                name.as_str(),
                *inputs,
                *outputs,
                *pieces,
                init,
                0,
                backend,
            )?),
            LayerSpec::BatchNorm1d {
                name,
                features,
                momentum,
            } => {
                Box::new(BatchNorm1d::new(name.as_str(), *features, backend)?.momentum(*momentum)?)
            }
            LayerSpec::Dropout { name, p, seed } => {
                Box::new(Dropout::new(*p, *seed)?.named(name.as_str()))
            }
            LayerSpec::Sequential { layers } => Box::new(self::sequential(layers, backend)?),
            LayerSpec::Conv2d {
                name,
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                dilation,
                groups,
                bias,
                activation,
            } => {
                let config = Conv2dConfig::new(*in_channels, *out_channels, *kernel)
                    .stride(*stride)
                    .padding(*padding)
                    .dilation(*dilation)
                    .groups(*groups)
                    .bias(*bias)
                    .activation(activation.map(ActivationKind::op));
                Box::new(Conv2d::new(name.as_str(), config, init, 0, backend)?)
            }
            LayerSpec::Pool2d {
                kind,
                kernel,
                stride,
                padding,
            } => Box::new(Pool2d {
                kind: *kind,
                kernel: *kernel,
                stride: *stride,
                padding: *padding,
            }),
            LayerSpec::GlobalAvgPool => Box::new(GlobalAvgPool),
            LayerSpec::BatchNorm2d {
                name,
                channels,
                momentum,
            } => {
                Box::new(BatchNorm2d::new(name.as_str(), *channels, backend)?.momentum(*momentum)?)
            }
            LayerSpec::Flatten => Box::new(Flatten),
        })
    }
}

impl LayerSpec {
    /// The widths of the chain of linear and maxout layers, input first (e.g. `[784, 512,
    /// 10]`), for reports.
    pub fn widths(&self) -> Vec<usize> {
        match self {
            LayerSpec::Linear {
                inputs, outputs, ..
            }
            | LayerSpec::Maxout {
                inputs, outputs, ..
            } => vec![*inputs, *outputs],
            LayerSpec::Sequential { layers } => {
                let mut widths: Vec<usize> = Vec::new();
                for w in layers.iter().map(LayerSpec::widths) {
                    let skip = usize::from(widths.last().is_some() && widths.last() == w.first());
                    widths.extend(w.into_iter().skip(skip));
                }
                widths
            }
            _ => Vec::new(),
        }
    }
}

/// The stack `layers` describes, as one `Sequential`.
pub fn sequential<B: Backend>(layers: &[LayerSpec], backend: &B) -> Result<Sequential<B>> {
    layers.iter().try_fold(Sequential::new(), |model, layer| {
        Ok(model.push_boxed(layer.build(backend)?))
    })
}
