//! Optimisers. Each update is one fused kernel per parameter tensor (no host round trip);
//! state (velocities, moments, step count) is kept per parameter name and can be saved and
//! restored through [`OptimizerState`]. [`Lbfgs`] is the exception: a full-batch method that
//! re-evaluates the loss through a closure.

mod adam;
mod adaptive;
mod lbfgs;
mod sgd;
mod state;

pub use adam::Adam;
pub use adaptive::{adagrad, rmsprop, Adaptive};
pub use lbfgs::{Lbfgs, LbfgsReport};
pub use sgd::Sgd;
pub use state::OptimizerState;

use crate::module::Parameter;
use kiln_tensor::{Backend, Result, Tensor};

pub trait Optimizer<B: Backend> {
    /// Applies one update to every parameter that has a gradient.
    fn step(&mut self, parameters: &[Parameter<B>]) -> Result<()> {
        self.step_gated(parameters, None)
    }
    /// `step`, which the device skips when `skip_if` (a [`crate::LossScaler`]'s flags) says the
    /// gradients were not finite. The step count advances either way; Adam's bias corrections
    /// count only the steps taken.
    fn step_gated(
        &mut self,
        parameters: &[Parameter<B>],
        skip_if: Option<&Tensor<B>>,
    ) -> Result<()>;
    fn learning_rate(&self) -> f32;
    fn set_learning_rate(&mut self, lr: f32);
    /// How many times `step` has run (restored with the state).
    fn steps_taken(&self) -> u64;
    /// A copy of the state; later steps do not change it.
    fn state(&self) -> Result<OptimizerState<B>>;
    /// Replaces the state with a copy of `state`, which must come from the same kind of
    /// optimiser and fit `parameters` (the error lists every mismatched tensor).
    fn load_state(&mut self, state: &OptimizerState<B>, parameters: &[Parameter<B>]) -> Result<()>;
}
