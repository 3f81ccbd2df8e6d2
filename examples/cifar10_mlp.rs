//! Trains an MLP on CIFAR-10, downloading the official binary archive into --data (default
//! ./data) on first use.
//!
//!     cargo run --release --example cifar10_mlp -- --help

use kiln::data::{download_cifar10, load_cifar10};
use kiln::train::cli::{main as cli_main, Program};
use kiln::train::TrainConfig;
use std::process::ExitCode;

fn main() -> ExitCode {
    cli_main(Program {
        dataset: "cifar10",
        default_data_dir: "data".into(),
        defaults: TrainConfig {
            dataset: "cifar10".into(),
            hidden: vec![1024, 512],
            activation: "relu".into(),
            batch_norm: true,
            dropout: 0.2,
            optimizer: "adam".into(),
            lr: 1e-3,
            schedule: "cosine".into(),
            warmup_epochs: 1,
            weight_decay: 0.0,
            label_smoothing: 0.0,
            epochs: 30,
            batch_size: 256,
            seed: 1,
            patience: 8,
            monitor_every: 100,
            preprocessing: "per-channel".into(),
            validation: 5_000,
            limit_train: None,
            augmentation: Default::default(),
            ema_decay: 0.0,
            whiten_epsilon: kiln::data::DEFAULT_WHITENING_EPSILON,
        },
        load: |dir, download| {
            // The README's command downloads on first use: without the batches, fetch them.
            let missing = load_cifar10(dir).is_err();
            if download || missing {
                download_cifar10(dir)?;
            }
            Ok(load_cifar10(dir)?)
        },
    })
}
