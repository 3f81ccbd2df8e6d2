//! BatchNorm1d: per-feature normalisation with batch statistics in training (and running
//! averages updated with `momentum`), running statistics in evaluation; learnable γ and β.

use crate::error::check_range;
use crate::module::{Module, Parameter};
use kiln_autograd::Var;
use kiln_tensor::{Backend, DType, Result, Tensor};
use std::sync::Mutex;

pub struct BatchNorm1d<B: Backend> {
    name: String,
    gamma: Parameter<B>,
    beta: Parameter<B>,
    /// (running mean, running unbiased variance), as PyTorch keeps them.
    running: Mutex<(Tensor<B>, Tensor<B>)>,
    momentum: f32,
    eps: f32,
    training: bool,
}

impl<B: Backend> BatchNorm1d<B> {
    /// PyTorch's defaults: momentum 0.1, eps 1e-5; γ = 1, β = 0, running mean 0, variance 1.
    pub fn new(name: impl Into<String>, features: usize, backend: &B) -> Result<Self> {
        let name = name.into();
        check_range(
            "BatchNorm1d::new",
            &format!("{name} features"),
            features as f64,
            features > 0,
            "≥ 1",
        )?;
        let full = |v: f64| Tensor::full([features], v, DType::F32, backend);
        Ok(BatchNorm1d {
            name: name.clone(),
            gamma: Parameter::new(format!("{name}.gamma"), full(1.0)?),
            beta: Parameter::new(format!("{name}.beta"), full(0.0)?),
            running: Mutex::new((full(0.0)?, full(1.0)?)),
            momentum: 0.1,
            eps: 1e-5,
            training: true,
        })
    }

    pub fn momentum(mut self, momentum: f32) -> Result<Self> {
        check_range(
            "BatchNorm1d::momentum",
            "momentum",
            momentum as f64,
            (0.0..=1.0).contains(&momentum),
            "[0, 1]",
        )?;
        self.momentum = momentum;
        Ok(self)
    }

    /// The running (mean, unbiased variance).
    pub fn running_statistics(&self) -> (Tensor<B>, Tensor<B>) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn channels(&self) -> usize {
        self.gamma.value().numel()
    }

    fn wrong_input(&self, layout: &str, x: &Var<B>) -> kiln_tensor::KilnError {
        let c = self.channels();
        kiln_tensor::KilnError::invalid(
            "BatchNorm::forward",
            format!(
                "{} takes {} input with C = {c}, got shape {}",
                self.name,
                layout.replace('C', &c.to_string()),
                x.shape()
            ),
        )
    }

    /// Normalises x ([N, C, ...]) per channel: with the batch's statistics in training (and
    /// the running ones updated from them), the running statistics in evaluation.
    fn normalise(&self, x: &Var<B>) -> Result<Var<B>> {
        if x.shape().dims()[1] != self.channels() {
            return Err(self.wrong_input("[N, C, ...]", x));
        }
        let params = (&self.gamma.var(), &self.beta.var());
        if !self.training {
            let (mut mean, mut var) = self.running_statistics();
            let dtype = x.value().dtype();
            if mean.dtype() != dtype {
                (mean, var) = (mean.cast(dtype)?, var.cast(dtype)?);
            }
            return Ok(x.batch_norm(params, Some((&mean, &var)), self.eps)?.0);
        }
        let (y, mean, var) = x.batch_norm(params, None, self.eps)?;
        let n = (x.value().numel() / self.channels()) as f32;
        let unbiased = (var * (n / (n - 1.0).max(1.0)))?;
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        // The running statistics follow the input's precision (f64 in gradient checks).
        if running.0.dtype() != mean.dtype() {
            *running = (running.0.cast(mean.dtype())?, running.1.cast(mean.dtype())?);
        }
        let m = self.momentum;
        running.0 = ((&running.0 * (1.0 - m))? + &(mean * m)?)?;
        running.1 = ((&running.1 * (1.0 - m))? + &(unbiased * m)?)?;
        Ok(y)
    }
}

impl<B: Backend> Module<B> for BatchNorm1d<B> {
    fn spec(&self) -> Option<crate::LayerSpec> {
        Some(crate::LayerSpec::BatchNorm1d {
            name: self.name.clone(),
            features: self.gamma.value().numel(),
            momentum: self.momentum,
        })
    }

    fn forward(&self, x: &Var<B>) -> Result<Var<B>> {
        let rank = x.shape().rank();
        if rank != 2 && rank != 3 {
            return Err(self.wrong_input("[N, C] or [N, C, L]", x));
        }
        self.normalise(x)
    }

    fn parameters(&self) -> Vec<Parameter<B>> {
        vec![self.gamma.clone(), self.beta.clone()]
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn buffers(&self) -> Vec<(String, Tensor<B>)> {
        let (mean, var) = self.running_statistics();
        vec![
            (format!("{}.running_mean", self.name), mean),
            (format!("{}.running_var", self.name), var),
        ]
    }

    fn set_buffer(&mut self, name: &str, value: &Tensor<B>) -> Result<bool> {
        let Some(which) = name
            .strip_prefix(self.name.as_str())
            .and_then(|s| s.strip_prefix('.'))
        else {
            return Ok(false);
        };
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let slot = match which {
            "running_mean" => &mut running.0,
            "running_var" => &mut running.1,
            _ => return Ok(false),
        };
        if value.shape() != slot.shape() {
            return Err(kiln_tensor::KilnError::ShapeMismatch {
                op: "BatchNorm1d::set_buffer",
                lhs: slot.shape().clone(),
                rhs: value.shape().clone(),
                reason: format!("{name} has the layer's feature count"),
            });
        }
        *slot = value.deep_copy()?;
        Ok(true)
    }
}

/// BatchNorm2d: per-channel normalisation of NCHW images, the statistics of each channel taken
/// over N·H·W (PyTorch's semantics: biased variance to normalise, unbiased for the running
/// variance), by the batch-norm family's kernels on the NCHW tensor itself (no transposes);
/// parameters and buffers are named as BatchNorm1d's.
pub struct BatchNorm2d<B: Backend> {
    rows: BatchNorm1d<B>,
}

impl<B: Backend> BatchNorm2d<B> {
    /// PyTorch's defaults: momentum 0.1, eps 1e-5.
    pub fn new(name: impl Into<String>, channels: usize, backend: &B) -> Result<Self> {
        Ok(BatchNorm2d {
            rows: BatchNorm1d::new(name, channels, backend)?,
        })
    }

    pub fn momentum(self, momentum: f32) -> Result<Self> {
        Ok(BatchNorm2d {
            rows: self.rows.momentum(momentum)?,
        })
    }

    pub fn running_statistics(&self) -> (Tensor<B>, Tensor<B>) {
        self.rows.running_statistics()
    }
}

impl<B: Backend> Module<B> for BatchNorm2d<B> {
    fn forward(&self, x: &Var<B>) -> Result<Var<B>> {
        if x.shape().rank() != 4 {
            return Err(self.rows.wrong_input("[N, C, H, W]", x));
        }
        self.rows.normalise(x)
    }

    fn parameters(&self) -> Vec<Parameter<B>> {
        self.rows.parameters()
    }

    fn set_training(&mut self, training: bool) {
        self.rows.set_training(training);
    }

    fn name(&self) -> String {
        self.rows.name.clone()
    }

    fn buffers(&self) -> Vec<(String, Tensor<B>)> {
        self.rows.buffers()
    }

    fn set_buffer(&mut self, name: &str, value: &Tensor<B>) -> Result<bool> {
        self.rows.set_buffer(name, value)
    }

    fn spec(&self) -> Option<crate::LayerSpec> {
        Some(crate::LayerSpec::BatchNorm2d {
            name: self.rows.name.clone(),
            channels: self.rows.gamma.value().numel(),
            momentum: self.rows.momentum,
        })
    }
}
