//! Kiln's training loop and its outputs: configuration, the trainer (validation, early
//! stopping, explosion guard, monitoring), metrics, checkpoints in safetensors, the SVG
//! report, and prediction from a checkpoint alone.

mod checkpoint;
mod choices;
pub mod cli;
mod config;
mod crossval;
mod ensemble;
mod epoch;
mod error;
mod history;
mod learner;
mod load_weights;
mod metrics;
mod models;
mod modes;
mod monitor;
mod predict;
mod preview;
mod progress;
mod recipes;
mod report;
mod run_state;
mod search;
mod search_plot;
mod step;
mod trainer;
mod tta;
mod updater;

pub use checkpoint::{Checkpoint, FORMAT as CHECKPOINT_FORMAT};
pub use choices::{name_of, ModelKind, OptimizerKind, ScheduleKind};
pub use config::{InputLayout, Loss, Regularization, TrainConfig};
pub use crossval::{cross_validate, CrossValidation};
pub use ensemble::{evaluate_checkpoint_ensemble, evaluate_ensemble, EnsembleEvaluation};
pub use error::{write_atomically, Result, TrainError};
pub use history::{EpochRecord, LayerStats};
pub use learner::Learner;
pub use load_weights::{load_weights, LoadReport};
pub use metrics::{argmax, roc_auc, Evaluation};
pub use models::build_model;
pub use predict::{
    checkpoint_config, described_model, evaluate_checkpoint, evaluate_checkpoint_with, load_model,
};
pub use preview::save_augmented;
pub use recipes::{
    cifar10_cnn_recipe, cifar10_recipe, fashion_mnist_cnn_recipe, fashion_mnist_recipe,
    load_cifar10_dataset, load_fashion_mnist,
};
pub use search::{random_search, ranked, results_table, SearchPlan, SearchSpace, Trial, TrialRun};
pub use search_plot::write_search_plot;
pub use trainer::{
    check_writable, evaluate, initial_loss_is_plausible, predict_probabilities, train, Outcome,
    RunData, TrainOptions,
};
pub use tta::{predict_with_tta, Tta};
