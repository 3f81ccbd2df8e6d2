//! Random hyperparameter search for an MLP, then an ensemble of the best trials.
//!
//! A coarse stage of short trials (learning rate and weight decay log-uniform, dropout
//! uniform, optimiser and widths from lists), a fine stage of longer trials around the best,
//! then the top trials' averaged predictions on the test set beside each member's. Writes
//! results.jsonl, scatter.svg and ensemble.json to --out.
//!
//!     cargo run --release --example hparam_search -- --help

use clap::Parser;
use kiln::cpu::CpuBackend;
use kiln::data::{DeviceDataset, FASHION_MNIST_SYSTEM_DIR};
use kiln::prelude::{Backend, OptimizerKind};
use kiln::train::cli::{usable_gpu, AugmentArgs};
use kiln::train::{
    check_writable, cifar10_recipe, evaluate_ensemble, fashion_mnist_recipe, load_cifar10_dataset,
    load_fashion_mnist, random_search, ranked, results_table, write_atomically, write_search_plot,
    RunData, SearchPlan, SearchSpace, TrainError, Trial,
};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
struct Args {
    /// fashion-mnist or cifar10.
    #[arg(long, default_value = "fashion-mnist", value_parser = ["fashion-mnist", "cifar10"])]
    dataset: String,
    /// gpu or cpu (as in the training programs).
    #[arg(long, default_value = "gpu", value_parser = ["gpu", "cpu"])]
    device: String,
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output directory: results.jsonl, scatter.svg, ensemble.json.
    #[arg(long, default_value = "search")]
    out: PathBuf,
    /// Coarse-stage trials.
    #[arg(long, default_value_t = 16)]
    trials: usize,
    #[arg(long, default_value_t = 2)]
    coarse_epochs: usize,
    /// Fine-stage trials around the best coarse trial (0: none).
    #[arg(long, default_value_t = 5)]
    fine_trials: usize,
    #[arg(long, default_value_t = 15)]
    fine_epochs: usize,
    /// Learning-rate range LOW,HIGH (log-uniform).
    #[arg(long, value_delimiter = ',', default_value = "1e-4,1e-2")]
    lr_range: Vec<f32>,
    /// Weight-decay range LOW,HIGH (log-uniform).
    #[arg(long, value_delimiter = ',', default_value = "1e-6,1e-3")]
    wd_range: Vec<f32>,
    /// Dropout range LOW,HIGH (uniform).
    #[arg(long, value_delimiter = ',', default_value = "0,0.5")]
    dropout_range: Vec<f32>,
    /// Optimisers to choose from.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "adam,adamw,nesterov"
    )]
    optimizers: Vec<OptimizerKind>,
    /// Architectures to choose from: hidden widths separated by ',', architectures by ';'.
    #[arg(long, default_value = "256,256;512,512;1024,512")]
    widths: String,
    /// Ensemble the top K trials on the test set (0: no ensemble).
    #[arg(long, default_value_t = 5)]
    ensemble: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Use only the first N training samples.
    #[arg(long)]
    limit_train: Option<usize>,
    /// Keep averaged (EMA) weights with this decay in every trial.
    #[arg(long)]
    ema: Option<f32>,
    #[command(flatten)]
    augment: AugmentArgs,
}

fn range(flag: &'static str, v: &[f32]) -> Result<(f32, f32), TrainError> {
    match v {
        [lo, hi] => Ok((*lo, *hi)),
        _ => Err(TrainError::Flag {
            flag,
            value: format!("{v:?}"),
            allowed: "two numbers LOW,HIGH".into(),
        }),
    }
}

fn widths(spec: &str) -> Result<Vec<Vec<usize>>, TrainError> {
    spec.split(';')
        .map(|arch| {
            arch.split(',')
                .map(|w| w.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| TrainError::Flag {
                    flag: "--widths",
                    value: spec.into(),
                    allowed: "architectures separated by ';', widths by ',' (e.g. 256,256;512,512)"
                        .into(),
                })
        })
        .collect()
}

fn run(args: &Args) -> Result<String, TrainError> {
    let space = SearchSpace {
        lr: range("--lr-range", &args.lr_range)?,
        weight_decay: range("--wd-range", &args.wd_range)?,
        dropout: range("--dropout-range", &args.dropout_range)?,
        optimizers: args.optimizers.clone(),
        widths: widths(&args.widths)?,
    };
    let plan = SearchPlan {
        coarse_trials: args.trials,
        coarse_epochs: args.coarse_epochs,
        fine_trials: args.fine_trials,
        fine_epochs: args.fine_epochs,
        seed: args.seed,
    };
    space.validate()?;
    plan.validate()?;
    let (mut base, default_dir, load): (_, PathBuf, fn(&std::path::Path, bool) -> _) =
        if args.dataset == "cifar10" {
            (cifar10_recipe(), "data".into(), load_cifar10_dataset)
        } else {
            (
                fashion_mnist_recipe(),
                FASHION_MNIST_SYSTEM_DIR.into(),
                load_fashion_mnist,
            )
        };
    base.seed = args.seed;
    base.limit_train = args.limit_train;
    base.augmentation = args.augment.apply(&base.augmentation);
    if let Some(decay) = args.ema {
        base.ema_decay = decay;
    }
    base.validate()?;
    check_writable(&args.out)?;
    let (train_full, test) = load(args.data.as_deref().unwrap_or(&default_dir), false)?;
    let data = RunData::prepare(&train_full, test, &base)?;
    match usable_gpu(&args.device) {
        Some(gpu) => search(args, &base, &data, &space, &plan, &gpu),
        None => search(args, &base, &data, &space, &plan, &CpuBackend::new()),
    }
}

fn search<B: Backend>(
    args: &Args,
    base: &kiln::train::TrainConfig,
    data: &RunData,
    space: &SearchSpace,
    plan: &SearchPlan,
    backend: &B,
) -> Result<String, TrainError> {
    println!(
        "{}: {} training, {} validation samples on {}; {} coarse trials × {} epochs, {} fine × {}",
        args.dataset,
        data.train.len(),
        data.validation.len(),
        backend.name(),
        plan.coarse_trials,
        plan.coarse_epochs,
        plan.fine_trials,
        plan.fine_epochs
    );
    let results = args.out.join("results.jsonl");
    let mut done: Vec<Trial> = Vec::new();
    let mut write_error = None;
    let runs = random_search(backend, base, data, space, plan, |t| {
        println!(
            "trial {:>3} {:<6} lr {:.2e} wd {:.2e} dropout {:.2} {:<9} {:?}: {} val acc {:.4} ({:.0} s)",
            t.id, t.stage, t.lr, t.weight_decay, t.dropout, t.optimizer, t.hidden, t.status,
            t.val_accuracy, t.seconds
        );
        done.push(t.clone());
        let lines: String = done
            .iter()
            .map(|t| serde_json::to_string(t).unwrap_or_default() + "\n")
            .collect();
        if let Err(e) = write_atomically(&results, lines.as_bytes()) {
            write_error = Some(e);
        }
    })?;
    if let Some(e) = write_error {
        return Err(e);
    }
    let trials: Vec<Trial> = runs.iter().map(|r| r.trial.clone()).collect();
    print!("\n{}", results_table(&trials));
    write_search_plot(&args.out.join("scatter.svg"), &trials)?;
    let best = ranked(&runs);
    let mut summary = serde_json::json!({
        "dataset": args.dataset,
        "backend": backend.name(),
        "trials": trials.len(),
        "diverged": trials.iter().filter(|t| t.status == "diverged").count(),
        "best": best.first().map(|r| &r.trial),
    });
    if args.ensemble > 0 && !best.is_empty() {
        let members = &best[..args.ensemble.min(best.len())];
        let (image, classes) = (data.train.image_shape(), data.train.classes());
        let mut models = members
            .iter()
            .map(|r| {
                r.outcome
                    .as_ref()
                    .expect("ranked trials trained")
                    .model(&r.config, image, classes, backend)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let test = DeviceDataset::upload(&data.test, &data.normalization, backend, None)?;
        let report = evaluate_ensemble(&mut models, &test, classes, 512)?;
        println!();
        for (r, e) in members.iter().zip(&report.members) {
            println!(
                "trial {:>3}: val acc {:.4}, test acc {:.4}",
                r.trial.id, r.trial.val_accuracy, e.accuracy
            );
        }
        println!(
            "ensemble of the top {}: test acc {:.4}",
            members.len(),
            report.ensemble.accuracy
        );
        let ensemble = serde_json::json!({
            "members": members.iter().zip(&report.members).map(|(r, e)| serde_json::json!({
                "trial": r.trial.id,
                "val_accuracy": r.trial.val_accuracy,
                "test_accuracy": e.accuracy,
            })).collect::<Vec<_>>(),
            "test_accuracy": report.ensemble.accuracy,
        });
        write_atomically(
            &args.out.join("ensemble.json"),
            serde_json::to_string_pretty(&ensemble)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        summary["ensemble_test_accuracy"] = report.ensemble.accuracy.into();
        summary["member_test_accuracy"] = report
            .members
            .iter()
            .map(|m| m.accuracy)
            .collect::<Vec<_>>()
            .into();
    }
    Ok(summary.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
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
