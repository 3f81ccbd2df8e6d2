//! Hand-computed results for a few cases per op, checked on the CPU backend (the reference)
//! and on the GPU. Each expected value carries the arithmetic that produced it.

mod common;
use common::*;
use kiln::prelude::*;
use kiln::tensor::{Backend, HostData};

/// Runs `check` on the CPU, and on the GPU when there is one.
fn on_every_backend(check: impl Fn(&dyn Fn(&[f32], &[usize]) -> Box<dyn Checked>)) {
    let c = cpu();
    check(&|data, shape| Box::new(Tensor::from_slice(data, shape.to_vec(), &c).unwrap()));
    if let Some(g) = gpu() {
        check(&|data, shape| Box::new(Tensor::from_slice(data, shape.to_vec(), &g).unwrap()));
    }
}

/// The few tensor operations these checks use, over either backend.
trait Checked {
    fn matmul_t(&self, other_data: &[f32], shape: &[usize], transpose_other: bool) -> Vec<f64>;
    fn apply(&self, f: &dyn Fn(&str) -> Option<UnaryOp>, name: &str) -> Vec<f64>;
    fn reduce(&self, op: ReduceOp, axis: isize) -> Vec<f64>;
    fn softmax_rows(&self) -> Vec<f64>;
    fn xent(&self, labels: &[u32]) -> Vec<f64>;
    fn bn(&self) -> (Vec<f64>, Vec<f64>);
}

impl<B: Backend> Checked for Tensor<B> {
    fn matmul_t(&self, data: &[f32], shape: &[usize], transpose: bool) -> Vec<f64> {
        let other = Tensor::from_slice(data, shape.to_vec(), self.backend()).unwrap();
        let other = if transpose { other.t().unwrap() } else { other };
        values(self.matmul(&other).unwrap().to_host().unwrap())
    }
    fn apply(&self, f: &dyn Fn(&str) -> Option<UnaryOp>, name: &str) -> Vec<f64> {
        values(self.unary(f(name).unwrap()).unwrap().to_host().unwrap())
    }
    fn reduce(&self, op: ReduceOp, axis: isize) -> Vec<f64> {
        let t = match op {
            ReduceOp::Sum => self.sum(axis),
            ReduceOp::Mean => self.mean(axis),
            ReduceOp::Max => self.max(axis),
            ReduceOp::Min => self.min(axis),
            ReduceOp::ArgMax => self.argmax(axis),
        };
        values(t.unwrap().to_host().unwrap())
    }
    fn softmax_rows(&self) -> Vec<f64> {
        values(self.softmax().unwrap().to_host().unwrap())
    }
    fn xent(&self, labels: &[u32]) -> Vec<f64> {
        let l = Tensor::from_slice(labels, [labels.len()], self.backend()).unwrap();
        values(self.softmax_xent(&l).unwrap().to_host().unwrap())
    }
    fn bn(&self) -> (Vec<f64>, Vec<f64>) {
        let (m, v) = self.batch_norm_stats().unwrap();
        (values(m.to_host().unwrap()), values(v.to_host().unwrap()))
    }
}

fn close(actual: &[f64], expected: &[f64]) {
    assert_close(
        "known value",
        actual,
        expected,
        Tolerance::new("known value", 1e-6, 1e-6),
    );
}

#[test]
fn matmul_known_values() {
    on_every_backend(|t| {
        // [[1,2],[3,4]]·[[5,6],[7,8]] = [[1·5+2·7, 1·6+2·8], [3·5+4·7, 3·6+4·8]] = [[19,22],[43,50]]
        let a = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
        close(
            &a.matmul_t(&[5.0, 6.0, 7.0, 8.0], &[2, 2], false),
            &[19.0, 22.0, 43.0, 50.0],
        );
        // Same B stored transposed: [[5,7],[6,8]]ᵀ.
        close(
            &a.matmul_t(&[5.0, 7.0, 6.0, 8.0], &[2, 2], true),
            &[19.0, 22.0, 43.0, 50.0],
        );
    });
}

#[test]
fn activation_known_values() {
    let op = |name: &str| match name {
        "sigmoid" => Some(UnaryOp::Sigmoid),
        "relu" => Some(UnaryOp::Relu),
        "softplus" => Some(UnaryOp::Softplus),
        "leaky" => Some(UnaryOp::LeakyRelu { alpha: 0.1 }),
        "hard_tanh" => Some(UnaryOp::HardTanh),
        _ => None,
    };
    on_every_backend(|t| {
        let x = t(&[-2.0, 0.0, 3.0], &[3]);
        // sigmoid(-2) = 1/(1+e²) = 0.11920292, sigmoid(0) = 0.5, sigmoid(3) = 1/(1+e⁻³) = 0.95257413
        close(
            &x.apply(&op, "sigmoid"),
            &[0.11920292202211755, 0.5, 0.9525741268224334],
        );
        close(&x.apply(&op, "relu"), &[0.0, 0.0, 3.0]);
        // softplus(x) = ln(1 + eˣ): ln(1 + e⁻²) = 0.12692801, ln 2, ln(1 + e³) = 3.04858735
        close(
            &x.apply(&op, "softplus"),
            &[
                0.12692801104297263,
                std::f64::consts::LN_2,
                3.048587351573742,
            ],
        );
        close(&x.apply(&op, "leaky"), &[-0.2f32 as f64, 0.0, 3.0]);
        close(&x.apply(&op, "hard_tanh"), &[-1.0, 0.0, 1.0]);
    });
}

#[test]
fn reduction_known_values() {
    on_every_backend(|t| {
        let x = t(&[1.0, 5.0, 2.0, 4.0, 3.0, 6.0], &[2, 3]);
        close(&x.reduce(ReduceOp::Sum, 1), &[8.0, 13.0]);
        close(&x.reduce(ReduceOp::Sum, 0), &[5.0, 8.0, 8.0]);
        close(&x.reduce(ReduceOp::Mean, 1), &[8.0 / 3.0, 13.0 / 3.0]);
        close(&x.reduce(ReduceOp::Max, 0), &[4.0, 5.0, 6.0]);
        close(&x.reduce(ReduceOp::Min, 1), &[1.0, 3.0]);
        close(&x.reduce(ReduceOp::ArgMax, 1), &[1.0, 2.0]);
    });
}

#[test]
fn softmax_and_cross_entropy_known_values() {
    on_every_backend(|t| {
        // softmax([0, ln 3]) = [1/4, 3/4]; cross-entropy for label 1 = −ln(3/4) = 0.28768207
        let x = t(&[0.0, 3f32.ln()], &[1, 2]);
        close(&x.softmax_rows(), &[0.25, 0.75]);
        close(&x.xent(&[1]), &[0.2876820724517809]);
    });
}

#[test]
fn batch_norm_statistics_known_values() {
    on_every_backend(|t| {
        // Columns [1,3,5] and [2,2,2]: means 3 and 2; biased variances (4+0+4)/3 and 0.
        let x = t(&[1.0, 2.0, 3.0, 2.0, 5.0, 2.0], &[3, 2]);
        let (m, v) = x.bn();
        close(&m, &[3.0, 2.0]);
        close(&v, &[8.0 / 3.0, 0.0]);
    });
}

#[test]
fn adam_first_step_known_value() {
    // Step 1 with g = 0.5: m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25;
    // w = 1 − 0.1 · 0.5 / (0.5 + 1e-8) = 0.9 (to 1e-8). The hyper-parameters are f32
    // (β1 = 0.9f32 = 0.89999998), which moves m and v by ~1e-8.
    let c = cpu();
    let w = Tensor::from_slice(&[1.0f64], [1], &c).unwrap();
    let g = Tensor::from_slice(&[0.5f64], [1], &c).unwrap();
    let m = Tensor::zeros([1], DType::F64, &c).unwrap();
    let v = Tensor::zeros([1], DType::F64, &c).unwrap();
    let step = AdamStep {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: true,
        step: 1,
    };
    w.adam_step(&g, &m, &v, &step).unwrap();
    let w = w.to_vec::<f64>().unwrap()[0];
    assert!((w - 0.9).abs() < 1e-7, "{w}");
    assert!((m.to_vec::<f64>().unwrap()[0] - (1.0 - 0.9f32 as f64) * 0.5).abs() < 1e-15);
    assert!((v.to_vec::<f64>().unwrap()[0] - (1.0 - 0.999f32 as f64) * 0.25).abs() < 1e-15);
}

#[test]
fn cpu_backend_computes_in_f64() {
    // (1 + 1e-12) − 1 survives in f64 and vanishes in f32.
    let c = cpu();
    let x = Tensor::from_slice(&[1.0f64 + 1e-12], [1], &c).unwrap();
    let d = (x - 1.0).unwrap();
    let expected = (1.0f64 + 1e-12) - 1.0;
    assert_eq!(d.to_host().unwrap(), HostData::F64(vec![expected]));
    assert!(expected > 0.0 && (1.0f32 + 1e-12) - 1.0 == 0.0);
}

/// The depthwise convolution of 1..18 as [1, 2, 3, 3] by two 2×2 kernels, no bias.
fn depthwise_by_hand<B: Backend>(b: &B) -> Vec<f64> {
    let x = Tensor::from_vec((1..=18).map(|v| v as f32).collect(), [1, 2, 3, 3], b).unwrap();
    let w = vec![1.0f32, 0.0, 0.0, -1.0, 0.0, 1.0, 1.0, 0.0];
    let w = Tensor::from_vec(w, [2, 1, 2, 2], b).unwrap();
    let options = kiln::tensor::Conv2dOptions {
        groups: 2,
        ..Default::default()
    };
    values(
        x.conv2d(&w, None, None, options)
            .unwrap()
            .to_host()
            .unwrap(),
    )
}

#[test]
fn a_small_convolution_and_pooling_by_hand() {
    use kiln::tensor::Conv2dOptions;
    // x (1×1×3×3) = 1..9, w (1×1×2×2) = [[1, 0], [0, -1]], bias 0.5, stride 1, no padding:
    // y[i, j] = x[i, j] − x[i+1, j+1] + 0.5 = −4 + 0.5 everywhere.
    let x = Tensor::from_vec(
        (1..=9).map(|v| v as f32).collect::<Vec<_>>(),
        [1, 1, 3, 3],
        &cpu(),
    )
    .unwrap();
    let w = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, -1.0], [1, 1, 2, 2], &cpu()).unwrap();
    let b = Tensor::from_vec(vec![0.5f32], [1], &cpu()).unwrap();
    let y = x
        .conv2d(&w, Some(&b), None, Conv2dOptions::default())
        .unwrap();
    assert_eq!(y.dims(), [1, 1, 2, 2]);
    assert_eq!(values(y.to_host().unwrap()), [-3.5; 4]);
    // Padding 1, stride 2: tap (kh, kw) of output (i, j) reads x[2i − 1 + kh, 2j − 1 + kw].
    let padded = Conv2dOptions {
        stride: 2,
        padding: 1,
        dilation: 1,
        groups: 1,
    };
    let y = x.conv2d(&w, Some(&b), None, padded).unwrap();
    assert_eq!(y.dims(), [1, 1, 2, 2]);
    // (0,0): −x[0,0] = −1; (0,1): −x[0,2] = −3; (1,0): −x[2,0] = −7; (1,1): x[1,1] − x[2,2] = −4.
    assert_eq!(values(y.to_host().unwrap()), [-0.5, -2.5, -6.5, -3.5]);
    // Max and average pooling of x by 2×2 windows, stride 1: maxima 5, 6, 8, 9 (each window's
    // bottom-right, index 4, 5, 7, 8 in the plane), means 3, 4, 6, 7.
    let (m, idx) = x.max_pool2d(2, 1, 0).unwrap();
    assert_eq!(values(m.to_host().unwrap()), [5.0, 6.0, 8.0, 9.0]);
    assert_eq!(idx.to_vec::<u32>().unwrap(), [4, 5, 7, 8]);
    let a = x.avg_pool2d(2, 1, 0).unwrap();
    assert_eq!(values(a.to_host().unwrap()), [3.0, 4.0, 6.0, 7.0]);
    // Depthwise (groups 2): channel 0 = 1..9 through [[1, 0], [0, −1]] gives −4 everywhere;
    // channel 1 = 10..18 (10 + 3i + j) through [[0, 1], [1, 0]] gives x[i, j+1] + x[i+1, j] =
    // 24 + 6i + 2j. On the CPU and, where there is one, the GPU's grouped kernel.
    let expected = [-4.0, -4.0, -4.0, -4.0, 24.0, 26.0, 30.0, 32.0];
    assert_eq!(depthwise_by_hand(&cpu()), expected);
    if let Some(gpu) = gpu() {
        assert_eq!(depthwise_by_hand(&gpu), expected);
    }
    // A tie goes to the first maximum in scan order.
    let flat = Tensor::from_vec(vec![2.0f32, 2.0, 1.0, 2.0], [1, 1, 2, 2], &cpu()).unwrap();
    let (_, idx) = flat.max_pool2d(2, 2, 0).unwrap();
    assert_eq!(idx.to_vec::<u32>().unwrap(), [0]);
}
