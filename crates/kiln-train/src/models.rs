//! The models the programs build from a configuration: the MLP, the reference CNN of the
//! Fashion-MNIST recipe and the deeper CNN of the CIFAR-10 recipe. Each is a `Sequential` of
//! Kiln's layers, so its description travels in the checkpoint. Layer seeds are spread from
//! the run's seed; the output layer starts small (N(0, 0.01²)) so the initial loss is ln C.

use crate::choices::ModelKind;
use crate::config::TrainConfig;
use crate::error::Result;
use kiln_nn::{
    Activation, BatchNorm2d, Conv2d, Conv2dConfig, Dropout, Fan, Flatten, GlobalAvgPool, Init,
    Linear, Mlp, Module, Pool2d, Sequential,
};
use kiln_tensor::{Backend, ImageShape};

/// The model `config.model` names, for images of `image` and `classes` outputs.
pub fn build_model<B: Backend>(
    config: &TrainConfig,
    image: ImageShape,
    classes: usize,
    backend: &B,
) -> Result<Sequential<B>> {
    let mut model = match config.model {
        ModelKind::Mlp => Mlp::new(&config.widths(image.features(), classes))
            .activation(config.activation.op())
            .batch_norm(config.batch_norm)
            .dropout(config.dropout)
            .seed(config.seed)
            .build(backend)?,
        ModelKind::SmallCnn => small_cnn(config, image, classes, backend)?,
        ModelKind::DeepCnn => deep_cnn(config, image, classes, backend)?,
    };
    model.set_precision(config.precision);
    Ok(model)
}

/// Layer seeds spread from the run's seed, as the MLP's.
fn seed(config: &TrainConfig, layer: u64) -> u64 {
    config.seed.wrapping_mul(1_000_003).wrapping_add(layer)
}

/// conv 3×3 (no bias: the batch norm shifts) → BatchNorm2d → activation, then an optional
/// 2×2 max pooling.
fn conv_block<B: Backend>(
    model: Sequential<B>,
    (name, layer): (&str, u64),
    (inputs, outputs): (usize, usize),
    pool: bool,
    config: &TrainConfig,
    backend: &B,
) -> Result<Sequential<B>> {
    let conv = Conv2dConfig::new(inputs, outputs, 3).padding(1).bias(false);
    let init = Init::HeNormal(Fan::In);
    let mut model = model
        .push(Conv2d::new(name, conv, init, seed(config, layer), backend)?)
        .push(BatchNorm2d::new(format!("{name}.bn"), outputs, backend)?)
        .push(Activation(config.activation.op()));
    if pool {
        model = model.push(Pool2d::max(2));
    }
    Ok(model)
}

/// The reference CNN: conv 3×3 (C→32) - BN - ReLU - max pool 2, conv 3×3 (32→64) - BN - ReLU -
/// max pool 2, flatten, linear → `hidden[0]` (128) - ReLU - dropout, linear → classes.
fn small_cnn<B: Backend>(
    config: &TrainConfig,
    image: ImageShape,
    classes: usize,
    backend: &B,
) -> Result<Sequential<B>> {
    let mut model = Sequential::new();
    model = conv_block(
        model,
        ("conv0", 0),
        (image.channels, 32),
        true,
        config,
        backend,
    )?;
    model = conv_block(model, ("conv1", 1), (32, 64), true, config, backend)?;
    let flat = 64 * (image.height / 4) * (image.width / 4);
    let hidden = config.hidden.first().copied().unwrap_or(128);
    model = model.push(Flatten).push(Linear::new(
        "fc0",
        flat,
        hidden,
        Init::HeNormal(Fan::In),
        Some(config.activation.op()),
        seed(config, 2),
        backend,
    )?);
    if config.dropout > 0.0 {
        model =
            model.push(Dropout::new(config.dropout, seed(config, 3) ^ 0xD0)?.named("fc0.dropout"));
    }
    Ok(model.push(Linear::new(
        "fc1",
        hidden,
        classes,
        Init::Normal { std: 0.01 },
        None,
        seed(config, 4),
        backend,
    )?))
}

/// The CIFAR-10 CNN: conv-BN-ReLU blocks of 64, 64 (pool), 128, 128 (pool), 256, 256 (pool),
/// global average pooling, dropout, linear → classes.
fn deep_cnn<B: Backend>(
    config: &TrainConfig,
    image: ImageShape,
    classes: usize,
    backend: &B,
) -> Result<Sequential<B>> {
    let blocks = [
        (image.channels, 64, false),
        (64, 64, true),
        (64, 128, false),
        (128, 128, true),
        (128, 256, false),
        (256, 256, true),
    ];
    let mut model = Sequential::new();
    for (i, (inputs, outputs, pool)) in blocks.into_iter().enumerate() {
        let name = format!("conv{i}");
        model = conv_block(
            model,
            (&name, i as u64),
            (inputs, outputs),
            pool,
            config,
            backend,
        )?;
    }
    model = model.push(GlobalAvgPool);
    if config.dropout > 0.0 {
        model =
            model.push(Dropout::new(config.dropout, seed(config, 9) ^ 0xD0)?.named("head.dropout"));
    }
    Ok(model.push(Linear::new(
        "head",
        256,
        classes,
        Init::Normal { std: 0.01 },
        None,
        seed(config, 10),
        backend,
    )?))
}
