//! Lists the GPU adapters Kiln can see, then runs the same matmul on each of them and on the
//! CPU backend, checking the results against each other and timing them.
//!
//!     cargo run --release --example devices [-- N]

use kiln::prelude::*;
use kiln::tensor::wgpu::WgpuBackend as Gpu;
use std::time::Instant;

fn time_matmul<B: Backend>(
    a: &Tensor<B>,
    b: &Tensor<B>,
    repeats: usize,
) -> Result<(Vec<f32>, f64, f64)> {
    let start = Instant::now();
    let first = a.matmul(b)?;
    let result = first.to_vec::<f32>()?;
    let first_call = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut last = first;
    for _ in 0..repeats {
        last = a.matmul(b)?;
    }
    last.backend().sync()?;
    Ok((
        result,
        first_call,
        start.elapsed().as_secs_f64() / repeats as f64,
    ))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let n: usize = match std::env::args().nth(1) {
        None => 1024,
        Some(arg) => arg.parse().map_err(|_| KilnError::InvalidArgument {
            op: "devices",
            message: format!("N must be a positive integer, got {arg:?}"),
        })?,
    };
    let flops = 2.0 * (n * n * n) as f64;
    let adapters = Gpu::adapters();
    println!("GPU adapters found: {}", adapters.len());
    for a in &adapters {
        println!(
            "  {} ({}, {}, driver {})",
            a.name, a.backend, a.device_type, a.driver
        );
    }
    let rng = |seed| RngState { seed, offset: 0 };
    let cpu = CpuBackend::new();
    let a = Tensor::rand_uniform([n, n], -1.0, 1.0, rng(1), &cpu)?;
    let b = Tensor::rand_uniform([n, n], -1.0, 1.0, rng(2), &cpu)?;
    let (reference, first, per_call) = time_matmul(&a, &b, 5)?;
    println!("\n{n}×{n} f32 matmul");
    println!(
        "  cpu: {:.1} GFLOP/s ({:.2} ms per call, first call {:.2} ms)",
        flops / per_call / 1e9,
        per_call * 1e3,
        first * 1e3
    );
    for summary in &adapters {
        let gpu = Gpu::with_adapter(&summary.name)?;
        let ga = Tensor::rand_uniform([n, n], -1.0, 1.0, rng(1), &gpu)?;
        let gb = Tensor::rand_uniform([n, n], -1.0, 1.0, rng(2), &gpu)?;
        let (result, first, per_call) = time_matmul(&ga, &gb, 5)?;
        let worst = result
            .iter()
            .zip(&reference)
            .map(|(g, c)| ((g - c).abs() / (1.0 + c.abs())) as f64)
            .fold(0.0, f64::max);
        println!(
            "  {}: {:.1} GFLOP/s ({:.2} ms per call, first call incl. pipeline build {:.2} ms), worst relative difference from the CPU {:.1e}",
            summary.name,
            flops / per_call / 1e9,
            per_call * 1e3,
            first * 1e3,
            worst
        );
    }
    Ok(())
}
