//! Kiln's training loop and its outputs: configuration, the trainer (validation, early
//! stopping, explosion guard, monitoring), metrics, checkpoints in safetensors, the SVG
//! report, and prediction from a checkpoint alone.

mod checkpoint;
pub mod cli;
mod config;
mod error;
mod history;
mod metrics;
mod monitor;
mod predict;
mod progress;
mod report;
mod trainer;

pub use checkpoint::{Checkpoint, FORMAT as CHECKPOINT_FORMAT};
pub use config::{TrainConfig, ACTIVATIONS, OPTIMIZERS, PREPROCESSING, SCHEDULES};
pub use error::{write_atomically, Result, TrainError};
pub use history::{EpochRecord, LayerStats};
pub use metrics::{argmax, roc_auc, Evaluation};
pub use predict::{evaluate_checkpoint, load_model};
pub use trainer::{build_model, check_writable, evaluate, train, Outcome, RunData, TrainOptions};
