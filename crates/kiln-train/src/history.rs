//! What a run records each epoch (one line of metrics.jsonl) and per layer at each
//! monitoring interval.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerStats {
    pub layer: String,
    /// ‖ΔW‖ / ‖W‖ of the last step; about 1e-3 is the usual healthy value.
    pub update_ratio: f64,
    pub grad_norm: f64,
    pub weight_norm: f64,
    /// Statistics of the layer's activations on the monitored batch (absent for the output).
    pub activation_mean: Option<f64>,
    pub activation_std: Option<f64>,
    /// Fraction of ReLU units that output 0 for every sample of the batch.
    pub dead_fraction: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub step: u64,
    pub lr: f32,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_precision: Vec<f64>,
    pub val_recall: Vec<f64>,
    pub val_roc_auc: f64,
    pub val_confusion: Vec<Vec<u64>>,
    /// Validation accuracy of the averaged (EMA) parameters, when averaging is on.
    #[serde(default)]
    pub val_accuracy_ema: Option<f64>,
    pub seconds: f64,
    pub samples_per_second: f64,
    /// The last monitoring snapshot of the epoch.
    pub layers: Vec<LayerStats>,
}
