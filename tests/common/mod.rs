//! Shared test support: the two backends, seeded inputs, and the one place tolerances live.
#![allow(dead_code)]

use kiln::prelude::*;
use kiln::tensor::HostData;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::OnceLock;

/// Tolerances, stated once: |gpu − cpu| ≤ abs + rel · |cpu| elementwise.
/// - EXACT: ops that move or compare bits (copies, gathers, casts, comparisons, max/min, argmax).
/// - ELEMENTWISE: one f32 operation per element; differences come from exp/log/tanh/pow
///   implementations (a few ulp) and fused multiply-adds.
/// - REDUCTION: f32 sums on the GPU against f64 sums on the CPU; the error of a tree sum of n
///   terms grows like log2(n) · ε · Σ|x|, so sums are compared with a length-scaled slack.
/// - MATMUL: K-long f32 dot products against f64-accurate products; checked relative to
///   the size of the sum of |a·b| terms (√K · ε growth for a tiled sum).
/// - TRANSCENDENTAL_FUSED: softmax/cross-entropy (exp and log per element).
/// - NORMAL_FILL: Box–Muller draws: the GPU's sin/cos/log carry an absolute error near 1e-6
///   (WGSL allows 2⁻¹¹), multiplied by a radius of up to 5.8 and by the std; the integer
///   stream underneath is checked exactly by the uniform test.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub abs: f64,
    pub rel: f64,
}

pub const EXACT: Tolerance = Tolerance { abs: 0.0, rel: 0.0 };
pub const ELEMENTWISE: Tolerance = Tolerance {
    abs: 1e-6,
    rel: 2e-6,
};
pub const REDUCTION: Tolerance = Tolerance {
    abs: 1e-5,
    rel: 1e-5,
};
pub const MATMUL: Tolerance = Tolerance {
    abs: 1e-4,
    rel: 1e-4,
};
pub const TRANSCENDENTAL_FUSED: Tolerance = Tolerance {
    abs: 2e-6,
    rel: 1e-5,
};
pub const NORMAL_FILL: Tolerance = Tolerance {
    abs: 1e-4,
    rel: 1e-5,
};
/// Uniform draws: identical integers; `low + (high − low)·u` may round differently by an ulp
/// when the GPU fuses it into one multiply-add.
pub const UNIFORM_FILL: Tolerance = Tolerance {
    abs: 5e-7,
    rel: 2e-7,
};
/// Σ dy·x̂ multiplies by 1/sqrt(var + eps) (inverseSqrt on the GPU is a few ulp) before summing
/// up to 1000 rows in f32.
pub const BATCHNORM_BACKWARD: Tolerance = Tolerance {
    abs: 1e-4,
    rel: 1e-4,
};
/// Bilinear resampling and colour jitter: the source coordinate (or the image's mean grey
/// level, a tree sum on the GPU) may differ by an ulp or two, which moves values in [0, 1]
/// by about as much.
pub const AUGMENT: Tolerance = Tolerance {
    abs: 1e-5,
    rel: 1e-5,
};
/// Several optimiser steps compound per-step rounding of m/bc1 and sqrt(v/bc2).
pub const OPTIMIZER: Tolerance = Tolerance {
    abs: 1e-6,
    rel: 1e-5,
};
/// Twenty Adam steps of a small MLP in f32 on each backend: per-step rounding differences
/// compound, and Adam normalises them (a 1e-7 gradient difference can move a weight by lr).
pub const TRAINING_GPU_VS_CPU: Tolerance = Tolerance {
    abs: 1e-4,
    rel: 1e-3,
};
/// GPU f32 gradients against CPU f64 gradients of a small network: relative 1e-4 (the bound
/// the autograd issue states), plus an absolute floor for gradients that are nearly zero.
pub const GRADIENT_GPU_VS_CPU: Tolerance = Tolerance {
    abs: 1e-6,
    rel: 1e-4,
};

/// MATMUL scaled for K-long dot products of values in [-1, 1] (error grows like √K).
pub fn matmul_tolerance(k: usize) -> Tolerance {
    Tolerance {
        abs: MATMUL.abs * (k as f64).sqrt().max(1.0),
        rel: MATMUL.rel,
    }
}

/// Sizes that are not multiples of any tile or workgroup.
pub const AWKWARD_SIZES: [usize; 7] = [1, 3, 17, 33, 127, 257, 1000];
pub const SEEDS: [u64; 3] = [7, 1234, 98765];

/// The GPU backend, opened once per test binary. No adapter fails the test with a clear
/// message unless KILN_ALLOW_NO_GPU=1, in which case GPU tests print that they are skipped.
pub fn gpu() -> Option<WgpuBackend> {
    static GPU: OnceLock<Option<WgpuBackend>> = OnceLock::new();
    GPU.get_or_init(|| match WgpuBackend::new() {
        Ok(backend) => {
            eprintln!("GPU tests run on {}", kiln::tensor::Backend::name(&backend));
            Some(backend)
        }
        Err(e) if std::env::var("KILN_ALLOW_NO_GPU").as_deref() == Ok("1") => {
            eprintln!("KILN_ALLOW_NO_GPU=1: skipping GPU tests ({e})");
            None
        }
        Err(e) => panic!(
            "no GPU adapter for the GPU tests: {e}\n\
             Install a Vulkan driver (Debian: apt-get install mesa-vulkan-drivers for the software one), \
             or set KILN_ALLOW_NO_GPU=1 to run only the CPU half."
        ),
    })
    .clone()
}

/// A device of its own, for tests that count submits and allocations (tests run in parallel
/// threads, so a shared device's counters would mix their work).
pub fn fresh_gpu() -> Option<WgpuBackend> {
    gpu()?;
    Some(WgpuBackend::new().expect("the adapter opened once already"))
}

pub fn cpu() -> CpuBackend {
    CpuBackend::new()
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn random_vec(seed: u64, n: usize, low: f32, high: f32) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n).map(|_| r.random_range(low..high)).collect()
}

/// The same f32 data on both backends.
pub fn pair(
    data: &[f32],
    shape: &[usize],
    gpu: &WgpuBackend,
) -> (Tensor<WgpuBackend>, Tensor<CpuBackend>) {
    (
        Tensor::from_slice(data, shape.to_vec(), gpu).unwrap(),
        Tensor::from_slice(data, shape.to_vec(), &cpu()).unwrap(),
    )
}

pub fn values(data: HostData) -> Vec<f64> {
    data.to_f64_vec()
}

/// Asserts that `actual` (the GPU) matches `expected` (the CPU reference) within `tol`;
/// on failure reports the count, the worst element and the first mismatches.
pub fn assert_close(what: &str, actual: &[f64], expected: &[f64], tol: Tolerance) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    let mut worst = (0usize, 0.0f64);
    let mut failures = Vec::new();
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let same_special = (a.is_nan() && e.is_nan()) || (a.is_infinite() && a == e);
        let diff = (a - e).abs();
        let allowed = tol.abs + tol.rel * e.abs();
        // A NaN difference (one side NaN) fails: `within` is false for it.
        let within = diff <= allowed;
        if !same_special && !within {
            failures.push((i, a, e));
        }
        if !same_special && allowed > 0.0 && diff / allowed > worst.1 {
            worst = (i, diff / allowed);
        }
    }
    if !failures.is_empty() {
        let first: Vec<String> = failures
            .iter()
            .take(5)
            .map(|(i, a, e)| format!("[{i}] gpu {a} cpu {e}"))
            .collect();
        panic!(
            "{what}: {} of {} elements outside tolerance {:?}; worst at {} ({:.1}× the allowance); first: {}",
            failures.len(),
            actual.len(),
            tol,
            worst.0,
            worst.1,
            first.join(", ")
        );
    }
}

/// Compares a GPU tensor with a CPU tensor.
pub fn assert_tensors_close(
    what: &str,
    gpu: &Tensor<WgpuBackend>,
    cpu: &Tensor<CpuBackend>,
    tol: Tolerance,
) {
    assert_eq!(gpu.shape(), cpu.shape(), "{what}: shapes differ");
    assert_eq!(gpu.dtype(), cpu.dtype(), "{what}: dtypes differ");
    assert_close(
        what,
        &values(gpu.to_host().unwrap()),
        &values(cpu.to_host().unwrap()),
        tol,
    );
}

/// A CPU f64 tensor of uniform values in [low, high) (gradient checks run in f64).
pub fn f64_tensor(seed: u64, shape: &[usize], low: f32, high: f32) -> Tensor<CpuBackend> {
    let data: Vec<f64> = random_vec(seed, shape.iter().product(), low, high)
        .into_iter()
        .map(|v| v as f64)
        .collect();
    Tensor::from_vec(data, shape.to_vec(), &cpu()).unwrap()
}

/// An empty directory under the system temp dir, unique to this test process.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
