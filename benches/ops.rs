//! Criterion benches of the kernel families on both backends. Each workload is first checked
//! against the CPU backend, then timed; throughput is reported in elements (GB/s follows from
//! the bytes per element stated beside each group) or as FLOPs for matmul.
//!
//!     cargo bench --bench ops                 # everything
//!     cargo bench --bench ops -- matmul/1024  # one workload

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kiln::prelude::*;
use std::time::Duration;

fn rng(seed: u64) -> RngState {
    RngState { seed, offset: 0 }
}

fn backends() -> (CpuBackend, Option<WgpuBackend>) {
    let gpu = WgpuBackend::new()
        .map_err(|e| eprintln!("no GPU adapter, benching the CPU only: {e}"))
        .ok();
    (CpuBackend::new(), gpu)
}

/// Fails the bench if the GPU result differs from the CPU's.
fn validate(name: &str, gpu: &Tensor<WgpuBackend>, cpu: &Tensor<CpuBackend>, tolerance: f64) {
    let g = gpu.to_vec::<f64>().unwrap();
    let c = cpu.to_vec::<f64>().unwrap();
    let worst = g
        .iter()
        .zip(&c)
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0, f64::max);
    assert!(
        worst <= tolerance,
        "{name}: GPU differs from CPU by {worst:e}"
    );
}

/// Times `op` on a backend; the GPU's queue is drained in each iteration so the time is the
/// kernel's, not the recording's.
fn time<B: Backend>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    backend: &B,
    op: impl Fn() -> Tensor<B>,
) {
    group.bench_function(id, |bench| {
        bench.iter(|| {
            let out = op();
            backend.sync().unwrap();
            out
        })
    });
}

macro_rules! on_both {
    ($group:expr, $label:expr, $cpu:expr, $gpu:expr, $tol:expr, |$b:ident| $make:expr, |$t:ident| $op:expr) => {{
        let cpu_inputs = {
            let $b = &$cpu;
            $make
        };
        let cpu_out = {
            let $t = &cpu_inputs;
            $op
        };
        time(&mut $group, BenchmarkId::new("cpu", $label), &$cpu, || {
            let $t = &cpu_inputs;
            $op
        });
        if let Some(gpu) = &$gpu {
            let gpu_inputs = {
                let $b = gpu;
                $make
            };
            let gpu_out = {
                let $t = &gpu_inputs;
                $op
            };
            validate(&$label.to_string(), &gpu_out, &cpu_out, $tol);
            time(&mut $group, BenchmarkId::new("wgpu", $label), gpu, || {
                let $t = &gpu_inputs;
                $op
            });
        }
    }};
}

fn matmul(c: &mut Criterion) {
    let (cpu, gpu) = backends();
    let mut group = c.benchmark_group("matmul");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    for n in [256usize, 512, 1024, 2048] {
        group.throughput(Throughput::Elements((2 * n * n * n) as u64));
        on_both!(
            group,
            n,
            cpu,
            gpu,
            1e-3,
            |b| (
                Tensor::rand_uniform([n, n], -1.0, 1.0, rng(1), b).unwrap(),
                Tensor::rand_uniform([n, n], -1.0, 1.0, rng(2), b).unwrap()
            ),
            |t| t.0.matmul(&t.1).unwrap()
        );
    }
    // The MLP's first layer at batch 256 and its two backward products (Aᵀ·B and A·Bᵀ).
    let (batch, input, hidden) = (256usize, 3072usize, 1024usize);
    group.throughput(Throughput::Elements((2 * batch * input * hidden) as u64));
    on_both!(
        group,
        "mlp_forward_256x3072x1024",
        cpu,
        gpu,
        1e-3,
        |b| (
            Tensor::rand_uniform([batch, input], -1.0, 1.0, rng(3), b).unwrap(),
            Tensor::rand_uniform([input, hidden], -1.0, 1.0, rng(4), b).unwrap()
        ),
        |t| t.0.matmul(&t.1).unwrap()
    );
    on_both!(
        group,
        "mlp_weight_grad_xT_dy",
        cpu,
        gpu,
        1e-3,
        |b| (
            Tensor::rand_uniform([batch, input], -1.0, 1.0, rng(5), b).unwrap(),
            Tensor::rand_uniform([batch, hidden], -1.0, 1.0, rng(6), b).unwrap()
        ),
        |t| t.0.t().unwrap().matmul(&t.1).unwrap()
    );
    on_both!(
        group,
        "mlp_input_grad_dy_wT",
        cpu,
        gpu,
        1e-3,
        |b| (
            Tensor::rand_uniform([batch, hidden], -1.0, 1.0, rng(7), b).unwrap(),
            Tensor::rand_uniform([input, hidden], -1.0, 1.0, rng(8), b).unwrap()
        ),
        |t| t.0.matmul(&t.1.t().unwrap()).unwrap()
    );
    group.finish();
}

fn elementwise_and_fused(c: &mut Criterion) {
    let (cpu, gpu) = backends();
    let mut group = c.benchmark_group("ops");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    // add on 16M floats: 12 bytes moved per element.
    let n = 16 << 20;
    group.throughput(Throughput::Elements(n as u64));
    on_both!(
        group,
        "add_16M",
        cpu,
        gpu,
        1e-6,
        |b| (
            Tensor::rand_uniform([n], -1.0, 1.0, rng(1), b).unwrap(),
            Tensor::rand_uniform([n], -1.0, 1.0, rng(2), b).unwrap()
        ),
        |t| (&t.0 + &t.1).unwrap()
    );
    // softmax cross-entropy (labels): 4 bytes read per logit.
    for (rows, cols) in [(256usize, 10usize), (4096, 1000)] {
        group.throughput(Throughput::Elements((rows * cols) as u64));
        on_both!(
            group,
            format!("softmax_xent_{rows}x{cols}"),
            cpu,
            gpu,
            1e-4,
            |b| (
                Tensor::rand_normal([rows, cols], 0.0, 2.0, rng(3), b).unwrap(),
                Tensor::from_vec(
                    (0..rows as u32)
                        .map(|i| i % cols as u32)
                        .collect::<Vec<_>>(),
                    [rows],
                    b
                )
                .unwrap()
            ),
            |t| t.0.softmax_xent(&t.1).unwrap()
        );
    }
    // batch-norm statistics on 256×1024: x is read twice.
    group.throughput(Throughput::Elements(256 * 1024));
    on_both!(
        group,
        "batch_norm_stats_256x1024",
        cpu,
        gpu,
        1e-4,
        |b| Tensor::rand_normal([256, 1024], 1.0, 2.0, rng(4), b).unwrap(),
        |t| t.batch_norm_stats().unwrap().1
    );
    group.finish();
}

fn adam(c: &mut Criterion) {
    let (cpu, gpu) = backends();
    let mut group = c.benchmark_group("adam");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    // Adam over 4M parameters: 16 bytes read + 12 written per parameter.
    let n = 4 << 20;
    group.throughput(Throughput::Elements(n as u64));
    let step = AdamStep {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
        decoupled: true,
        step: 1,
    };
    {
        let make = |seed| Tensor::rand_uniform([n], -1.0, 1.0, rng(seed), &cpu).unwrap();
        let (p, g, m, v) = (
            make(1),
            make(2),
            Tensor::zeros([n], DType::F32, &cpu).unwrap(),
            Tensor::zeros([n], DType::F32, &cpu).unwrap(),
        );
        group.bench_function(BenchmarkId::new("cpu", "adam_4M"), |bench| {
            bench.iter(|| p.adam_step(&g, &m, &v, &step).unwrap())
        });
    }
    if let Some(gpu) = &gpu {
        let make = |seed| Tensor::rand_uniform([n], -1.0, 1.0, rng(seed), gpu).unwrap();
        let (p, g, m, v) = (
            make(1),
            make(2),
            Tensor::zeros([n], DType::F32, gpu).unwrap(),
            Tensor::zeros([n], DType::F32, gpu).unwrap(),
        );
        group.bench_function(BenchmarkId::new("wgpu", "adam_4M"), |bench| {
            bench.iter(|| {
                p.adam_step(&g, &m, &v, &step).unwrap();
                gpu.sync().unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, matmul, elementwise_and_fused, adam);
criterion_main!(benches);
