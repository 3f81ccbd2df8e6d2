//! Trains an MLP on Fashion-MNIST (offline: Debian's dataset-fashion-mnist package, or
//! --data DIR with the four IDX files).
//!
//!     cargo run --release --example fashion_mnist_mlp -- --help

use kiln::data::{load_idx_dir, FASHION_MNIST_CLASSES, FASHION_MNIST_SYSTEM_DIR};
use kiln::train::cli::{main as cli_main, Program};
use kiln::train::{TrainConfig, TrainError};
use std::process::ExitCode;

fn main() -> ExitCode {
    cli_main(Program {
        dataset: "fashion-mnist",
        default_data_dir: FASHION_MNIST_SYSTEM_DIR.into(),
        defaults: TrainConfig {
            dataset: "fashion-mnist".into(),
            hidden: vec![512, 512],
            activation: "relu".into(),
            batch_norm: true,
            dropout: 0.2,
            optimizer: "adam".into(),
            lr: 1e-3,
            schedule: "cosine".into(),
            warmup_epochs: 0,
            weight_decay: 0.0,
            label_smoothing: 0.0,
            epochs: 20,
            batch_size: 128,
            seed: 1,
            patience: 5,
            monitor_every: 100,
            preprocessing: "per-channel".into(),
            validation: 5_000,
            limit_train: None,
            augmentation: Default::default(),
            ema_decay: 0.0,
            whiten_epsilon: kiln::data::DEFAULT_WHITENING_EPSILON,
        },
        load: |dir, download| {
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
        },
    })
}
