//! Trains a CNN on CIFAR-10 (six conv-BN-ReLU blocks of 64 to 256 channels, global average
//! pooling), with reflected random crops, flips and label smoothing, downloading the official
//! binary archive into --data (default ./data) on first use. The same flags as the MLP
//! programs.
//!
//!     cargo run --release --example cifar10_cnn -- --help

use kiln::train::cli::{main as cli_main, Program};
use kiln::train::{cifar10_cnn_recipe, load_cifar10_dataset};
use std::process::ExitCode;

fn main() -> ExitCode {
    cli_main(Program {
        dataset: "cifar10",
        default_data_dir: "data".into(),
        defaults: cifar10_cnn_recipe(),
        load: load_cifar10_dataset,
    })
}
