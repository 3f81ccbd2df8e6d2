//! Ensembles: the predictions of several trained models averaged (the mean of their softmax
//! probabilities), evaluated beside each member.

use crate::config::InputLayout;
use crate::error::Result;
use crate::metrics::Evaluation;
use crate::predict::load_model;
use crate::trainer::predict_probabilities;
use crate::tta::{predict_with_tta, Tta};
use kiln_data::{DataError, Dataset, DeviceDataset};
use kiln_nn::Sequential;
use kiln_tensor::Backend;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Clone, Debug, Serialize)]
pub struct EnsembleEvaluation {
    pub members: Vec<Evaluation>,
    pub ensemble: Evaluation,
}

/// Evaluates each model and their averaged prediction on `data`.
pub fn evaluate_ensemble<B: Backend>(
    models: &mut [Sequential<B>],
    data: &DeviceDataset<B>,
    classes: usize,
    batch_size: usize,
) -> Result<EnsembleEvaluation> {
    let predictions = models
        .iter_mut()
        .map(|model| predict_probabilities(model, data, batch_size))
        .collect::<Result<Vec<_>>>()?;
    combine(&predictions, data.labels(), classes)
}

/// The ensemble of saved checkpoints (each with its own architecture and preprocessing, e.g.
/// the members of different runs) evaluated on `data`, each member's predictions averaged over
/// `tta`'s copies of every image.
pub fn evaluate_checkpoint_ensemble<B: Backend>(
    paths: &[PathBuf],
    data: &Dataset,
    backend: &B,
    tta: Tta,
) -> Result<EnsembleEvaluation> {
    let predictions = paths
        .iter()
        .map(|path| {
            let (mut model, normalization, config) = load_model(path, backend)?;
            let images = config.layout == InputLayout::Images;
            let device =
                DeviceDataset::upload(data, &normalization, backend, None)?.image_batches(images);
            predict_with_tta(&mut model, &device, config.batch_size.max(256), tta)
        })
        .collect::<Result<Vec<_>>>()?;
    combine(&predictions, &data.labels, data.classes())
}

/// Each member's evaluation and that of the mean of their (probabilities, loss) predictions.
fn combine(
    predictions: &[(Vec<f32>, f64)],
    labels: &[u8],
    classes: usize,
) -> Result<EnsembleEvaluation> {
    if predictions.is_empty() {
        return Err(DataError::Invalid("an ensemble needs at least one model".into()).into());
    }
    let mut members = Vec::with_capacity(predictions.len());
    let mut sum = vec![0f64; labels.len() * classes];
    for (probs, loss) in predictions {
        for (s, &p) in sum.iter_mut().zip(probs) {
            *s += p as f64;
        }
        members.push(Evaluation::from_probabilities(
            probs, labels, classes, *loss,
        ));
    }
    let k = predictions.len() as f64;
    let mean: Vec<f32> = sum.iter().map(|&s| (s / k) as f32).collect();
    let loss = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| -(mean[i * classes + l as usize].max(1e-12) as f64).ln())
        .sum::<f64>()
        / labels.len().max(1) as f64;
    let ensemble = Evaluation::from_probabilities(&mean, labels, classes, loss);
    Ok(EnsembleEvaluation { members, ensemble })
}
