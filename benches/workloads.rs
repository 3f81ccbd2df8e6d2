//! Criterion benches of the comparison harness's workloads (kiln-bench), per backend: the
//! micro workloads, the training step and the overhead probes, each GPU workload validated
//! against the CPU backend before it is timed. `compare_backends` prints the same workloads
//! as one table with device timing and ceilings; these give criterion's statistics.
//!
//!     cargo bench --bench workloads                  # the full sizes
//!     KILN_BENCH_QUICK=1 cargo bench --bench workloads  # the quick suite's sizes
//!     cargo bench --bench workloads -- adam          # one workload

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kiln::bench::harness::{items, validate, Item, Suite};
use kiln::bench::{BenchDevice, Work};
use kiln::prelude::*;
use std::time::Duration;

fn suite() -> Suite {
    if std::env::var("KILN_BENCH_QUICK").is_ok_and(|v| v == "1") {
        Suite::Quick
    } else {
        Suite::Full
    }
}

fn bench_on<D: BenchDevice>(
    c: &mut Criterion,
    device: &D,
    backend: &str,
    cpu: Option<&CpuBackend>,
) {
    let mut group = c.benchmark_group("workloads");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for item in items(suite()) {
        match item {
            Item::Micro(w) => {
                let inputs = w.inputs(device).unwrap();
                if let Some(cpu) = cpu {
                    let actual = w.run(&inputs).unwrap().to_vec::<f64>().unwrap();
                    let expected = w.run(&w.inputs(cpu).unwrap()).unwrap();
                    let expected = expected.to_vec::<f64>().unwrap();
                    validate(&w.name, &actual, &expected, w.tolerance()).unwrap();
                }
                group.throughput(match w.work() {
                    Work::Flops(f) => Throughput::Elements(f as u64),
                    Work::Bytes(b) => Throughput::Bytes(b as u64),
                });
                let id = BenchmarkId::new(backend, format!("{} {}", w.name, w.shape()));
                group.bench_function(id, |b| {
                    b.iter(|| {
                        let out = w.run(&inputs).unwrap();
                        device.sync().unwrap();
                        out
                    })
                });
            }
            Item::Step(s) => {
                let mut state = s.prepare(device).unwrap();
                group.throughput(Throughput::Elements(s.flops() as u64));
                let id = BenchmarkId::new(backend, format!("{} {}", s.name(), s.shape()));
                group.bench_function(id, |b| {
                    b.iter(|| {
                        let loss = s.step(&mut state).unwrap();
                        device.sync().unwrap();
                        loss
                    })
                });
            }
            Item::Overhead(o) => {
                let x = Tensor::from_slice(&[1.0f32], [1], device).unwrap();
                group.throughput(Throughput::Elements(o.kernels() as u64));
                let id = BenchmarkId::new(backend, format!("{} {}", o.name(), o.shape()));
                group.bench_function(id, |b| b.iter(|| o.run(&x).unwrap()));
            }
        }
    }
    group.finish();
}

fn workloads(c: &mut Criterion) {
    let cpu = CpuBackend::new();
    bench_on(c, &cpu, "cpu", None);
    match WgpuBackend::new() {
        Ok(gpu) => bench_on(c, &gpu, "wgpu", Some(&cpu)),
        Err(e) => eprintln!("no GPU adapter, benching the CPU only: {e}"),
    }
}

criterion_group!(benches, workloads);
criterion_main!(benches);
