//! K-fold cross-validation: k models, each trained on k − 1 folds (with the preprocessing
//! fitted on those) and validated on the remaining fold; the mean ± standard deviation of the
//! validation accuracy says how much a recipe's score owes to one particular split.

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::trainer::{train, RunData, TrainOptions};
use kiln_data::{Dataset, Normalization};
use kiln_tensor::Backend;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct CrossValidation {
    /// Best validation accuracy of each fold's model.
    pub fold_accuracy: Vec<f64>,
    pub mean: f64,
    /// Sample standard deviation over the folds.
    pub std: f64,
}

/// Trains `k` models on the folds of `full_train` (split by `config.seed`).
pub fn cross_validate<B: Backend>(
    backend: &B,
    config: &TrainConfig,
    full_train: &Dataset,
    k: usize,
    quiet: bool,
) -> Result<CrossValidation> {
    if k < 2 || k > full_train.len() {
        return Err(TrainError::flag(
            "--folds",
            k,
            &format!(
                "an integer from 2 to the number of training samples ({})",
                full_train.len()
            ),
        ));
    }
    let kind = config.preprocessing;
    let mut fold_accuracy = Vec::with_capacity(k);
    for (i, (train_fold, validation)) in full_train.folds(k, config.seed).into_iter().enumerate() {
        let train_fold = match config.limit_train {
            Some(n) => train_fold.take(n),
            None => train_fold,
        };
        let normalization =
            Normalization::fit_with_epsilon(&train_fold, kind, config.whiten_epsilon);
        let data = RunData {
            train: train_fold,
            // The held-out fold is both the validation and the final evaluation set.
            test: validation.clone(),
            validation,
            normalization,
        };
        let outcome = train(
            backend,
            config,
            &data,
            TrainOptions {
                quiet,
                ..TrainOptions::default()
            },
        )?;
        if !quiet {
            println!(
                "fold {}/{k}: validation accuracy {:.4}",
                i + 1,
                outcome.best_val_accuracy
            );
        }
        fold_accuracy.push(outcome.best_val_accuracy);
    }
    let mean = fold_accuracy.iter().sum::<f64>() / k as f64;
    let std = (fold_accuracy
        .iter()
        .map(|a| (a - mean).powi(2))
        .sum::<f64>()
        / (k - 1) as f64)
        .sqrt();
    Ok(CrossValidation {
        fold_accuracy,
        mean,
        std,
    })
}
