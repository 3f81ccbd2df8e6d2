//! Inference from a checkpoint alone: the architecture and preprocessing come from the file,
//! so evaluating the test set reproduces the accuracy the training run reported.

use crate::checkpoint::Checkpoint;
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::metrics::Evaluation;
use crate::trainer::{build_model, evaluate};
use kiln_data::{Dataset, DeviceDataset, Normalization, Preprocessing};
use kiln_nn::{Module, Sequential};
use kiln_tensor::Backend;
use std::path::Path;

/// The model (in evaluation mode), its preprocessing and its configuration.
pub fn load_model<B: Backend>(
    path: &Path,
    backend: &B,
) -> Result<(Sequential<B>, Normalization, TrainConfig)> {
    let c = Checkpoint::load(path)?;
    let config: TrainConfig =
        serde_json::from_str(c.get_meta(path, "config")?).map_err(|e| TrainError::Checkpoint {
            path: path.into(),
            message: format!("unreadable config metadata: {e}"),
        })?;
    let architecture: serde_json::Value = serde_json::from_str(c.get_meta(path, "architecture")?)
        .map_err(|e| TrainError::Checkpoint {
        path: path.into(),
        message: format!("unreadable architecture metadata: {e}"),
    })?;
    if architecture["kind"] == "custom" {
        return Err(TrainError::Checkpoint {
            path: path.into(),
            message: "it holds the weights of a module of the caller's own, which only that \
                      module's code can build: build it and load the weights with load_weights"
                .into(),
        });
    }
    let widths: Vec<usize> = architecture["widths"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|w| w.as_u64())
                .map(|w| w as usize)
                .collect()
        })
        .unwrap_or_default();
    if widths.len() < 2 {
        return Err(TrainError::Checkpoint {
            path: path.into(),
            message: "the architecture metadata has no layer widths".into(),
        });
    }
    let mut model = build_model(&config, widths[0], widths[widths.len() - 1], backend)?;
    for p in model.parameters() {
        p.set(c.tensor(path, &format!("param.{}", p.name()), backend)?);
    }
    for name in c.names_with("buffer.") {
        model.set_buffer(&name, &c.tensor(path, &format!("buffer.{name}"), backend)?)?;
    }
    model.set_training(false);
    let read =
        |name: &str| -> Result<Vec<f32>> { Ok(c.tensor(path, name, backend)?.to_vec::<f32>()?) };
    let kind = Preprocessing::from_name(c.get_meta(path, "preprocessing")?)
        .unwrap_or(Preprocessing::PerChannel);
    let normalization = Normalization {
        kind,
        mean: read("preprocess.mean")?,
        std: read("preprocess.std")?,
        whitening: if c.tensors.contains_key("preprocess.whitening") {
            Some(read("preprocess.whitening")?)
        } else {
            None
        },
    };
    Ok((model, normalization, config))
}

/// Evaluates the checkpoint at `path` on `data`.
pub fn evaluate_checkpoint<B: Backend>(
    path: &Path,
    data: &Dataset,
    backend: &B,
) -> Result<Evaluation> {
    let (mut model, normalization, config) = load_model(path, backend)?;
    let device = DeviceDataset::upload(data, &normalization, backend, None)?;
    evaluate(
        &mut model,
        &device,
        data.classes(),
        config.batch_size.max(256),
    )
}
