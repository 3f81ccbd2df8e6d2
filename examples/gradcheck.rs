//! Checks the gradients of a configurable MLP against centered finite differences in f64 on
//! the CPU backend, and prints one row per parameter tensor.
//!
//!     cargo run --release --example gradcheck -- --hidden 16,8 --activation tanh --batch-norm
//!
//! Flags: --inputs N (default 10), --hidden W,W,... (default 16,8), --classes N (default 4),
//! --batch N (default 6), --activation relu|leaky-relu|elu|tanh|sigmoid|softplus|hard-tanh (default tanh,
//! spelled as in the training programs), --batch-norm, --seed N.

use kiln::prelude::*;
use kiln::tensor::{HostData, UnaryOp};
use std::process::ExitCode;

struct Config {
    inputs: usize,
    hidden: Vec<usize>,
    classes: usize,
    batch: usize,
    activation: UnaryOp,
    batch_norm: bool,
    seed: u64,
}

fn parse() -> std::result::Result<Config, String> {
    let mut config = Config {
        inputs: 10,
        hidden: vec![16, 8],
        classes: 4,
        batch: 6,
        activation: UnaryOp::Tanh,
        batch_norm: false,
        seed: 1,
    };
    let mut args = std::env::args().skip(1);
    let number = |flag: &str, value: Option<String>| -> std::result::Result<usize, String> {
        let value = value.ok_or(format!("{flag} needs a value"))?;
        value
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or(format!("{flag} must be a positive integer, got {value:?}"))
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--inputs" => config.inputs = number(&flag, args.next())?,
            "--classes" => config.classes = number(&flag, args.next())?,
            "--batch" => config.batch = number(&flag, args.next())?,
            "--seed" => config.seed = number(&flag, args.next())? as u64,
            "--batch-norm" => config.batch_norm = true,
            "--hidden" => {
                let value = args.next().ok_or("--hidden needs a value such as 16,8")?;
                config.hidden = value
                    .split(',')
                    .map(|w| w.trim().parse::<usize>().ok().filter(|&n| n > 0))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(format!(
                        "--hidden takes positive widths separated by commas, got {value:?}"
                    ))?;
            }
            "--activation" => {
                let value = args.next().ok_or("--activation needs a value")?;
                config.activation = value
                    .parse::<ActivationKind>()
                    .map_err(|e| format!("--activation: {e}"))?
                    .op();
            }
            other => {
                return Err(format!(
                    "unknown flag {other:?} (see the comment at the top of examples/gradcheck.rs)"
                ))
            }
        }
    }
    Ok(config)
}

fn tensor(seed: u64, shape: &[usize], scale: f64) -> kiln::tensor::Result<Tensor<CpuBackend>> {
    let t = Tensor::rand_normal(
        shape.to_vec(),
        0.0,
        1.0,
        RngState { seed, offset: 0 },
        &CpuBackend::new(),
    )?;
    let data: Vec<f64> = t
        .to_vec::<f32>()?
        .into_iter()
        .map(|v| v as f64 * scale)
        .collect();
    Tensor::from_host(&HostData::F64(data), shape.to_vec(), &CpuBackend::new())
}

fn main() -> ExitCode {
    let config = match parse() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&config) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(c: &Config) -> kiln::tensor::Result<bool> {
    let cpu = CpuBackend::new();
    let mut widths = vec![c.inputs];
    widths.extend(&c.hidden);
    widths.push(c.classes);
    // Parameters: per layer W (and b, or γ and β after batch norm on hidden layers).
    let mut names = Vec::new();
    let mut params = Vec::new();
    for (l, pair) in widths.windows(2).enumerate() {
        let hidden = l + 2 < widths.len();
        names.push(format!("layer{l}.weight"));
        params.push(tensor(
            c.seed * 100 + l as u64,
            &[pair[0], pair[1]],
            (1.0 / pair[0] as f64).sqrt(),
        )?);
        if hidden && c.batch_norm {
            names.push(format!("layer{l}.bn.gamma"));
            params.push(Tensor::from_host(
                &HostData::F64(vec![1.0; pair[1]]),
                [pair[1]],
                &cpu,
            )?);
            names.push(format!("layer{l}.bn.beta"));
            params.push(tensor(c.seed * 100 + 50 + l as u64, &[pair[1]], 0.1)?);
        } else {
            names.push(format!("layer{l}.bias"));
            params.push(tensor(c.seed * 100 + 50 + l as u64, &[pair[1]], 0.1)?);
        }
    }
    let x = Var::constant(tensor(c.seed, &[c.batch, c.inputs], 1.0)?);
    let labels: Vec<u32> = (0..c.batch).map(|i| (i % c.classes) as u32).collect();
    let labels = Tensor::from_vec(labels, [c.batch], &cpu)?;
    let layers = widths.len() - 1;
    let forward = |p: &[Var<CpuBackend>]| -> kiln::tensor::Result<Var<CpuBackend>> {
        let mut h = x.clone();
        let mut i = 0;
        for l in 0..layers {
            let hidden = l + 1 < layers;
            h = h.matmul(&p[i])?;
            if hidden && c.batch_norm {
                h = h.batch_norm((&p[i + 1], &p[i + 2]), None, 1e-5)?.0;
                i += 3;
            } else {
                h = h.add(&p[i + 1])?;
                i += 2;
            }
            if hidden {
                h = h.unary(c.activation)?;
            }
        }
        h.softmax_xent(&labels)?.mean_all()
    };
    let report = gradcheck(forward, &params, GradcheckOptions::default())?;
    println!(
        "{:<18} {:>10} {:>14} {:>14} {:>8} {:>6}",
        "parameter", "shape", "max rel error", "max abs error", "skipped", "result"
    );
    for (name, r) in names.iter().zip(&report.inputs) {
        println!(
            "{name:<18} {:>10} {:>14.2e} {:>14.2e} {:>8} {:>6}",
            r.shape.to_string(),
            r.max_relative_error,
            r.max_absolute_error,
            r.skipped_at_kinks,
            if r.passed { "pass" } else { "FAIL" }
        );
    }
    println!(
        "an entry passes when |analytic − numeric| ≤ {:.1e} + {:.0e}·|gradient|; the relative error \
         is reported where |gradient| ≥ {:.1e}.\nReading guide: relative errors below 1e-7 are \
         good, 1e-7 to 1e-4 deserve a look, above 1e-4 the gradient is wrong.\n{}",
        report.absolute_tolerance,
        report.tolerance,
        report.absolute_tolerance / report.tolerance,
        if report.passed() {
            "all parameters pass"
        } else {
            "some parameters FAIL"
        }
    );
    Ok(report.passed())
}
