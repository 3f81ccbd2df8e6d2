//! Modules applied one after another.

use crate::module::{LayerOutput, Module, Parameter};
use kiln_autograd::Var;
use kiln_tensor::{Backend, Result, RngState, Tensor};

pub struct Sequential<B: Backend> {
    layers: Vec<Box<dyn Module<B> + Send + Sync>>,
}

impl<B: Backend> Default for Sequential<B> {
    fn default() -> Self {
        Sequential { layers: Vec::new() }
    }
}

impl<B: Backend> Sequential<B> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(mut self, layer: impl Module<B> + Send + Sync + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Appends a layer already boxed (what [`crate::LayerSpec::build`] returns).
    pub fn push_boxed(mut self, layer: crate::BoxedModule<B>) -> Self {
        self.layers.push(layer);
        self
    }

    pub fn len(&self) -> usize {
        self.layers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl<B: Backend> Module<B> for Sequential<B> {
    /// Runs the layers one by one, returning every layer's output with the layer's name and
    /// output activation (what monitoring needs).
    fn forward_each(&self, x: &Var<B>) -> Result<Vec<LayerOutput<B>>> {
        let mut outputs = Vec::with_capacity(self.layers.len());
        let mut h = x.clone();
        for layer in &self.layers {
            h = layer
                .forward(&h)
                .map_err(|e| crate::error::at_layer(e, &layer.name(), h.shape()))?;
            outputs.push(LayerOutput {
                layer: layer.name(),
                activation: layer.output_activation(),
                value: h.clone(),
            });
        }
        Ok(outputs)
    }

    /// Described when every layer is.
    fn spec(&self) -> Option<crate::LayerSpec> {
        let layers = self
            .layers
            .iter()
            .map(|l| l.spec())
            .collect::<Option<_>>()?;
        Some(crate::LayerSpec::Sequential { layers })
    }

    fn forward(&self, x: &Var<B>) -> Result<Var<B>> {
        let mut h = x.clone();
        for layer in &self.layers {
            h = layer
                .forward(&h)
                .map_err(|e| crate::error::at_layer(e, &layer.name(), h.shape()))?;
        }
        Ok(h)
    }

    fn parameters(&self) -> Vec<Parameter<B>> {
        self.layers.iter().flat_map(|l| l.parameters()).collect()
    }

    fn set_training(&mut self, training: bool) {
        for layer in &mut self.layers {
            layer.set_training(training);
        }
    }

    fn set_precision(&mut self, precision: crate::Precision) {
        for layer in &mut self.layers {
            layer.set_precision(precision);
        }
    }

    fn name(&self) -> String {
        "sequential".into()
    }

    fn buffers(&self) -> Vec<(String, Tensor<B>)> {
        self.layers.iter().flat_map(|l| l.buffers()).collect()
    }

    fn rng_states(&self) -> Vec<(String, RngState)> {
        self.layers.iter().flat_map(|l| l.rng_states()).collect()
    }

    fn set_rng_state(&mut self, name: &str, state: RngState) -> bool {
        self.layers.iter_mut().any(|l| l.set_rng_state(name, state))
    }

    fn set_buffer(&mut self, name: &str, value: &Tensor<B>) -> Result<bool> {
        for layer in &mut self.layers {
            if layer.set_buffer(name, value)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
