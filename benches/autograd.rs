//! Forward + backward of the 3072-1024-1024-10 ReLU MLP at batch 256, through autograd and
//! with the same kernels called directly (the hand-written backward), on both backends. The
//! difference is autograd's bookkeeping.
//!
//!     cargo bench --bench autograd

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use kiln::prelude::*;
use kiln::tensor::UnaryOp;
use std::time::Duration;

const WIDTHS: [usize; 4] = [3072, 1024, 1024, 10];
const BATCH: usize = 256;

struct Mlp<B: Backend> {
    x: Tensor<B>,
    labels: Tensor<B>,
    weights: Vec<Tensor<B>>,
    biases: Vec<Tensor<B>>,
}

fn mlp<B: Backend>(backend: &B) -> Mlp<B> {
    let rng = |seed| RngState { seed, offset: 0 };
    let x = Tensor::rand_normal([BATCH, WIDTHS[0]], 0.0, 1.0, rng(1), backend).unwrap();
    let labels = Tensor::from_vec(
        (0..BATCH as u32).map(|i| i % 10).collect::<Vec<_>>(),
        [BATCH],
        backend,
    )
    .unwrap();
    let weights = WIDTHS
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            Tensor::rand_normal(
                [w[0], w[1]],
                0.0,
                (2.0 / w[0] as f32).sqrt(),
                rng(10 + i as u64),
                backend,
            )
            .unwrap()
        })
        .collect();
    let biases = WIDTHS[1..]
        .iter()
        .map(|&w| Tensor::zeros([w], DType::F32, backend).unwrap())
        .collect();
    Mlp {
        x,
        labels,
        weights,
        biases,
    }
}

/// Autograd: forward through Vars, then backward; returns the first weight's gradient.
fn with_autograd<B: Backend>(m: &Mlp<B>) -> Tensor<B> {
    let w: Vec<Var<B>> = m.weights.iter().cloned().map(Var::parameter).collect();
    let b: Vec<Var<B>> = m.biases.iter().cloned().map(Var::parameter).collect();
    let mut h = Var::constant(m.x.clone());
    for l in 0..w.len() {
        h = h.matmul(&w[l]).unwrap().add(&b[l]).unwrap();
        if l + 1 < w.len() {
            h = h.relu().unwrap();
        }
    }
    h.softmax_xent(&m.labels)
        .unwrap()
        .mean_all()
        .unwrap()
        .backward()
        .unwrap();
    w[0].grad().unwrap()
}

/// The same kernels in the same order, with the backward written by hand.
fn by_hand<B: Backend>(m: &Mlp<B>) -> Tensor<B> {
    let layers = m.weights.len();
    let mut inputs = vec![m.x.clone()];
    let mut pre = Vec::new();
    for l in 0..layers {
        let z = (inputs[l].matmul(&m.weights[l]).unwrap() + &m.biases[l]).unwrap();
        if l + 1 < layers {
            inputs.push(z.relu().unwrap());
        }
        pre.push(z);
    }
    let loss = pre[layers - 1].softmax_xent(&m.labels).unwrap();
    let _mean = (loss.sum_all().unwrap() / BATCH as f32).unwrap();
    let rows = Tensor::full([BATCH], 1.0 / BATCH as f64, DType::F32, m.x.backend()).unwrap();
    let mut dz = pre[layers - 1]
        .softmax_xent_backward(&m.labels, &rows)
        .unwrap();
    let mut dw0 = None;
    for l in (0..layers).rev() {
        let dw = inputs[l].t().unwrap().matmul(&dz).unwrap();
        let _db = dz.sum(0).unwrap();
        if l == 0 {
            dw0 = Some(dw);
            break;
        }
        let dh = dz.matmul(&m.weights[l].t().unwrap()).unwrap();
        dz = pre[l - 1].unary_backward(UnaryOp::Relu, &dh).unwrap();
    }
    dw0.unwrap()
}

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str, backend: &B) {
    let m = mlp(backend);
    // Validate: both paths give the same gradient.
    let a = with_autograd(&m).to_vec::<f32>().unwrap();
    let h = by_hand(&m).to_vec::<f32>().unwrap();
    let worst = a
        .iter()
        .zip(&h)
        .map(|(x, y)| (x - y).abs() / (1e-6 + y.abs()))
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-3,
        "{name}: autograd and hand-written gradients differ by {worst}"
    );
    let mut group = c.benchmark_group("mlp_3072_1024_1024_10_batch256");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.bench_function(BenchmarkId::new("autograd", name), |bench| {
        bench.iter(|| {
            let g = with_autograd(&m);
            backend.sync().unwrap();
            g
        })
    });
    group.bench_function(BenchmarkId::new("kernels_directly", name), |bench| {
        bench.iter(|| {
            let g = by_hand(&m);
            backend.sync().unwrap();
            g
        })
    });
    group.finish();
}

fn autograd(c: &mut Criterion) {
    bench_backend(c, "cpu", &CpuBackend::new());
    match WgpuBackend::new() {
        Ok(gpu) => bench_backend(c, "wgpu", &gpu),
        Err(e) => eprintln!("no GPU adapter, benching the CPU only: {e}"),
    }
}

criterion_group!(benches, autograd);
criterion_main!(benches);
