//! Conv2d: act(conv(x, W) + b) over NCHW images, W [out, in / groups, k, k], as one fused
//! kernel on the GPU (implicit GEMM with the bias and activation epilogue; with channel groups,
//! the direct grouped kernel).

use crate::error::invalid;
use crate::init::Init;
use crate::module::{Module, Parameter};
use kiln_autograd::Var;
use kiln_tensor::{Backend, Conv2dOptions, DType, Result, Tensor, UnaryOp};

pub struct Conv2d<B: Backend> {
    name: String,
    weight: Parameter<B>,
    bias: Option<Parameter<B>>,
    activation: Option<UnaryOp>,
    options: Conv2dOptions,
}

/// What a Conv2d is: channels in and out, a square kernel, how it slides and its channel
/// groups (`groups(in_channels)`: depthwise), whether it has a bias (off before batch norm,
/// which has its own shift), and a fused activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub options: Conv2dOptions,
    pub bias: bool,
    pub activation: Option<UnaryOp>,
}

impl Conv2dConfig {
    /// A `kernel`×`kernel` convolution, stride 1, no padding, with a bias, no activation.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Conv2dConfig {
            in_channels,
            out_channels,
            kernel,
            options: Conv2dOptions::default(),
            bias: true,
            activation: None,
        }
    }

    pub fn stride(mut self, stride: usize) -> Self {
        self.options.stride = stride;
        self
    }

    pub fn padding(mut self, padding: usize) -> Self {
        self.options.padding = padding;
        self
    }

    pub fn dilation(mut self, dilation: usize) -> Self {
        self.options.dilation = dilation;
        self
    }

    /// Splits the channels into `groups` groups, each output channel reading only its
    /// group's in_channels / groups inputs (PyTorch's `groups`; in_channels: depthwise).
    pub fn groups(mut self, groups: usize) -> Self {
        self.options.groups = groups;
        self
    }

    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    pub fn activation(mut self, activation: Option<UnaryOp>) -> Self {
        self.activation = activation;
        self
    }
}

impl<B: Backend> Conv2d<B> {
    /// Weights from `init` with the convolution's fans, as PyTorch reads them off the weight
    /// [out, in / groups, k, k]: fan-in = (in / groups) · k², fan-out = out · k²; seeded; a
    /// zero bias.
    pub fn new(
        name: impl Into<String>,
        config: Conv2dConfig,
        init: Init,
        seed: u64,
        backend: &B,
    ) -> Result<Self> {
        let name = name.into();
        let c = config;
        if c.in_channels == 0 || c.out_channels == 0 || c.kernel == 0 {
            return Err(invalid(
                "Conv2d::new",
                &format!("{name} channels and kernel"),
                format!(
                    "{}→{} channels, kernel {}",
                    c.in_channels, c.out_channels, c.kernel
                ),
                "≥ 1 each",
            ));
        }
        if c.options.stride == 0 || c.options.dilation == 0 {
            return Err(invalid(
                "Conv2d::new",
                &format!("{name} stride and dilation"),
                format!("{} and {}", c.options.stride, c.options.dilation),
                "≥ 1 each",
            ));
        }
        let groups = c.options.groups;
        if groups == 0
            || !c.in_channels.is_multiple_of(groups)
            || !c.out_channels.is_multiple_of(groups)
        {
            return Err(invalid(
                "Conv2d::new",
                &format!("{name} groups"),
                groups.to_string(),
                &format!(
                    "≥ 1 and a divisor of both {} input and {} output channels",
                    c.in_channels, c.out_channels
                ),
            ));
        }
        let area = c.kernel * c.kernel;
        let group_in = c.in_channels / groups;
        let weight = Parameter::new(
            format!("{name}.weight"),
            init.tensor(
                [c.out_channels, group_in, c.kernel, c.kernel],
                group_in * area,
                c.out_channels * area,
                seed,
                backend,
            )?,
        );
        let bias = c
            .bias
            .then(|| {
                Tensor::zeros([c.out_channels], DType::F32, backend)
                    .map(|t| Parameter::new(format!("{name}.bias"), t))
            })
            .transpose()?;
        Ok(Conv2d {
            name,
            weight,
            bias,
            activation: c.activation,
            options: c.options,
        })
    }

    pub fn weight(&self) -> &Parameter<B> {
        &self.weight
    }

    /// The layer's configuration (read back from its weights).
    pub fn config(&self) -> Conv2dConfig {
        let dims = self.weight.value().dims().to_vec();
        Conv2dConfig {
            in_channels: dims[1] * self.options.groups,
            out_channels: dims[0],
            kernel: dims[2],
            options: self.options,
            bias: self.bias.is_some(),
            activation: self.activation,
        }
    }
}

impl<B: Backend> Module<B> for Conv2d<B> {
    fn forward(&self, x: &Var<B>) -> Result<Var<B>> {
        let dims = x.shape().dims().to_vec();
        let channels = self.weight.value().dims()[1] * self.options.groups;
        if dims.len() != 4 || dims[1] != channels {
            return Err(kiln_tensor::KilnError::invalid(
                "Conv2d::forward",
                format!(
                    "{} takes [N, {channels}, H, W] images, got shape {:?}: check the previous \
                     layer's channels (or the data's layout: images, not rows of features)",
                    self.name, dims
                ),
            ));
        }
        let bias = self.bias.as_ref().map(|b| b.var());
        x.conv2d(
            &self.weight.var(),
            bias.as_ref(),
            self.activation,
            self.options,
        )
        .map_err(|e| crate::error::at_layer(e, &self.name, x.shape()))
    }

    fn parameters(&self) -> Vec<Parameter<B>> {
        let mut p = vec![self.weight.clone()];
        p.extend(self.bias.clone());
        p
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn output_activation(&self) -> Option<UnaryOp> {
        self.activation
    }

    fn spec(&self) -> Option<crate::LayerSpec> {
        let c = self.config();
        Some(crate::LayerSpec::Conv2d {
            name: self.name.clone(),
            in_channels: c.in_channels,
            out_channels: c.out_channels,
            kernel: c.kernel,
            stride: c.options.stride,
            padding: c.options.padding,
            dilation: c.options.dilation,
            groups: c.options.groups,
            bias: c.bias,
            activation: match c.activation {
                Some(op) => Some(crate::ActivationKind::from_op(op)?),
                None => None,
            },
        })
    }
}
