//! The default recipe and loader of each dataset the programs train on (the recipes are the
//! best found so far, see docs/performance.md).

use crate::choices::{OptimizerKind, ScheduleKind};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use kiln_data::{
    download_cifar10, load_cifar10, load_idx_dir, Dataset, Preprocessing,
    DEFAULT_WHITENING_EPSILON, FASHION_MNIST_CLASSES,
};
use kiln_nn::{ActivationKind, Precision};
use std::path::Path;

fn base(dataset: &str) -> TrainConfig {
    TrainConfig {
        dataset: dataset.into(),
        hidden: vec![512, 512],
        activation: ActivationKind::Relu,
        batch_norm: true,
        dropout: 0.2,
        optimizer: OptimizerKind::Adam,
        lr: 1e-3,
        schedule: ScheduleKind::Cosine,
        warmup_epochs: 0,
        weight_decay: 0.0,
        label_smoothing: 0.0,
        epochs: 20,
        batch_size: 128,
        seed: 1,
        patience: 5,
        monitor_every: 100,
        preprocessing: Preprocessing::PerChannel,
        validation: 5_000,
        limit_train: None,
        augmentation: Default::default(),
        ema_decay: 0.0,
        whiten_epsilon: DEFAULT_WHITENING_EPSILON,
        restore_best: true,
        precision: Precision::F32,
        regularization: Default::default(),
        loss: Default::default(),
        layout: Default::default(),
    }
}

/// Fashion-MNIST: 784-512-512-10 with batch norm and dropout 0.2, Adam 1e-3 with cosine
/// decay, 20 epochs of batch 128.
pub fn fashion_mnist_recipe() -> TrainConfig {
    base("fashion-mnist")
}

/// CIFAR-10: 3072-1024-512-10 with batch norm and dropout 0.2, Adam 1e-3 with one warm-up
/// epoch and cosine decay, 30 epochs of batch 256.
pub fn cifar10_recipe() -> TrainConfig {
    TrainConfig {
        hidden: vec![1024, 512],
        warmup_epochs: 1,
        epochs: 30,
        batch_size: 256,
        patience: 8,
        ..base("cifar10")
    }
}

/// Fashion-MNIST's (train, test) from a directory of IDX files (it cannot be downloaded here).
pub fn load_fashion_mnist(dir: &Path, download: bool) -> Result<(Dataset, Dataset)> {
    if download {
        return Err(TrainError::Flag {
            flag: "--download",
            value: "set".into(),
            allowed: "CIFAR-10 only; Fashion-MNIST comes from apt-get install \
                      dataset-fashion-mnist or --data DIR"
                .into(),
        });
    }
    Ok(load_idx_dir(dir, "fashion-mnist", &FASHION_MNIST_CLASSES)?)
}

/// CIFAR-10's (train, test), downloading the official archive first when asked or missing.
pub fn load_cifar10_dataset(dir: &Path, download: bool) -> Result<(Dataset, Dataset)> {
    let missing = load_cifar10(dir).is_err();
    if download || missing {
        download_cifar10(dir)?;
    }
    Ok(load_cifar10(dir)?)
}
