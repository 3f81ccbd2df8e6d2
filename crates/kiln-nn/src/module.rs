//! The module trait and shared parameters.

use kiln_autograd::Var;
use kiln_tensor::{Backend, RngState, Tensor, UnaryOp};
use std::sync::{Arc, Mutex};

/// A named, shared, trainable tensor. Cloning shares it; the optimiser sets new values.
pub struct Parameter<B: Backend> {
    name: String,
    var: Arc<Mutex<Var<B>>>,
}

impl<B: Backend> Clone for Parameter<B> {
    fn clone(&self) -> Self {
        Parameter {
            name: self.name.clone(),
            var: self.var.clone(),
        }
    }
}

impl<B: Backend> Parameter<B> {
    pub fn new(name: impl Into<String>, value: Tensor<B>) -> Self {
        Parameter {
            name: name.into(),
            var: Arc::new(Mutex::new(Var::parameter(value))),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current leaf variable (use it in a forward pass).
    pub fn var(&self) -> Var<B> {
        self.var.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn value(&self) -> Tensor<B> {
        self.var().value().clone()
    }

    pub fn grad(&self) -> Option<Tensor<B>> {
        self.var().grad()
    }

    /// Replaces the value with a fresh leaf (its gradient starts empty).
    pub fn set(&self, value: Tensor<B>) {
        *self.var.lock().unwrap_or_else(|p| p.into_inner()) = Var::parameter(value);
    }

    /// Makes later forward passes read `var` (a leaf or any variable) as this parameter.
    /// Gradient checks use it to run a module on their own f64 variables.
    pub fn bind(&self, var: Var<B>) {
        *self.var.lock().unwrap_or_else(|p| p.into_inner()) = var;
    }

    pub fn zero_grad(&self) {
        self.var().zero_grad();
    }

    /// Replaces the accumulated gradient (clipping does this between backward and the step).
    pub fn set_grad(&self, grad: Tensor<B>) {
        self.var().set_grad(Some(grad));
    }
}

/// One layer's output from [`Module::forward_each`].
pub struct LayerOutput<B: Backend> {
    pub layer: String,
    /// The activation the output has just been through, if any.
    pub activation: Option<UnaryOp>,
    pub value: Var<B>,
}

/// Something with parameters that maps a batch to a batch.
pub trait Module<B: Backend> {
    fn forward(&self, x: &Var<B>) -> kiln_tensor::Result<Var<B>>;

    /// The forward pass keeping the outputs a monitor should see: each layer's, named, with
    /// the activation it has just been through (the last is the module's output). A module
    /// made of layers returns one per layer so the training loop can report every layer's
    /// activation statistics; by default, the module's own output alone.
    fn forward_each(&self, x: &Var<B>) -> kiln_tensor::Result<Vec<LayerOutput<B>>> {
        Ok(vec![LayerOutput {
            layer: self.name(),
            activation: self.output_activation(),
            value: self.forward(x)?,
        }])
    }
    /// Every parameter, named `<layer>.<tensor>`.
    fn parameters(&self) -> Vec<Parameter<B>>;
    /// Training mode (batch statistics, dropout on) or evaluation mode.
    fn set_training(&mut self, _training: bool) {}

    /// The arithmetic of matrix products (linear layers); other layers ignore it.
    fn set_precision(&mut self, _precision: crate::Precision) {}

    /// A short name for reports and monitoring ("layer0", "relu", "layer0.bn").
    fn name(&self) -> String {
        "module".into()
    }

    /// The activation this layer's output has just been through, if any (monitoring reads
    /// activation statistics from these outputs).
    fn output_activation(&self) -> Option<UnaryOp> {
        None
    }

    /// State that is not trained but must be saved with the parameters: BatchNorm running
    /// statistics, dropout stream positions. Named `<layer>.<buffer>`.
    fn buffers(&self) -> Vec<(String, Tensor<B>)> {
        Vec::new()
    }

    /// Restores the buffer `name`; Ok(false) when this module has no such buffer.
    fn set_buffer(&mut self, _name: &str, _value: &Tensor<B>) -> kiln_tensor::Result<bool> {
        Ok(false)
    }

    /// Positions of the random streams this module draws from (dropout), by layer name.
    fn rng_states(&self) -> Vec<(String, RngState)> {
        Vec::new()
    }

    /// Restores the stream `name` (same seed required); false when this module has none.
    fn set_rng_state(&mut self, _name: &str, _state: RngState) -> bool {
        false
    }

    /// The serialisable description of this layer (or stack of layers), which a checkpoint
    /// stores to rebuild it; `None` for a module of the caller's own, which only its own code
    /// can build.
    fn spec(&self) -> Option<crate::LayerSpec> {
        None
    }

    fn zero_grad(&self) {
        for p in self.parameters() {
            p.zero_grad();
        }
    }
}
