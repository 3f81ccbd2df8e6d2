//! Test-time augmentation: each test image's prediction averaged over transformed copies of
//! it, here the image and its mirror image (`Tta::Flip`), for models trained with flips.

use crate::error::Result;
use crate::trainer::{halving_batches, predict_probabilities};
use kiln_autograd::{no_grad, Var};
use kiln_data::{DataError, DeviceDataset};
use kiln_nn::Module;
use kiln_tensor::{Backend, Tensor};

/// Which copies of each test image are predicted and averaged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tta {
    /// The image alone.
    #[default]
    None,
    /// The image and its horizontal mirror: the mean of the two softmax predictions.
    Flip,
}

/// The softmax probabilities of `model` (evaluation mode) for every sample of `data` under
/// `tta`, [len, classes] row-major on the host, and the mean cross-entropy of the averaged
/// prediction: one read-back. Batches whose activations do not fit the device's
/// storage-binding limit are halved until they do.
pub fn predict_with_tta<B: Backend, M: Module<B> + ?Sized>(
    model: &mut M,
    data: &DeviceDataset<B>,
    batch_size: usize,
    tta: Tta,
) -> Result<(Vec<f32>, f64)> {
    if tta == Tta::None {
        return predict_probabilities(model, data, batch_size);
    }
    halving_batches(batch_size, |size| predict_flipped(model, data, size))
}

/// The mean of each sample's prediction and its mirror image's.
fn predict_flipped<B: Backend, M: Module<B> + ?Sized>(
    model: &mut M,
    data: &DeviceDataset<B>,
    batch_size: usize,
) -> Result<(Vec<f32>, f64)> {
    model.set_training(false);
    let mut probabilities: Vec<Tensor<B>> = Vec::new();
    let predicted = no_grad(|| -> Result<()> {
        for start in (0..data.len()).step_by(batch_size) {
            let len = batch_size.min(data.len() - start);
            let (x, _) = data.batch(&data.in_order().narrow(0, start, len)?)?;
            if x.rank() != 4 {
                return Err(DataError::Invalid(format!(
                    "test-time flips need image batches [N, C, H, W] (a CNN's checkpoint); this model takes {}",
                    x.shape()
                ))
                .into());
            }
            let plain = model
                .forward(&Var::constant(x.clone()))?
                .value()
                .softmax()?;
            let mirrored = model
                .forward(&Var::constant(x.flip_width()?))?
                .value()
                .softmax()?;
            probabilities.push(((plain + &mirrored)? * 0.5)?);
        }
        Ok(())
    });
    model.set_training(true);
    predicted?;
    let reads: Vec<&Tensor<B>> = probabilities.iter().collect();
    let probs: Vec<f32> = Tensor::read_many(&reads)?
        .iter()
        .flat_map(|h| h.to_f64_vec().into_iter().map(|v| v as f32))
        .collect();
    let classes = probs.len() / data.len().max(1);
    let loss = data
        .labels()
        .iter()
        .enumerate()
        .map(|(i, &label)| -(probs[i * classes + label as usize].max(1e-12) as f64).ln())
        .sum::<f64>()
        / data.len().max(1) as f64;
    Ok((probs, loss))
}
