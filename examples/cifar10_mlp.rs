//! Trains an MLP on CIFAR-10, downloading the official binary archive into --data (default
//! ./data) on first use.
//!
//!     cargo run --release --example cifar10_mlp -- --help

use kiln::train::cli::{main as cli_main, Program};
use kiln::train::{cifar10_recipe, load_cifar10_dataset};
use std::process::ExitCode;

fn main() -> ExitCode {
    cli_main(Program {
        dataset: "cifar10",
        default_data_dir: "data".into(),
        defaults: cifar10_recipe(),
        load: load_cifar10_dataset,
    })
}
