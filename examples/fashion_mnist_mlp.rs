//! Trains an MLP on Fashion-MNIST (offline: Debian's dataset-fashion-mnist package, or
//! --data DIR with the four IDX files).
//!
//!     cargo run --release --example fashion_mnist_mlp -- --help

use kiln::data::FASHION_MNIST_SYSTEM_DIR;
use kiln::train::cli::{main as cli_main, Program};
use kiln::train::{fashion_mnist_recipe, load_fashion_mnist};
use std::process::ExitCode;

fn main() -> ExitCode {
    cli_main(Program {
        dataset: "fashion-mnist",
        default_data_dir: FASHION_MNIST_SYSTEM_DIR.into(),
        defaults: fashion_mnist_recipe(),
        load: load_fashion_mnist,
    })
}
