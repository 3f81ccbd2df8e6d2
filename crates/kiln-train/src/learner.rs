//! The Learner: Kiln's training loop for a model the caller built, any [`Module`], on a
//! classification dataset kept on the device. Everything the programs' loop does applies:
//! one submit and no readback per step, monitoring every K steps (update:weight ratio,
//! gradient norm, and the activation statistics of every layer the module reports through
//! `forward_each`), validation, early stopping with the best parameters restored, the
//! explosion guard, EMA, mixed precision, augmentation, penalties, clipping and constraints,
//! schedules, and the outputs (`metrics.jsonl`, `report.svg`, `checkpoint.safetensors`,
//! `config.json`).
//!
//! ```no_run
//! # use kiln_train::{Learner, RunData};
//! # use kiln_nn::{Mlp, Sequential};
//! # fn demo(data: &RunData, backend: &kiln_cpu::CpuBackend) -> kiln_train::Result<()> {
//! let model: Sequential<_> = Mlp::new(&[784, 256, 10]).build(backend)?;
//! let (model, outcome) = Learner::new().epochs(5).fit(backend, model, data)?;
//! println!("test accuracy {:.4}", outcome.test.accuracy);
//! # Ok(()) }
//! ```

use crate::choices::{OptimizerKind, ScheduleKind};
use crate::config::{InputLayout, Loss, Regularization, TrainConfig};
use crate::error::Result;
use crate::recipes::fashion_mnist_recipe;
use crate::trainer::{fit, EpochHook, Outcome, RunData, TrainOptions};
use kiln_data::Augmentation;
use kiln_nn::{Module, Precision};
use kiln_tensor::Backend;
use std::path::PathBuf;

/// Training settings with the defaults of Kiln's Fashion-MNIST recipe (Adam 1e-3 with cosine
/// decay, 20 epochs of batch 128, patience 5, monitoring every 100 steps); each method
/// changes one. The settings that describe an MLP (`hidden`, `activation`, `batch_norm`,
/// `dropout`) belong to the programs' model and are not read: the caller's model is what
/// trains.
pub struct Learner<'a> {
    config: TrainConfig,
    options: TrainOptions<'a>,
}

impl Default for Learner<'_> {
    fn default() -> Self {
        Learner {
            config: TrainConfig {
                dataset: "custom".into(),
                ..fashion_mnist_recipe()
            },
            options: TrainOptions::default(),
        }
    }
}

impl<'a> Learner<'a> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every training setting at once (e.g. a program's `TrainConfig`).
    pub fn config(mut self, config: TrainConfig) -> Self {
        self.config = config;
        self
    }

    pub fn epochs(mut self, epochs: usize) -> Self {
        self.config.epochs = epochs;
        self
    }

    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.config.batch_size = batch_size;
        self
    }

    /// Splits each batch into `parts` micro-batches whose gradients are accumulated before one
    /// optimiser step (gradient accumulation): less device memory for the same step.
    pub fn micro_batches(mut self, parts: usize) -> Self {
        self.config.micro_batches = parts;
        self
    }

    /// The optimiser at rate `lr` (L-BFGS: full batch, the rate unused).
    pub fn optimizer(mut self, optimizer: OptimizerKind, lr: f32) -> Self {
        self.config.optimizer = optimizer;
        self.config.lr = lr;
        self
    }

    /// The learning-rate schedule, after `warmup_epochs` of linear warm-up.
    pub fn schedule(mut self, schedule: ScheduleKind, warmup_epochs: usize) -> Self {
        self.config.schedule = schedule;
        self.config.warmup_epochs = warmup_epochs;
        self
    }

    /// L2 weight decay (decoupled for AdamW).
    pub fn weight_decay(mut self, weight_decay: f32) -> Self {
        self.config.weight_decay = weight_decay;
        self
    }

    /// The L1 penalty, gradient clipping and max-norm constraint.
    pub fn regularization(mut self, regularization: Regularization) -> Self {
        self.config.regularization = regularization;
        self
    }

    /// Batches as rows of features (the default) or as images [N, C, H, W].
    pub fn layout(mut self, layout: InputLayout) -> Self {
        self.config.layout = layout;
        self
    }

    /// The training loss (cross-entropy by default; mse; hinge).
    pub fn loss(mut self, loss: Loss) -> Self {
        self.config.loss = loss;
        self
    }

    pub fn label_smoothing(mut self, smoothing: f32) -> Self {
        self.config.label_smoothing = smoothing;
        self
    }

    /// Minibatch augmentation on the device (image datasets).
    pub fn augmentation(mut self, augmentation: Augmentation) -> Self {
        self.config.augmentation = augmentation;
        self
    }

    /// Polyak averaging of the parameters with this decay (0: off).
    pub fn ema(mut self, decay: f32) -> Self {
        self.config.ema_decay = decay;
        self
    }

    /// F32, or mixed: f16 products, f32 master weights, dynamic loss scaling.
    pub fn precision(mut self, precision: Precision) -> Self {
        self.config.precision = precision;
        self
    }

    /// Early stopping after this many epochs without a better validation accuracy (0: off),
    /// and whether to end with the best epoch's parameters.
    pub fn early_stopping(mut self, patience: usize, restore_best: bool) -> Self {
        self.config.patience = patience;
        self.config.restore_best = restore_best;
        self
    }

    /// Steps between monitoring snapshots.
    pub fn monitor_every(mut self, steps: usize) -> Self {
        self.config.monitor_every = steps;
        self
    }

    /// Training samples `RunData::prepare` holds out for validation (seeded split).
    pub fn validation(mut self, samples: usize) -> Self {
        self.config.validation = samples;
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Where the outputs go (nothing is written without it).
    pub fn out(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.out = Some(dir.into());
        self
    }

    /// Continue the run whose outputs are in `dir`.
    pub fn resume(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.resume = Some(dir.into());
        self
    }

    /// No progress bar or log lines.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.options.quiet = quiet;
        self
    }

    /// Called after every epoch with its record.
    pub fn on_epoch(mut self, hook: EpochHook<'a>) -> Self {
        self.options.on_epoch = Some(hook);
        self
    }

    /// The settings as they stand (saved as `config.json` by a run with an output directory).
    pub fn settings(&self) -> &TrainConfig {
        &self.config
    }

    /// Trains `model` on `data`; returns it trained (with the best epoch's parameters unless
    /// told otherwise) and the run's outcome.
    pub fn fit<B: Backend, M: Module<B>>(
        self,
        backend: &B,
        model: M,
        data: &RunData,
    ) -> Result<(M, Outcome)> {
        let (outcome, model) = fit(backend, model, &self.config, data, self.options)?;
        Ok((model, outcome))
    }
}
