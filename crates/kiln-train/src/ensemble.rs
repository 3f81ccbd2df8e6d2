//! Ensembles: the predictions of several trained models averaged (the mean of their softmax
//! probabilities), evaluated beside each member.

use crate::error::Result;
use crate::metrics::Evaluation;
use crate::trainer::predict_probabilities;
use kiln_data::{DataError, DeviceDataset};
use kiln_nn::Sequential;
use kiln_tensor::Backend;
use serde::Serialize;

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
    if models.is_empty() {
        return Err(DataError::Invalid("an ensemble needs at least one model".into()).into());
    }
    let mut members = Vec::with_capacity(models.len());
    let mut sum = vec![0f64; data.len() * classes];
    for model in models.iter_mut() {
        let (probs, loss) = predict_probabilities(model, data, batch_size)?;
        for (s, &p) in sum.iter_mut().zip(&probs) {
            *s += p as f64;
        }
        members.push(Evaluation::from_probabilities(
            &probs,
            data.labels(),
            classes,
            loss,
        ));
    }
    let k = models.len() as f64;
    let mean: Vec<f32> = sum.iter().map(|&s| (s / k) as f32).collect();
    let loss = data
        .labels()
        .iter()
        .enumerate()
        .map(|(i, &l)| -(mean[i * classes + l as usize].max(1e-12) as f64).ln())
        .sum::<f64>()
        / data.len().max(1) as f64;
    let ensemble = Evaluation::from_probabilities(&mean, data.labels(), classes, loss);
    Ok(EnsembleEvaluation { members, ensemble })
}
