//! One optimiser step over 4M parameters (four 1024×1024 tensors, gradients set), for every
//! optimiser, on both backends. Throughput is the memory traffic the fused kernels need
//! (parameter, gradient and state reads plus parameter and state writes), so the figure can
//! be compared with the device's bandwidth.
//!
//!     cargo bench --bench optimizers

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kiln::prelude::*;
use std::time::Duration;

const TENSORS: usize = 4;
const SIDE: usize = 1024;

/// (name, bytes moved per parameter, constructor).
type Case<B> = (&'static str, u64, fn() -> Box<dyn Optimizer<B>>);

fn cases<B: Backend>() -> Vec<Case<B>> {
    vec![
        ("sgd", 12, || Box::new(Sgd::new(0.01).unwrap())),
        ("momentum", 20, || {
            Box::new(Sgd::new(0.01).unwrap().momentum(0.9).unwrap())
        }),
        ("nesterov", 20, || {
            Box::new(Sgd::new(0.01).unwrap().nesterov(0.9).unwrap())
        }),
        ("adagrad", 20, || Box::new(adagrad(0.01).unwrap())),
        ("rmsprop", 20, || Box::new(rmsprop(0.01, 0.99).unwrap())),
        ("adam", 28, || Box::new(Adam::new(1e-3).unwrap())),
        ("adamw", 28, || Box::new(Adam::adamw(1e-3, 0.01).unwrap())),
    ]
}

fn parameters<B: Backend>(backend: &B) -> Vec<Parameter<B>> {
    (0..TENSORS)
        .map(|i| {
            let rng = |seed| RngState { seed, offset: 0 };
            let p = Parameter::new(
                format!("w{i}"),
                Tensor::rand_normal([SIDE, SIDE], 0.0, 0.02, rng(i as u64), backend).unwrap(),
            );
            p.set_grad(
                Tensor::rand_normal([SIDE, SIDE], 0.0, 1e-3, rng(100 + i as u64), backend).unwrap(),
            );
            p
        })
        .collect()
}

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str, backend: &B) {
    let params = parameters(backend);
    let count = (TENSORS * SIDE * SIDE) as u64;
    let mut group = c.benchmark_group("optimizer_step_4M");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for (kind, bytes, make) in cases::<B>() {
        let mut optimizer = make();
        // The first step creates the state; time the steady state.
        optimizer.step(&params).unwrap();
        backend.sync().unwrap();
        group.throughput(Throughput::Bytes(bytes * count));
        group.bench_function(BenchmarkId::new(kind, name), |bench| {
            bench.iter(|| {
                optimizer.step(&params).unwrap();
                backend.sync().unwrap();
            })
        });
    }
    group.finish();
}

fn optimizers(c: &mut Criterion) {
    bench_backend(c, "cpu", &CpuBackend::new());
    match WgpuBackend::new() {
        Ok(gpu) => {
            let label = format!("wgpu:{}", gpu.adapter_info().name);
            bench_backend(c, &label, &gpu);
        }
        Err(e) => eprintln!("no GPU adapter, GPU benchmarks skipped: {e}"),
    }
}

criterion_group!(benches, optimizers);
criterion_main!(benches);
