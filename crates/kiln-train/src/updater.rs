//! How a run updates its parameters: a first-order optimiser stepped after each backward
//! pass, or L-BFGS, which runs the forward and backward passes itself over the full batch.

use crate::choices::OptimizerKind;
use crate::config::TrainConfig;
use crate::error::Result;
use kiln_autograd::Var;
use kiln_nn::optim::{Lbfgs, Optimizer, OptimizerState};
use kiln_nn::{LossScaler, Parameter};
use kiln_tensor::{Backend, KilnError};
use std::collections::BTreeMap;

/// Iterations of one L-BFGS step (PyTorch's `LBFGS(max_iter=20)`).
pub(crate) const LBFGS_ITERATIONS_PER_STEP: usize = 20;

pub(crate) enum Updater<B: Backend> {
    Gradient(Box<dyn Optimizer<B>>),
    /// L-BFGS, with the number of steps it has taken.
    Lbfgs(Lbfgs, u64),
}

impl<B: Backend> Updater<B> {
    pub(crate) fn new(config: &TrainConfig) -> Result<Self> {
        Ok(match config.optimizer {
            OptimizerKind::Lbfgs => {
                Updater::Lbfgs(Lbfgs::new().max_iterations(LBFGS_ITERATIONS_PER_STEP), 0)
            }
            _ => Updater::Gradient(config.build_optimizer()?),
        })
    }

    /// The rate of the next step (L-BFGS chooses its own step lengths).
    pub(crate) fn set_learning_rate(&mut self, lr: f32) {
        if let Updater::Gradient(optimizer) = self {
            optimizer.set_learning_rate(lr);
        }
    }

    /// One step. A first-order optimiser uses the gradients backward left (through the loss
    /// scaler in mixed precision); L-BFGS minimises `objective` (the batch's loss, evaluated
    /// afresh at each point its line search tries) for up to
    /// [`LBFGS_ITERATIONS_PER_STEP`] iterations.
    pub(crate) fn step(
        &mut self,
        parameters: &[Parameter<B>],
        scaler: Option<&LossScaler<B>>,
        objective: impl FnMut() -> kiln_tensor::Result<Var<B>>,
    ) -> Result<()> {
        match (self, scaler) {
            (Updater::Gradient(optimizer), Some(scaler)) => {
                scaler.step(optimizer.as_mut(), parameters)?
            }
            (Updater::Gradient(optimizer), None) => optimizer.step(parameters)?,
            (Updater::Lbfgs(lbfgs, steps), _) => {
                lbfgs.minimize(parameters, objective)?;
                *steps += 1;
            }
        }
        Ok(())
    }

    /// What a checkpoint keeps (L-BFGS: its kind and step count; its curvature pairs live
    /// within a step).
    pub(crate) fn state(&self) -> Result<OptimizerState<B>> {
        Ok(match self {
            Updater::Gradient(optimizer) => optimizer.state()?,
            Updater::Lbfgs(_, steps) => OptimizerState {
                kind: "lbfgs".into(),
                step: *steps,
                tensors: BTreeMap::new(),
            },
        })
    }

    pub(crate) fn load_state(
        &mut self,
        state: &OptimizerState<B>,
        parameters: &[Parameter<B>],
    ) -> Result<()> {
        match self {
            Updater::Gradient(optimizer) => optimizer.load_state(state, parameters)?,
            Updater::Lbfgs(_, steps) if state.kind == "lbfgs" => *steps = state.step,
            Updater::Lbfgs(..) => {
                return Err(KilnError::invalid(
                    "Updater::load_state",
                    format!(
                        "the checkpoint's optimiser is {}, this run's is lbfgs",
                        state.kind
                    ),
                )
                .into())
            }
        }
        Ok(())
    }
}
