//! The named choices of a run's configuration that the library builds from: the optimiser and
//! the learning-rate schedule. Each is an enum spelled the same way in config.json, on every
//! program's command line (clap `ValueEnum`) and in the Learner's builder.

use serde::{Deserialize, Serialize};

/// The optimiser (`--optimizer`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Plain stochastic gradient descent.
    Sgd,
    /// SGD with heavy-ball momentum 0.9.
    Momentum,
    /// SGD with Nesterov momentum 0.9.
    Nesterov,
    Adagrad,
    /// RMSProp with decay 0.99.
    Rmsprop,
    /// Adam (β1 0.9, β2 0.999) with L2 weight decay.
    #[default]
    Adam,
    /// Adam with decoupled weight decay.
    Adamw,
    /// L-BFGS (history 10, strong-Wolfe line search): full batch only, up to 20 iterations a
    /// step, as PyTorch's `LBFGS.step(closure)`.
    Lbfgs,
}

/// The learning-rate schedule (`--schedule`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    #[default]
    Constant,
    /// ×0.1 after each third of the run.
    Step,
    /// ×0.9 per epoch, applied per step.
    Exponential,
    /// Cosine decay to 0 over the run.
    Cosine,
    /// Cyclical between lr and 10·lr, half-cycles of 2 epochs.
    Triangular,
    /// lr / (1 + epochs done).
    InverseTime,
    /// ÷10 when the validation loss has not improved for 2 epochs.
    Plateau,
}

/// The model a program builds (`--model`); a run resumed or evaluated from a checkpoint
/// rebuilds the model the checkpoint describes instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Linear layers of `--hidden` widths, with `--batch-norm` and `--dropout`.
    #[default]
    Mlp,
    /// The reference CNN: two conv-BN-ReLU-max-pool blocks (32, 64 channels), a hidden linear
    /// layer of `--hidden` (128) with dropout, and the classifier.
    SmallCnn,
    /// Six conv-BN-ReLU blocks (64, 64, 128, 128, 256, 256 channels, pooling after every
    /// second), global average pooling, dropout and the classifier.
    DeepCnn,
}

/// The kebab-case name of any of these choices, as config.json and the flags spell it.
pub fn name_of(value: impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&name_of(*self))
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&name_of(*self))
    }
}

impl std::fmt::Display for ScheduleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&name_of(*self))
    }
}
