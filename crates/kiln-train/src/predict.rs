//! Inference from a checkpoint alone: the architecture and preprocessing come from the file,
//! so evaluating the test set reproduces the accuracy the training run reported.

use crate::checkpoint::Checkpoint;
use crate::config::{InputLayout, TrainConfig};
use crate::error::{Result, TrainError};
use crate::metrics::Evaluation;
use crate::models::build_model;
use crate::tta::{predict_with_tta, Tta};
use kiln_data::{Dataset, DeviceDataset, Normalization, Preprocessing};
use kiln_nn::{LayerSpec, Module, Sequential};
use kiln_tensor::{Backend, ImageShape};
use std::path::Path;

/// The configuration a checkpoint was trained with (its `config` metadata).
pub fn checkpoint_config(path: &Path) -> Result<TrainConfig> {
    config_of(path, &Checkpoint::load(path)?)
}

fn config_of(path: &Path, c: &Checkpoint) -> Result<TrainConfig> {
    serde_json::from_str(c.get_meta(path, "config")?).map_err(|e| TrainError::Checkpoint {
        path: path.into(),
        message: format!("unreadable config metadata: {e}"),
    })
}

/// The model a checkpoint describes, with fresh weights (what `--resume` restores into and
/// `load_model` loads into): the layer stack in its `architecture` metadata, or for a
/// checkpoint written before the stack was stored, the MLP its widths and configuration give.
pub fn described_model<B: Backend>(
    path: &Path,
    c: &Checkpoint,
    backend: &B,
) -> Result<Sequential<B>> {
    let config = config_of(path, c)?;
    let unreadable = |message: String| TrainError::Checkpoint {
        path: path.into(),
        message,
    };
    let architecture: serde_json::Value =
        serde_json::from_str(c.get_meta(path, "architecture")?)
            .map_err(|e| unreadable(format!("unreadable architecture metadata: {e}")))?;
    let mut model = match architecture["kind"].as_str() {
        Some("layers") => {
            let spec: LayerSpec = serde_json::from_value(architecture["spec"].clone())
                .map_err(|e| unreadable(format!("unreadable layer description: {e}")))?;
            match spec {
                LayerSpec::Sequential { layers } => kiln_nn::sequential(&layers, backend)?,
                layer => Sequential::new().push_boxed(layer.build(backend)?),
            }
        }
        Some("mlp") => {
            let widths: Vec<usize> = serde_json::from_value(architecture["widths"].clone())
                .map_err(|e| unreadable(format!("the architecture's widths: {e}")))?;
            if widths.len() < 2 {
                return Err(unreadable(
                    "the architecture metadata has no layer widths".into(),
                ));
            }
            let image = ImageShape {
                channels: 1,
                height: 1,
                width: widths[0],
            };
            build_model(&config, image, widths[widths.len() - 1], backend)?
        }
        _ => {
            return Err(unreadable(
                "it holds the weights of a module of the caller's own, which only that \
                 module's code can build: build it and load the weights with load_weights"
                    .into(),
            ))
        }
    };
    model.set_precision(config.precision);
    Ok(model)
}

/// The model (in evaluation mode), its preprocessing and its configuration.
pub fn load_model<B: Backend>(
    path: &Path,
    backend: &B,
) -> Result<(Sequential<B>, Normalization, TrainConfig)> {
    let c = Checkpoint::load(path)?;
    let config = config_of(path, &c)?;
    let mut model = described_model(path, &c, backend)?;
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
    evaluate_checkpoint_with(path, data, backend, Tta::None)
}

/// Evaluates the checkpoint at `path` on `data`, each prediction averaged over `tta`'s copies.
pub fn evaluate_checkpoint_with<B: Backend>(
    path: &Path,
    data: &Dataset,
    backend: &B,
    tta: Tta,
) -> Result<Evaluation> {
    let (mut model, normalization, config) = load_model(path, backend)?;
    let images = config.layout == InputLayout::Images;
    let device = DeviceDataset::upload(data, &normalization, backend, None)?.image_batches(images);
    let batch_size = config.batch_size.max(256);
    let (probs, loss) = predict_with_tta(&mut model, &device, batch_size, tta)?;
    Ok(Evaluation::from_probabilities(
        &probs,
        &data.labels,
        data.classes(),
        loss,
    ))
}
