//! Optimisers. Each keeps its state (velocities, moments, step count) per parameter name.

mod adam;
mod adaptive;
mod sgd;

pub use adam::Adam;
pub use adaptive::{adagrad, rmsprop, Adaptive};
pub use sgd::Sgd;

use crate::module::Parameter;
use kiln_tensor::{Backend, Result};

pub trait Optimizer<B: Backend> {
    /// Applies one update to every parameter that has a gradient.
    fn step(&mut self, parameters: &[Parameter<B>]) -> Result<()>;
    fn learning_rate(&self) -> f32;
    fn set_learning_rate(&mut self, lr: f32);
}
