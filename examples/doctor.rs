//! A self-check for a new machine or driver: for each GPU adapter, its features and limits,
//! then every kernel family against the CPU backend on random inputs at awkward sizes, and a
//! short training run on both. Prints PASS or FAIL with the worst difference per kernel as a
//! share of the tolerance the precision table allows it (a failure names the precision class
//! and bound); exits non-zero when anything fails.
//!
//!     cargo run --release --example doctor
//!     cargo run --release --example doctor -- --adapter llvmpipe

use clap::Parser;
use kiln::bench::doctor::{other_matmul_kernels, training_run, Check, CheckResult};
use kiln::prelude::*;

#[derive(Parser)]
#[command(about = "Check every Kiln kernel on each GPU adapter against the CPU backend")]
struct Args {
    /// Only adapters whose name contains this.
    #[arg(long)]
    adapter: Option<String>,
    /// Steps of the training run.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(2..))]
    steps: u64,
}

fn main() {
    match run(Args::parse()) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

fn describe(gpu: &WgpuBackend) {
    let info = gpu.adapter_info();
    let limits = gpu.limits();
    println!(
        "{} ({:?}, {:?}, driver {} {})",
        info.name, info.backend, info.device_type, info.driver, info.driver_info
    );
    println!(
        "  features: shader-f16 {}, subgroups {}..{} (matmul kernel {:?}), timestamp queries {}",
        if gpu.has_native_f16() {
            "yes"
        } else {
            "no (packed fallback)"
        },
        info.subgroup_min_size,
        info.subgroup_max_size,
        gpu.matmul_kernel(),
        if gpu.can_time_on_device() {
            "yes"
        } else {
            "no"
        }
    );
    println!(
        "  limits: storage binding {} MiB, buffer {} MiB, {} storage buffers per stage, workgroup {}×{}×{} ({} invocations), {} KiB workgroup memory, 2-D texture {}",
        limits.max_storage_buffer_binding_size >> 20,
        limits.max_buffer_size >> 20,
        limits.max_storage_buffers_per_shader_stage,
        limits.max_compute_workgroup_size_x,
        limits.max_compute_workgroup_size_y,
        limits.max_compute_workgroup_size_z,
        limits.max_compute_invocations_per_workgroup,
        limits.max_compute_workgroup_storage_size >> 10,
        limits.max_texture_dimension_2d
    );
}

/// One line per check: the worst difference as a share of its allowance (≤ 1 passes); a
/// failure adds the precision class and bound it broke, and any error.
fn print(result: &CheckResult) {
    let detail = if result.passed {
        String::new()
    } else {
        format!("\n        {}", result.tolerance)
    };
    println!(
        "  {}  {:<66} worst {:>8.2}× allowance{}{}",
        if result.passed { "PASS" } else { "FAIL" },
        result.kernel,
        result.worst,
        detail,
        result
            .error
            .as_ref()
            .map_or(String::new(), |e| format!("  {e}"))
    );
}

fn run(args: Args) -> std::result::Result<bool, Box<dyn std::error::Error>> {
    let cpu = CpuBackend::new();
    let adapters = WgpuBackend::adapters();
    if adapters.is_empty() {
        println!("no GPU adapter found: Kiln will train on the CPU backend");
        return Ok(true);
    }
    let mut all_passed = true;
    let mut checked = 0;
    for summary in adapters {
        if let Some(wanted) = &args.adapter {
            if !summary.name.to_lowercase().contains(&wanted.to_lowercase()) {
                continue;
            }
        }
        checked += 1;
        let gpu = match WgpuBackend::with_adapter(&summary.name) {
            Ok(gpu) => gpu,
            Err(e) => {
                println!("{}: FAIL, cannot open it: {e}", summary.name);
                all_passed = false;
                continue;
            }
        };
        describe(&gpu);
        let mut failed = 0;
        let mut results: Vec<CheckResult> =
            Check::all().iter().map(|c| c.run(&gpu, &cpu)).collect();
        let (kernel_results, unavailable) = other_matmul_kernels(&gpu, &cpu);
        for note in unavailable {
            println!("  ----  {note}");
        }
        results.extend(kernel_results);
        for precision in [Precision::F32, Precision::Mixed] {
            results.push(training_run(&gpu, &cpu, args.steps as usize, precision));
        }
        for result in &results {
            print(result);
            failed += usize::from(!result.passed);
        }
        println!(
            "  {}: {} of {} checks passed\n",
            summary.name,
            results.len() - failed,
            results.len()
        );
        all_passed &= failed == 0;
    }
    if checked == 0 {
        return Err(format!(
            "--adapter {:?} matches none of the adapters found",
            args.adapter.unwrap_or_default()
        )
        .into());
    }
    Ok(all_passed)
}
