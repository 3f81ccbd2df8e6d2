//! A run's configuration: everything the command-line programs accept, validated before any
//! work starts (each error names the flag and its allowed values), saved as config.json.

use crate::choices::{ModelKind, OptimizerKind, ScheduleKind};
use crate::error::{Result, TrainError};
use kiln_data::{Augmentation, Preprocessing, Transform, DEFAULT_WHITENING_EPSILON};
use kiln_nn::optim::{adagrad, rmsprop, Adam, Optimizer, Sgd};
use kiln_nn::schedule::{Decay, ReduceOnPlateau, Schedule};
use kiln_nn::{ActivationKind, Precision};
use kiln_tensor::Backend;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub dataset: String,
    /// The model the programs build (an MLP unless a recipe says otherwise).
    #[serde(default)]
    pub model: ModelKind,
    pub hidden: Vec<usize>,
    pub activation: ActivationKind,
    pub batch_norm: bool,
    pub dropout: f32,
    pub optimizer: OptimizerKind,
    pub lr: f32,
    pub schedule: ScheduleKind,
    /// Epochs of linear warm-up before the schedule (0 = none).
    pub warmup_epochs: usize,
    pub weight_decay: f32,
    pub label_smoothing: f32,
    pub epochs: usize,
    pub batch_size: usize,
    /// Parts each batch is split into, their gradients accumulated before one optimiser step
    /// (1: whole batches). Training doubles it by itself when a batch does not fit the device.
    #[serde(default = "default_micro_batches")]
    pub micro_batches: usize,
    pub seed: u64,
    /// Epochs without a better validation accuracy before stopping (0 = never stop early).
    pub patience: usize,
    /// Whether the run ends with the best-validation epoch's parameters (true) or keeps the
    /// last epoch's (false: what a schedule that decays to zero or a small validation set wants).
    #[serde(default = "default_restore_best")]
    pub restore_best: bool,
    /// Steps between monitoring snapshots.
    pub monitor_every: usize,
    pub preprocessing: Preprocessing,
    /// Samples held out of the training set for validation.
    pub validation: usize,
    pub limit_train: Option<usize>,
    /// Minibatch augmentation on the device (none by default).
    #[serde(default)]
    pub augmentation: Augmentation,
    /// Polyak averaging of the parameters with this decay (0: off); the averaged weights are
    /// evaluated beside the raw ones.
    #[serde(default)]
    pub ema_decay: f32,
    /// ε added to the covariance eigenvalues for PCA/ZCA whitening.
    #[serde(default = "default_whiten_epsilon")]
    pub whiten_epsilon: f32,
    /// F32, or mixed: f16 products with f32 master weights and dynamic loss scaling.
    #[serde(default)]
    pub precision: Precision,
    /// Penalties, constraints and clipping beyond the optimiser's weight decay.
    #[serde(default)]
    pub regularization: Regularization,
    /// The training loss (validation and test always report the cross-entropy).
    #[serde(default)]
    pub loss: Loss,
    /// How batches reach the model: rows of features, or images [N, C, H, W].
    #[serde(default)]
    pub layout: InputLayout,
}

/// The shape of the batches a model receives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputLayout {
    /// [N, F]: each sample a row of features (MLPs).
    #[default]
    Vectors,
    /// [N, C, H, W]: each sample an image, channels first (convolution layers).
    Images,
}

/// The loss a step minimises over the class scores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// Softmax cross-entropy against the labels (label smoothing and CutMix's soft targets
    /// apply).
    #[default]
    CrossEntropy,
    /// Mean squared error between the scores and the one-hot (or soft) targets.
    Mse,
    /// Multiclass hinge (SVM) loss with margin 1: hard labels only.
    Hinge,
}

/// What a step adds to the optimiser's weight decay (L2): an L1 penalty on the weights (both
/// together: the elastic net), gradient clipping, and a max-norm constraint on each unit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Regularization {
    /// λ1 of the penalty λ1 · Σ|w| over the weight matrices, added to the loss (0: none).
    pub l1: f32,
    /// After backward, scale every gradient so their global L2 norm is at most this.
    pub clip_grad_norm: Option<f32>,
    /// After backward, clamp every gradient element to [−v, v].
    pub clip_grad_value: Option<f32>,
    /// After every step, rescale each unit's incoming weights to L2 norm at most this.
    pub max_norm: Option<f32>,
}

impl Regularization {
    fn validate(&self) -> Result<()> {
        if !(self.l1 >= 0.0 && self.l1.is_finite()) {
            return Err(TrainError::flag("--l1", self.l1, "a number ≥ 0"));
        }
        for (flag, value) in [
            ("--clip-grad-norm", self.clip_grad_norm),
            ("--clip-grad-value", self.clip_grad_value),
            ("--max-norm", self.max_norm),
        ] {
            if let Some(v) = value.filter(|v| !(*v > 0.0 && v.is_finite())) {
                return Err(TrainError::flag(flag, v, "a number > 0"));
            }
        }
        Ok(())
    }
}

fn default_restore_best() -> bool {
    true
}

fn default_micro_batches() -> usize {
    1
}

fn default_whiten_epsilon() -> f32 {
    DEFAULT_WHITENING_EPSILON
}

impl TrainConfig {
    /// Checks every value; the error names the flag and what is allowed.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(TrainError::flag("--lr", self.lr, "a number > 0"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(TrainError::flag(
                "--dropout",
                self.dropout,
                "a probability in [0, 1)",
            ));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(TrainError::flag(
                "--weight-decay",
                self.weight_decay,
                "a number ≥ 0",
            ));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(TrainError::flag(
                "--label-smoothing",
                self.label_smoothing,
                "a number in [0, 1)",
            ));
        }
        if self.epochs == 0 {
            return Err(TrainError::flag("--epochs", 0, "an integer ≥ 1"));
        }
        if self.batch_size == 0 {
            return Err(TrainError::flag("--batch-size", 0, "an integer ≥ 1"));
        }
        if self.monitor_every == 0 {
            return Err(TrainError::flag("--monitor-every", 0, "an integer ≥ 1"));
        }
        if let Some(w) = self.hidden.iter().find(|&&w| w == 0) {
            return Err(TrainError::flag(
                "--hidden",
                w,
                "comma-separated layer widths, each ≥ 1 (e.g. 1024,512)",
            ));
        }
        if self.micro_batches == 0 || self.micro_batches > self.batch_size {
            return Err(TrainError::flag(
                "--micro-batches",
                self.micro_batches,
                &format!(
                    "an integer from 1 to the batch size ({}): the parts each batch is split into",
                    self.batch_size
                ),
            ));
        }
        if self.validation == 0 {
            return Err(TrainError::flag(
                "--validation",
                0,
                "an integer ≥ 1: the held-out samples pick the best epoch and drive --patience \
                 and the plateau schedule (e.g. --validation 1000 trains on all but 1 000)",
            ));
        }
        if self.limit_train == Some(0) {
            return Err(TrainError::flag("--limit-train", 0, "an integer ≥ 1"));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(TrainError::flag(
                "--ema",
                self.ema_decay,
                "a decay in [0, 1) (0 turns averaging off; 0.999 is typical)",
            ));
        }
        if !(self.whiten_epsilon > 0.0 && self.whiten_epsilon.is_finite()) {
            return Err(TrainError::flag(
                "--whiten-epsilon",
                self.whiten_epsilon,
                "a number > 0",
            ));
        }
        self.augmentation.validate()?;
        self.regularization.validate()?;
        if self.optimizer == OptimizerKind::Lbfgs {
            self.check_lbfgs()?;
        }
        if self.loss == Loss::Hinge {
            if self.augmentation.enabled(Transform::Cutmix)
                || self.augmentation.enabled(Transform::Cowmix)
            {
                return Err(TrainError::flag(
                    "--loss",
                    "hinge",
                    "cross-entropy or mse with --augment cutmix or cowmix (the hinge loss takes hard labels; they mix them)",
                ));
            }
            if self.label_smoothing > 0.0 {
                return Err(TrainError::flag(
                    "--loss",
                    "hinge",
                    "cross-entropy or mse with --label-smoothing (the hinge loss takes hard labels)",
                ));
            }
        }
        Ok(())
    }

    /// L-BFGS takes the whole training set as one batch (a line search over minibatches
    /// would chase noise): checked against the training split's size before a run starts.
    pub fn check_full_batch(&self, samples: usize) -> Result<()> {
        if self.optimizer == OptimizerKind::Lbfgs && self.batch_size < samples {
            return Err(TrainError::flag(
                "--optimizer",
                "lbfgs",
                &format!(
                    "a full-batch run: --batch-size {} for {samples} training samples; use \
                     --batch-size ≥ the training samples (with --limit-train N for a small \
                     run), or for minibatches sgd, momentum, nesterov, adagrad, rmsprop, adam \
                     or adamw",
                    self.batch_size,
                ),
            ));
        }
        Ok(())
    }

    /// L-BFGS runs in f32, without gradient clipping (its line search controls the step).
    fn check_lbfgs(&self) -> Result<()> {
        if self.precision == Precision::Mixed {
            return Err(TrainError::flag(
                "--optimizer",
                "lbfgs",
                "--precision f32 (the line search compares losses to 1e-4: f16 products blur them)",
            ));
        }
        if self.regularization.clip_grad_norm.is_some()
            || self.regularization.clip_grad_value.is_some()
        {
            return Err(TrainError::flag(
                "--optimizer",
                "lbfgs",
                "no --clip-grad-norm or --clip-grad-value (its line search controls the step)",
            ));
        }
        if self.micro_batches != 1 {
            return Err(TrainError::flag(
                "--optimizer",
                "lbfgs",
                "--micro-batches 1 (its line search re-evaluates the whole batch)",
            ));
        }
        Ok(())
    }

    /// Layer widths from input to output.
    pub fn widths(&self, features: usize, classes: usize) -> Vec<usize> {
        let mut w = vec![features];
        w.extend(&self.hidden);
        w.push(classes);
        w
    }

    /// The first-order optimiser, with `weight_decay` as L2 (SGD family, AdaGrad, RMSProp,
    /// Adam) or decoupled (AdamW). L-BFGS is not one: it evaluates the loss itself (see
    /// [`Updater`](crate::run_state)), and asking for it here is an error.
    pub fn build_optimizer<B: Backend>(&self) -> Result<Box<dyn Optimizer<B>>> {
        let (lr, wd) = (self.lr, self.weight_decay);
        Ok(match self.optimizer {
            OptimizerKind::Sgd => Box::new(Sgd::new(lr)?.weight_decay(wd)?),
            OptimizerKind::Momentum => Box::new(Sgd::new(lr)?.momentum(0.9)?.weight_decay(wd)?),
            OptimizerKind::Nesterov => Box::new(Sgd::new(lr)?.nesterov(0.9)?.weight_decay(wd)?),
            OptimizerKind::Adagrad => Box::new(adagrad(lr)?.weight_decay(wd)?),
            OptimizerKind::Rmsprop => Box::new(rmsprop(lr, 0.99)?.weight_decay(wd)?),
            OptimizerKind::Adamw => Box::new(Adam::adamw(lr, wd)?),
            OptimizerKind::Adam => Box::new(Adam::new(lr)?.weight_decay(wd)?),
            OptimizerKind::Lbfgs => {
                return Err(TrainError::flag(
                    "--optimizer",
                    "lbfgs",
                    "a first-order optimiser here (L-BFGS runs its own closure, full batch)",
                ))
            }
        })
    }

    /// Reduce-on-plateau for `--schedule plateau`: the rate falls tenfold when the validation
    /// loss has not improved for 2 epochs.
    pub fn plateau(&self) -> Result<Option<ReduceOnPlateau>> {
        if self.schedule != ScheduleKind::Plateau {
            return Ok(None);
        }
        Ok(Some(ReduceOnPlateau::new(0.1, 2, 0.0)?))
    }

    /// The learning-rate schedule over `steps_per_epoch · epochs` steps.
    pub fn build_schedule(&self, steps_per_epoch: usize) -> Result<Schedule> {
        let per_epoch = steps_per_epoch.max(1);
        let total = per_epoch * self.epochs;
        let decay = match self.schedule {
            ScheduleKind::Step => Decay::Step {
                every: (total / 3).max(1),
                gamma: 0.1,
            },
            ScheduleKind::Exponential => Decay::Exponential {
                gamma: 0.9f32.powf(1.0 / per_epoch as f32),
            },
            ScheduleKind::Cosine => Decay::Cosine {
                period: total,
                min_lr: 0.0,
                restarts: false,
                period_mult: 1,
            },
            ScheduleKind::Triangular => Decay::Triangular {
                half_cycle: 2 * per_epoch,
                max_lr: self.lr * 10.0,
            },
            // lr / (1 + t / steps per epoch): half the rate after one epoch, a third after two.
            ScheduleKind::InverseTime => Decay::InverseTime {
                k: 1.0 / per_epoch as f32,
            },
            // Plateau steps the rate down at epoch ends (`plateau`); between them it holds.
            ScheduleKind::Constant | ScheduleKind::Plateau => Decay::Constant,
        };
        Ok(Schedule::new(self.lr, decay)?.with_warmup(self.warmup_epochs * per_epoch))
    }
}
