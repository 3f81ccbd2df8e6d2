//! Is my GPU doing its job? Runs the same workloads on every backend Kiln finds (each wgpu
//! adapter, plus the CPU backend), checks each GPU result against the CPU backend before
//! timing it, and prints one table: the median time (device-timed where the adapter has
//! timestamp queries), GFLOP/s or GB/s, and the share of that device's measured ceilings
//! (bandwidth from a large copy, FLOP/s from its best matmul).
//!
//!     cargo run --release --example compare_backends                 # the full suite
//!     cargo run --release --example compare_backends -- --quick      # small sizes, seconds
//!     cargo run --release --example compare_backends -- --only matmul --json rows.json
//!     cargo run --release --example compare_backends -- --only train_step --profile 20

use clap::Parser;
use kiln::bench::harness::{items, Item};
use kiln::bench::{
    kernel_table, profile_kernels, run_suite, table, BenchDevice, Options, Row, Suite,
};
use kiln::prelude::*;
use kiln::tensor::wgpu::{MatmulKernel, WgpuOptions};
use kiln::train::write_atomically;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Compare Kiln's backends on the same workloads")]
struct Args {
    /// Small sizes of every workload (seconds instead of minutes).
    #[arg(long)]
    quick: bool,
    /// Only workloads whose name contains this (e.g. matmul, adam, train_step); the copy that
    /// measures the bandwidth ceiling always runs.
    #[arg(long)]
    only: Option<String>,
    /// Timed runs per workload (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    repeats: u64,
    /// Untimed runs before the timed ones.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Only adapters whose name contains this (the CPU backend always runs: it is the reference).
    #[arg(long)]
    adapter: Option<String>,
    /// Also write the rows to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The matmul kernel of every GPU backend: auto, tuned, tiled, tiled32, tiled128,
    /// subgroup or texture (auto: texture on software adapters, tuned elsewhere).
    #[arg(long, default_value = "auto", value_parser = matmul_kernel)]
    matmul: MatmulKernel,
    /// Also time every kernel of this many training steps on each GPU with timestamp queries
    /// and print where a step's device time goes.
    #[arg(long, value_name = "STEPS", value_parser = clap::value_parser!(u64).range(1..))]
    profile: Option<u64>,
}

fn matmul_kernel(name: &str) -> std::result::Result<MatmulKernel, String> {
    Ok(match name {
        "auto" => MatmulKernel::Auto,
        "tuned" => MatmulKernel::Tuned,
        "tiled" => MatmulKernel::Tiled,
        "tiled32" => MatmulKernel::Tiled32,
        "tiled128" => MatmulKernel::Tiled128,
        "subgroup" => MatmulKernel::Subgroup,
        "texture" => MatmulKernel::Texture,
        other => {
            return Err(format!(
                "{other:?} is not a matmul kernel; allowed: auto, tuned, tiled, tiled32, tiled128, subgroup, texture"
            ))
        }
    })
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn progress(row: &Row) {
    eprintln!(
        "  {:<20} {:<28} {:<24} {}{}",
        row.workload,
        row.shape,
        row.backend,
        row.rate(),
        row.error
            .as_ref()
            .map_or(String::new(), |e| format!("  FAILED: {e}"))
    );
}

/// Prints the per-kernel device time of each training step in the suite on `gpu`.
fn profile_steps(gpu: &WgpuBackend, options: &Options, steps: usize) {
    for item in items(options.suite) {
        let Item::Step(step) = item else { continue };
        if let Some(wanted) = &options.filter {
            if !step.name().contains(wanted.as_str()) {
                continue;
            }
        }
        println!(
            "\n{} {} on {}: device time per kernel over {steps} steps",
            step.name(),
            step.shape(),
            gpu.label()
        );
        match profile_kernels(gpu, &step, steps) {
            Ok(times) => println!("{}", kernel_table(&times, steps, "step")),
            Err(e) => println!("  not profiled: {e}"),
        }
    }
}

fn run(args: Args) -> std::result::Result<(), Box<dyn std::error::Error>> {
    if let Some(path) = &args.json {
        // Fail before minutes of measuring, not after.
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            return Err(format!(
                "--json {}: the directory {} does not exist",
                path.display(),
                dir.display()
            )
            .into());
        }
    }
    let options = Options {
        suite: if args.quick {
            Suite::Quick
        } else {
            Suite::Full
        },
        warmup: args.warmup,
        repeats: args.repeats as usize,
        filter: args.only.clone(),
    };
    let cpu = CpuBackend::new();
    eprintln!("measuring {}", cpu.label());
    let mut rows = run_suite(&cpu, None, &options, &mut progress);
    let adapters = WgpuBackend::adapters();
    if adapters.is_empty() {
        eprintln!("no GPU adapter found: only the CPU backend was measured");
    }
    for summary in adapters {
        if let Some(wanted) = &args.adapter {
            if !summary.name.to_lowercase().contains(&wanted.to_lowercase()) {
                continue;
            }
        }
        let gpu = match WgpuBackend::with_options(WgpuOptions {
            adapter: Some(summary.name.clone()),
            matmul: args.matmul,
            ..WgpuOptions::default()
        }) {
            Ok(gpu) => gpu,
            Err(e) => {
                eprintln!("skipping {}: {e}", summary.name);
                continue;
            }
        };
        eprintln!(
            "measuring {} ({}, {}, matmul kernel {:?}, {})",
            summary.name,
            summary.backend,
            summary.device_type,
            gpu.matmul_kernel(),
            if gpu.can_time_on_device() {
                "timestamp queries"
            } else {
                "wall clock"
            }
        );
        rows.extend(run_suite(&gpu, Some(&cpu), &options, &mut progress));
        if let Some(steps) = args.profile {
            profile_steps(&gpu, &options, steps as usize);
        }
        if let Some(tuning) = gpu.matmul_tuning() {
            eprintln!("matmul kernels chosen by the tuner on {}:", summary.name);
            for tuned in &tuning.classes {
                eprintln!(
                    "  {:<44} {:<9?} {:.3} ms",
                    tuned.class.to_string(),
                    tuned.kernel,
                    tuned.seconds * 1e3
                );
            }
        }
    }
    println!("{}", table(&rows));
    if let Some(path) = &args.json {
        write_atomically(path, serde_json::to_string_pretty(&rows)?.as_bytes())?;
        println!("wrote {} rows to {}", rows.len(), path.display());
    }
    let failed = rows.iter().filter(|r| r.error.is_some()).count();
    if failed > 0 {
        return Err(format!("{failed} workload(s) failed; see the table").into());
    }
    Ok(())
}
