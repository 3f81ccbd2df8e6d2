//! Trains the reference CNN on Fashion-MNIST (offline: Debian's dataset-fashion-mnist package,
//! or --data DIR with the four IDX files): two conv-BN-ReLU-pool blocks and a small classifier,
//! with random flips and label smoothing by default. The same flags as the MLP programs;
//! `--augment none --label-smoothing 0 --optimizer adam --lr 0.001 --schedule cosine
//! --batch-size 128` is exactly the PyTorch baseline's recipe.
//!
//!     cargo run --release --example fashion_mnist_cnn -- --help

use kiln::data::FASHION_MNIST_SYSTEM_DIR;
use kiln::train::cli::{main as cli_main, Program};
use kiln::train::{fashion_mnist_cnn_recipe, load_fashion_mnist};
use std::process::ExitCode;

fn main() -> ExitCode {
    cli_main(Program {
        dataset: "fashion-mnist",
        default_data_dir: FASHION_MNIST_SYSTEM_DIR.into(),
        defaults: fashion_mnist_cnn_recipe(),
        load: load_fashion_mnist,
    })
}
