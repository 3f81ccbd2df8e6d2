//! The command line shared by the example programs (`cifar10_mlp`, `fashion_mnist_mlp`):
//! flags, per-dataset defaults (the best recipe found, see docs/performance.md), device
//! choice with CPU fallback, and the run summary printed as the last line of stdout.

use crate::choices::{ModelKind, OptimizerKind, ScheduleKind};
use crate::config::{Loss, Regularization, TrainConfig};
use crate::error::{Result, TrainError};
use crate::modes::{run_on, Device, Mode};
use crate::predict::checkpoint_config;
use crate::trainer::check_writable;
use crate::tta::Tta;
use clap::Parser;
use kiln_cpu::CpuBackend;
use kiln_data::{Augmentation, Dataset, PaddingMode, Preprocessing, Transform};
use kiln_nn::{ActivationKind, Precision};
use kiln_tensor::wgpu::kernel_table;
use kiln_tensor::WgpuBackend;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug, Clone)]
pub struct Args {
    /// Where to train: gpu (the best Vulkan/Metal/DX12 adapter; KILN_ADAPTER picks one by
    /// name) or cpu. Falls back to cpu with a warning when no adapter is found.
    #[arg(long, default_value = "gpu", value_parser = ["gpu", "cpu"])]
    pub device: String,
    /// Time every GPU kernel on the device (timestamp queries) and print where the run's
    /// device time went, per kernel, when it ends. Slows training a little: each submit waits.
    #[arg(long)]
    pub profile_kernels: bool,
    /// Data directory.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Download the dataset into --data first (CIFAR-10 only).
    #[arg(long)]
    pub download: bool,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Split each batch into this many parts and accumulate their gradients before one step
    /// (less device memory, the same step; 1 = whole batches; doubled automatically when a
    /// batch does not fit the device)
    #[arg(long)]
    pub micro_batches: Option<usize>,
    #[arg(long)]
    pub lr: Option<f32>,
    /// The optimiser; lbfgs needs a full batch (--limit-train N --batch-size N).
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// The learning-rate schedule: inverse-time is lr / (1 + epochs done), plateau ÷10 when
    /// the validation loss stalls for 2 epochs.
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleKind>,
    #[arg(long)]
    pub warmup_epochs: Option<usize>,
    /// The model: mlp, small-cnn (two conv blocks; the CNN programs' default) or deep-cnn
    /// (six conv blocks).
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// Hidden layer widths, e.g. 1024,512 (a CNN's hidden linear layer: its first).
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// The hidden layers' activation.
    #[arg(long, value_enum)]
    pub activation: Option<ActivationKind>,
    /// Batch normalisation after every hidden layer (true or false).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub batch_norm: Option<bool>,
    #[arg(long)]
    pub dropout: Option<f32>,
    /// L2 weight decay (with --l1: the elastic net).
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// The training loss: cross-entropy, mse (against one-hot or CutMix's soft targets) or
    /// hinge (multiclass SVM, margin 1).
    #[arg(long, value_enum)]
    pub loss: Option<Loss>,
    /// λ1 of an L1 penalty λ1·Σ|w| on the weight matrices, added to the loss.
    #[arg(long)]
    pub l1: Option<f32>,
    /// Scale the gradients so their global L2 norm is at most this.
    #[arg(long)]
    pub clip_grad_norm: Option<f32>,
    /// Clamp every gradient element to [−V, V].
    #[arg(long)]
    pub clip_grad_value: Option<f32>,
    /// After every step, rescale each unit's incoming weights to L2 norm at most this.
    #[arg(long)]
    pub max_norm: Option<f32>,
    /// Check every op's output for NaN or Inf and stop at the first that produced one, naming
    /// it (slow: each op's output is read back).
    #[arg(long)]
    pub detect_anomaly: bool,
    #[arg(long)]
    pub label_smoothing: Option<f32>,
    /// Epochs without a better validation accuracy before stopping (0: never).
    #[arg(long)]
    pub patience: Option<usize>,
    /// f32, or mixed: f16 matrix products with f32 master weights and dynamic loss scaling.
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
    /// End with the best-validation epoch's parameters (true) or the last epoch's (false).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub restore_best: Option<bool>,
    /// How features are standardised (pca and zca whiten them too).
    #[arg(long, value_enum)]
    pub preprocessing: Option<Preprocessing>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Steps between monitoring snapshots.
    #[arg(long)]
    pub monitor_every: Option<usize>,
    /// Output directory: metrics.jsonl, report.svg, checkpoint.safetensors, config.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run whose outputs are in this directory: its model and settings come from
    /// its checkpoint (flags given now override the settings).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Train on N samples without regularisation (500 full-batch steps unless --epochs) and
    /// report whether the loss reaches ~0.
    #[arg(long)]
    pub overfit_tiny: Option<usize>,
    /// Training samples held out for validation (default 5000).
    #[arg(long)]
    pub validation: Option<usize>,
    /// Use only the first N training samples.
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Only evaluate this checkpoint on the test set; several, comma-separated, are evaluated
    /// as an ensemble (their averaged predictions, each member beside it).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub evaluate: Vec<PathBuf>,
    /// Test-time augmentation for --evaluate: flip averages each test image's prediction with
    /// its mirror image's (for models trained with flips).
    #[arg(long, value_enum, default_value_t = Tta::None)]
    pub tta: Tta,
    /// Keep an exponential moving average of the weights with this decay (e.g. 0.999) and
    /// report its accuracy beside the raw weights' (0: off).
    #[arg(long)]
    pub ema: Option<f32>,
    /// ε added to the covariance eigenvalues for --preprocessing pca or zca.
    #[arg(long)]
    pub whiten_epsilon: Option<f32>,
    /// Train N models (seeds seed, seed + 1, …) and report the test accuracy of their
    /// averaged predictions beside each member's.
    #[arg(long)]
    pub ensemble: Option<usize>,
    /// K-fold cross-validation on the training set: train K models, each validated on one
    /// fold, and report the mean ± std of the validation accuracy.
    #[arg(long)]
    pub folds: Option<usize>,
    #[command(flatten)]
    pub augment: AugmentArgs,
}

/// Augmentation flags (each overrides the program's default).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AugmentArgs {
    /// Transforms applied to every training minibatch on the device, comma-separated:
    /// flip, crop, jitter, cutmix, affine, cowmix ("none" for none).
    #[arg(long, value_parser = transform_list)]
    pub augment: Option<Transforms>,
    /// Write a PNG grid of N augmented training images (augmented.png in --out, or the
    /// working directory) before training.
    #[arg(long)]
    pub save_augmented: Option<usize>,
    /// Probability of a horizontal flip (default 0.5).
    #[arg(long)]
    pub flip_p: Option<f32>,
    /// Pixels of padding around the image before the random crop (default 2).
    #[arg(long)]
    pub crop_padding: Option<usize>,
    /// How the crop pads (default zero).
    #[arg(long, value_enum)]
    pub crop_padding_mode: Option<PaddingMode>,
    /// Brightness factor range 1 ± x (default 0.2).
    #[arg(long)]
    pub jitter_brightness: Option<f32>,
    /// Contrast factor range 1 ± x (default 0.2).
    #[arg(long)]
    pub jitter_contrast: Option<f32>,
    /// Saturation factor range 1 ± x (default 0.2).
    #[arg(long)]
    pub jitter_saturation: Option<f32>,
    /// Probability that an image is jittered (default 1).
    #[arg(long)]
    pub jitter_p: Option<f32>,
    /// CutMix's Beta(α, α) parameter (default 1).
    #[arg(long)]
    pub cutmix_alpha: Option<f32>,
    /// Probability that an image gets a CutMix box (default 0.5).
    #[arg(long)]
    pub cutmix_p: Option<f32>,
    /// Random affine: maximum rotation in degrees (default 10).
    #[arg(long)]
    pub affine_degrees: Option<f32>,
    /// Random affine: maximum translation as a fraction of the side (default 0.1).
    #[arg(long)]
    pub affine_translate: Option<f32>,
    /// Random affine: scale drawn from 1 ± x (default 0.1).
    #[arg(long)]
    pub affine_scale: Option<f32>,
    /// Random affine: maximum horizontal shear in degrees (default 5).
    #[arg(long)]
    pub affine_shear: Option<f32>,
    /// Probability that an image gets a random affine transform (default 1).
    #[arg(long)]
    pub affine_p: Option<f32>,
    /// CowMix: the range of the masks' Gaussian smoothing σ in pixels, LOW,HIGH (default 2,6).
    #[arg(long, value_delimiter = ',', num_args = 2)]
    pub cowmix_sigma: Option<Vec<f32>>,
    /// CowMix: the range of the proportion taken from the partner, LOW,HIGH (default 0.2,0.5).
    #[arg(long, value_delimiter = ',', num_args = 2)]
    pub cowmix_proportion: Option<Vec<f32>>,
    /// CowMix: the probability that an image is mixed (default 0.5).
    #[arg(long)]
    pub cowmix_p: Option<f32>,
}

/// The transforms `--augment` lists (a named type, so clap parses the list as one value).
pub type Transforms = Vec<Transform>;

/// `flip,crop`, or `none`: the error lists the allowed names.
fn transform_list(list: &str) -> std::result::Result<Transforms, String> {
    list.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && *t != "none")
        .map(|t| t.parse::<Transform>().map_err(|e| format!("{e}, or none")))
        .collect()
}

impl AugmentArgs {
    /// `defaults` with every flag given here applied.
    pub fn apply(&self, defaults: &Augmentation) -> Augmentation {
        let mut a = defaults.clone();
        if let Some(list) = &self.augment {
            a.transforms = list.clone();
        }
        let set = |slot: &mut f32, v: Option<f32>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut a.flip_p, self.flip_p);
        set(&mut a.jitter_brightness, self.jitter_brightness);
        set(&mut a.jitter_contrast, self.jitter_contrast);
        set(&mut a.jitter_saturation, self.jitter_saturation);
        set(&mut a.jitter_p, self.jitter_p);
        set(&mut a.cutmix_alpha, self.cutmix_alpha);
        set(&mut a.cutmix_p, self.cutmix_p);
        set(&mut a.affine_degrees, self.affine_degrees);
        set(&mut a.affine_translate, self.affine_translate);
        set(&mut a.affine_scale, self.affine_scale);
        set(&mut a.affine_shear, self.affine_shear);
        set(&mut a.affine_p, self.affine_p);
        set(&mut a.cowmix_p, self.cowmix_p);
        if let Some(v) = &self.cowmix_sigma {
            a.cowmix_sigma = (v[0], v[v.len() - 1]);
        }
        if let Some(v) = &self.cowmix_proportion {
            a.cowmix_proportion = (v[0], v[v.len() - 1]);
        }
        if let Some(p) = self.crop_padding {
            a.crop_padding = p;
        }
        if let Some(m) = self.crop_padding_mode {
            a.crop_padding_mode = m;
        }
        a
    }
}

/// What differs between datasets: its loader and its default recipe.
pub struct Program {
    pub dataset: &'static str,
    pub default_data_dir: PathBuf,
    pub defaults: TrainConfig,
    /// Loads (train, test) from a directory, downloading first when asked.
    pub load: fn(&std::path::Path, bool) -> Result<(Dataset, Dataset)>,
}

impl Args {
    fn config(&self, defaults: &TrainConfig) -> TrainConfig {
        let d = defaults.clone();
        let mut c = TrainConfig {
            dataset: d.dataset,
            model: self.model.unwrap_or(d.model),
            hidden: self.hidden.clone().unwrap_or(d.hidden),
            activation: self.activation.unwrap_or(d.activation),
            batch_norm: self.batch_norm.unwrap_or(d.batch_norm),
            dropout: self.dropout.unwrap_or(d.dropout),
            optimizer: self.optimizer.unwrap_or(d.optimizer),
            lr: self.lr.unwrap_or(d.lr),
            schedule: self.schedule.unwrap_or(d.schedule),
            warmup_epochs: self.warmup_epochs.unwrap_or(d.warmup_epochs),
            weight_decay: self.weight_decay.unwrap_or(d.weight_decay),
            label_smoothing: self.label_smoothing.unwrap_or(d.label_smoothing),
            epochs: self.epochs.unwrap_or(d.epochs),
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            micro_batches: self.micro_batches.unwrap_or(d.micro_batches),
            seed: self.seed.unwrap_or(d.seed),
            patience: self.patience.unwrap_or(d.patience),
            restore_best: self.restore_best.unwrap_or(d.restore_best),
            monitor_every: self.monitor_every.unwrap_or(d.monitor_every),
            preprocessing: self.preprocessing.unwrap_or(d.preprocessing),
            validation: self.validation.unwrap_or(d.validation),
            limit_train: self.limit_train.or(d.limit_train),
            augmentation: self.augment.apply(&d.augmentation),
            ema_decay: self.ema.unwrap_or(d.ema_decay),
            whiten_epsilon: self.whiten_epsilon.unwrap_or(d.whiten_epsilon),
            precision: self.precision.unwrap_or(d.precision),
            regularization: Regularization {
                l1: self.l1.unwrap_or(d.regularization.l1),
                clip_grad_norm: self.clip_grad_norm.or(d.regularization.clip_grad_norm),
                clip_grad_value: self.clip_grad_value.or(d.regularization.clip_grad_value),
                max_norm: self.max_norm.or(d.regularization.max_norm),
            },
            loss: self.loss.unwrap_or(d.loss),
            layout: d.layout,
        };
        if let Some(n) = self.overfit_tiny {
            // No regularisation, the N samples in one batch, enough steps to memorise them.
            c.dropout = 0.0;
            c.weight_decay = 0.0;
            c.regularization = Regularization::default();
            c.label_smoothing = 0.0;
            c.limit_train = Some(n);
            c.batch_size = n.max(1);
            c.epochs = self.epochs.unwrap_or(500);
            c.schedule = ScheduleKind::Constant;
            c.warmup_epochs = 0;
            c.patience = 0;
            c.monitor_every = c.epochs.max(1);
            c.augmentation.transforms.clear();
        }
        c
    }
}

/// A resumed run keeps the model its checkpoint holds: a model flag that asks for another is
/// an error naming both.
fn same_model(config: &TrainConfig, saved: &TrainConfig, dir: &std::path::Path) -> Result<()> {
    let differs = [
        ("--model", config.model.to_string(), saved.model.to_string()),
        (
            "--hidden",
            format!("{:?}", config.hidden),
            format!("{:?}", saved.hidden),
        ),
        (
            "--activation",
            config.activation.name().into(),
            saved.activation.name().into(),
        ),
        (
            "--batch-norm",
            config.batch_norm.to_string(),
            saved.batch_norm.to_string(),
        ),
        (
            "--dropout",
            config.dropout.to_string(),
            saved.dropout.to_string(),
        ),
    ];
    match differs.into_iter().find(|(_, asked, held)| asked != held) {
        Some((flag, asked, held)) => Err(TrainError::flag(
            flag,
            asked,
            &format!(
                "{held}, the value of the run in {} (a resumed run keeps its model: drop the \
                 flag, or start a new run without --resume)",
                dir.display()
            ),
        )),
        None => Ok(()),
    }
}

/// The GPU backend when `device` is "gpu" and a hardware adapter is found (or KILN_ADAPTER
/// names a software one); otherwise None, after a warning saying why the CPU backend runs.
pub fn usable_gpu(device: &str) -> Option<WgpuBackend> {
    if device != "gpu" {
        return None;
    }
    match WgpuBackend::new() {
        // A software adapter (llvmpipe, WARP) runs WGSL on the CPU far slower than the CPU
        // backend: use it only when KILN_ADAPTER names it.
        Ok(gpu)
            if gpu.adapter_info().device_type == kiln_tensor::wgpu::DeviceType::Cpu
                && std::env::var_os("KILN_ADAPTER").is_none() =>
        {
            eprintln!(
                "warning: the only adapter is a software one ({}); training on the faster \
                 CPU backend (set KILN_ADAPTER={} to use the adapter anyway)",
                gpu.adapter_info().name,
                gpu.adapter_info()
                    .name
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
            );
            None
        }
        Ok(gpu) => Some(gpu),
        Err(e) => {
            eprintln!("warning: no GPU adapter ({e}); training on the CPU backend");
            None
        }
    }
}

/// Parses the command line and runs; the exit code is non-zero on any error, which is
/// printed as one clear message (never a panic).
pub fn main(program: Program) -> ExitCode {
    let args = Args::parse();
    match run(&program, &args) {
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

fn run(program: &Program, args: &Args) -> Result<String> {
    // A resumed run continues with its own settings; flags given now override them.
    let defaults = match &args.resume {
        Some(dir) => checkpoint_config(&dir.join("checkpoint.safetensors"))?,
        None => program.defaults.clone(),
    };
    let config = args.config(&defaults);
    if let Some(dir) = &args.resume {
        same_model(&config, &defaults, dir)?;
    }
    config.validate()?;
    let mode = Mode::from_args(args)?;
    kiln_autograd::set_anomaly_detection(args.detect_anomaly);
    if args.augment.save_augmented == Some(0) {
        return Err(TrainError::flag(
            "--save-augmented",
            0,
            "an integer ≥ 1 (images to save)",
        ));
    }
    if let Some(out) = &args.out {
        check_writable(out)?;
    }
    let dir = args
        .data
        .clone()
        .unwrap_or_else(|| program.default_data_dir.clone());
    let (train_full, test) = (program.load)(&dir, args.download)?;
    if let Some(gpu) = usable_gpu(&args.device) {
        let adapter = gpu.adapter_info().name.clone();
        if args.profile_kernels {
            gpu.set_kernel_profiling(true)?;
        }
        let device = Device {
            backend: &gpu,
            name: "gpu",
            adapter: &adapter,
        };
        let summary = run_on(program, args, &config, &mode, train_full, test, &device)?;
        if args.profile_kernels {
            let times = gpu.kernel_profile()?;
            println!("device time per kernel over the whole run on {adapter}:");
            println!("{}", kernel_table(&times, 1, "run"));
        }
        return Ok(summary);
    }
    if args.profile_kernels {
        eprintln!("warning: --profile-kernels times GPU kernels; this run is on the CPU backend");
    }
    let cpu = CpuBackend::new();
    let device = Device {
        backend: &cpu,
        name: "cpu",
        adapter: "cpu",
    };
    run_on(program, args, &config, &mode, train_full, test, &device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipes::fashion_mnist_cnn_recipe;

    /// The flags docs/guide.md gives for the PyTorch baseline's recipe turn the Fashion-MNIST
    /// CNN's defaults into exactly that recipe.
    #[test]
    fn baseline_flags_give_the_baseline_recipe() {
        let flags = "fashion_mnist_cnn --augment none --label-smoothing 0 --optimizer adam \
                     --lr 0.001 --schedule cosine --batch-size 128";
        let args = Args::try_parse_from(flags.split_whitespace()).unwrap();
        let defaults = fashion_mnist_cnn_recipe();
        assert!(!defaults.augmentation.transforms.is_empty() && defaults.label_smoothing > 0.0);
        let c = args.config(&defaults);
        assert_eq!(c.model, ModelKind::SmallCnn);
        assert_eq!((c.hidden.as_slice(), c.dropout), (&[128][..], 0.3));
        assert_eq!(
            (c.optimizer, c.schedule),
            (OptimizerKind::Adam, ScheduleKind::Cosine)
        );
        assert_eq!((c.lr, c.batch_size, c.epochs), (1e-3, 128, 15));
        assert_eq!(
            (c.label_smoothing, c.weight_decay, c.warmup_epochs),
            (0.0, 0.0, 0)
        );
        assert!(c.augmentation.transforms.is_empty());
        assert_eq!(c.validation, 5_000);
    }
}
