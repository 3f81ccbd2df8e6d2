//! Bring your own model: a residual MLP written here, in the example, trained by Kiln's Learner
//! on Fashion-MNIST with everything the programs get (monitoring, validation, early stopping,
//! checkpoints, the report), then loaded back from its checkpoint into a fresh instance.
//!
//!     cargo run --release --example custom_model -- --device cpu --out runs/custom
//!
//! The last line is the same JSON summary the training programs print.

use clap::Parser;
use kiln::data::{DeviceDataset, FASHION_MNIST_SYSTEM_DIR};
use kiln::prelude::*;
use kiln::train::cli::usable_gpu;
use kiln::train::{evaluate, load_fashion_mnist, load_weights, Outcome};
use std::path::PathBuf;
use std::process::ExitCode;

/// input → relu(x·W + b), then a residual block h + f(h) with f = relu(·W1 + b1)·W2 + b2, then
/// the class scores. Layers have one-word names, so the monitors report each of them.
struct ResidualMlp<B: Backend> {
    input: Linear<B>,
    inner: Linear<B>,
    back: Linear<B>,
    output: Linear<B>,
}

impl<B: Backend> ResidualMlp<B> {
    fn new(inputs: usize, width: usize, classes: usize, seed: u64, b: &B) -> Result<Self> {
        let relu = Some(UnaryOp::Relu);
        let he = Init::HeNormal(Fan::In);
        let small = Init::Normal { std: 0.01 };
        Ok(ResidualMlp {
            input: Linear::new("input", inputs, width, he, relu, seed, b)?,
            inner: Linear::new("inner", width, width, he, relu, seed + 1, b)?,
            back: Linear::new("back", width, width, Init::XavierNormal, None, seed + 2, b)?,
            // Small output weights: nearly uniform first predictions, a first loss near ln C.
            output: Linear::new("output", width, classes, small, None, seed + 3, b)?,
        })
    }
}

impl<B: Backend> Module<B> for ResidualMlp<B> {
    fn forward(&self, x: &Var<B>) -> Result<Var<B>> {
        let outputs = self.forward_each(x)?;
        Ok(outputs.last().expect("four layers").value.clone())
    }

    /// Every layer's output, for the monitors: the block's inner activation included.
    fn forward_each(&self, x: &Var<B>) -> Result<Vec<LayerOutput<B>>> {
        let h = self.input.forward(x)?;
        let inner = self.inner.forward(&h)?;
        let block = h.add(&self.back.forward(&inner)?)?;
        let logits = self.output.forward(&block)?;
        let output = |layer: &str, activation, value| LayerOutput {
            layer: layer.into(),
            activation,
            value,
        };
        let relu = Some(UnaryOp::Relu);
        Ok(vec![
            output("input", relu, h),
            output("inner", relu, inner),
            output("back", None, block),
            output("output", None, logits),
        ])
    }

    fn parameters(&self) -> Vec<Parameter<B>> {
        [&self.input, &self.inner, &self.back, &self.output]
            .iter()
            .flat_map(|l| l.parameters())
            .collect()
    }
}

#[derive(Parser, Debug)]
#[command(about = "Train a residual MLP written in this example on Fashion-MNIST")]
struct Args {
    /// gpu (the best adapter, falling back to the CPU) or cpu.
    #[arg(long, default_value = "gpu", value_parser = ["gpu", "cpu"])]
    device: String,
    /// The directory of the four Fashion-MNIST IDX files.
    #[arg(long, default_value = FASHION_MNIST_SYSTEM_DIR)]
    data: PathBuf,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Units of the hidden layers and the residual block.
    #[arg(long, default_value_t = 256)]
    width: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory: metrics.jsonl, report.svg, checkpoint.safetensors, config.json.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match usable_gpu(&args.device) {
        Some(gpu) => {
            let adapter = gpu.adapter_info().name.clone();
            run(&args, &gpu, "gpu", &adapter)
        }
        None => run(&args, &CpuBackend::new(), "cpu", "cpu"),
    };
    match result {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run<B: Backend>(
    args: &Args,
    backend: &B,
    device: &str,
    adapter: &str,
) -> std::result::Result<String, Box<dyn std::error::Error>> {
    let (train_set, test_set) = load_fashion_mnist(&args.data, false)?;
    let mut learner = Learner::new().epochs(args.epochs).seed(args.seed);
    if let Some(out) = &args.out {
        learner = learner.out(out);
    }
    let data = RunData::prepare(&train_set, test_set, learner.settings())?;
    let (features, classes) = (data.train.features(), data.train.classes());
    println!(
        "fashion-mnist: {} training, {} validation, {} test samples on {device} ({adapter}); \
         a residual MLP of width {} written in examples/custom_model.rs",
        data.train.len(),
        data.validation.len(),
        data.test.len(),
        args.width
    );
    let model = ResidualMlp::new(features, args.width, classes, args.seed, backend)?;
    let (_, outcome) = learner.fit(backend, model, &data)?;
    println!("test accuracy {:.4}", outcome.test.accuracy);
    if let Some(out) = &args.out {
        reload(out, &data, args, backend, &outcome)?;
    }
    Ok(serde_json::json!({
        "dataset": "fashion-mnist",
        "model": "residual-mlp",
        "device": device,
        "adapter": adapter,
        "epochs": outcome.epochs_run,
        "train_samples": data.train.len(),
        "test_accuracy": outcome.test.accuracy,
        "best_val_accuracy": outcome.best_val_accuracy,
        "train_seconds": outcome.train_seconds,
        "epoch_seconds": outcome.epoch_seconds,
        "samples_per_second": outcome.samples_per_second,
    })
    .to_string())
}

/// The checkpoint's weights, loaded by name into a fresh instance (other initial weights),
/// give the same test accuracy.
fn reload<B: Backend>(
    out: &std::path::Path,
    data: &RunData,
    args: &Args,
    backend: &B,
    outcome: &Outcome,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let (features, classes) = (data.train.features(), data.train.classes());
    let mut fresh = ResidualMlp::new(features, args.width, classes, args.seed + 100, backend)?;
    load_weights(&out.join("checkpoint.safetensors"), &mut fresh, true)?;
    let test = DeviceDataset::upload(&data.test, &data.normalization, backend, None)?;
    let again = evaluate(&mut fresh, &test, classes, 256)?;
    println!(
        "checkpoint loaded into a fresh ResidualMlp: test accuracy {:.4} ({})",
        again.accuracy,
        if again.accuracy == outcome.test.accuracy {
            "the same"
        } else {
            "DIFFERENT"
        }
    );
    Ok(())
}
