//! Layers with modes and the losses: batch norm train/eval and running statistics, dropout
//! keep-rate and eval identity, Maxout/PReLU shapes, loss values by hand and by gradcheck.

mod common;
use common::*;
use kiln::nn::loss;
use kiln::nn::{Activation, BatchNorm1d, Dropout, Maxout, Prelu};
use kiln::prelude::*;
use kiln::tensor::UnaryOp;

#[test]
fn batch_norm_uses_batch_statistics_in_training_and_running_ones_in_eval() {
    let c = cpu();
    // Columns [1, 3, 5, 7] and [2, 2, 2, 10]: means 4 and 4; biased variances 5 and 12;
    // unbiased 20/3 and 16.
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 2.0, 5.0, 2.0, 7.0, 10.0], [4, 2], &c).unwrap();
    let mut bn = BatchNorm1d::new("bn", 2, &c).unwrap();
    let y = bn
        .forward(&Var::constant(x.clone()))
        .unwrap()
        .value()
        .to_vec::<f32>()
        .unwrap();
    let expected_first = [
        (1.0 - 4.0) / (5.0f32 + 1e-5).sqrt(),
        (2.0 - 4.0) / (12.0f32 + 1e-5).sqrt(),
    ];
    assert!(
        (y[0] - expected_first[0]).abs() < 1e-5 && (y[1] - expected_first[1]).abs() < 1e-5,
        "{y:?}"
    );
    let (rm, rv) = bn.running_statistics();
    // running = 0.9 · initial + 0.1 · batch (mean 0 → 0.4; variance 1 → 0.9 + 0.1 · unbiased).
    let (rm, rv) = (rm.to_vec::<f32>().unwrap(), rv.to_vec::<f32>().unwrap());
    assert!(
        (rm[0] - 0.4).abs() < 1e-6 && (rm[1] - 0.4).abs() < 1e-6,
        "{rm:?}"
    );
    assert!(
        (rv[0] - (0.9 + 0.1 * 20.0 / 3.0)).abs() < 1e-5 && (rv[1] - (0.9 + 1.6)).abs() < 1e-5,
        "{rv:?}"
    );
    bn.set_training(false);
    let y = bn
        .forward(&Var::constant(x))
        .unwrap()
        .value()
        .to_vec::<f32>()
        .unwrap();
    assert!(
        (y[0] - (1.0 - rm[0]) / (rv[0] + 1e-5).sqrt()).abs() < 1e-5,
        "eval uses running statistics"
    );
}

#[test]
fn dropout_keeps_one_minus_p_in_training_and_is_the_identity_in_eval() {
    let c = cpu();
    let n = 20_000;
    let x = Var::constant(Tensor::ones([n], DType::F32, &c).unwrap());
    let mut dropout = Dropout::new(0.25, 7).unwrap();
    let y = dropout
        .forward(&x)
        .unwrap()
        .value()
        .to_vec::<f32>()
        .unwrap();
    let kept = y.iter().filter(|&&v| v > 0.0).count() as f64;
    // Binomial(n, 0.75): σ = √(n · 0.75 · 0.25) ≈ 61; 3σ bound.
    assert!((kept - 0.75 * n as f64).abs() < 3.0 * 61.3, "kept {kept}");
    assert!(
        y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6),
        "inverted scaling"
    );
    let y2 = dropout
        .forward(&x)
        .unwrap()
        .value()
        .to_vec::<f32>()
        .unwrap();
    assert_ne!(y, y2, "each call draws a new mask");
    Module::<CpuBackend>::set_training(&mut dropout, false);
    assert_eq!(
        dropout
            .forward(&x)
            .unwrap()
            .value()
            .to_vec::<f32>()
            .unwrap(),
        vec![1.0; n]
    );
    assert!(Dropout::new(1.0, 0).is_err());
}

#[test]
fn maxout_prelu_and_activation_layers_have_the_expected_shapes() {
    let c = cpu();
    let x = Var::constant(
        Tensor::rand_normal([5, 6], 0.0, 1.0, RngState { seed: 1, offset: 0 }, &c).unwrap(),
    );
    let maxout = Maxout::new("mo", 6, 4, 3, Init::XavierUniform, 2, &c).unwrap();
    assert_eq!(maxout.forward(&x).unwrap().shape().dims(), &[5, 4]);
    assert_eq!(maxout.parameters()[0].value().dims(), &[6, 12]);
    let prelu = Prelu::new("p", 6, 0.25, &c).unwrap();
    let y = prelu.forward(&x).unwrap().value().to_vec::<f32>().unwrap();
    let xv = x.value().to_vec::<f32>().unwrap();
    assert!(xv.iter().zip(&y).all(|(a, b)| if *a > 0.0 {
        a == b
    } else {
        (a * 0.25 - b).abs() < 1e-7
    }));
    let tanh = Activation(UnaryOp::Tanh);
    assert_eq!(
        Module::<CpuBackend>::forward(&tanh, &x)
            .unwrap()
            .shape()
            .dims(),
        &[5, 6]
    );
}

#[test]
fn maxout_takes_the_largest_piece_of_each_unit() {
    // 2 inputs → 2 units of 2 pieces: W [2, 4] = [[1, −1, 0.5, 3], [0, 2, −1, −2]],
    // b = [0, 0.5, 0, 0]; unit u owns columns 2u and 2u + 1.
    // x = [1, 1]: columns [1, 1.5, −0.5, 1] → [max(1, 1.5), max(−0.5, 1)] = [1.5, 1].
    // x = [2, −1]: columns [2, −3.5, 2, 8] → [2, 8].
    let c = cpu();
    let maxout = Maxout::new("mo", 2, 2, 2, Init::XavierUniform, 2, &c).unwrap();
    let params = maxout.parameters();
    params[0].set(
        Tensor::from_vec(
            vec![1.0f32, -1.0, 0.5, 3.0, 0.0, 2.0, -1.0, -2.0],
            [2, 4],
            &c,
        )
        .unwrap(),
    );
    params[1].set(Tensor::from_vec(vec![0.0f32, 0.5, 0.0, 0.0], [4], &c).unwrap());
    let x = Var::constant(Tensor::from_vec(vec![1.0f32, 1.0, 2.0, -1.0], [2, 2], &c).unwrap());
    let y = maxout.forward(&x).unwrap().value().to_vec::<f32>().unwrap();
    assert_eq!(y, vec![1.5, 1.0, 2.0, 8.0]);
}

#[test]
fn losses_match_hand_computed_values() {
    let c = cpu();
    let v = |data: Vec<f32>, shape: &[usize]| {
        Var::constant(Tensor::from_vec(data, shape.to_vec(), &c).unwrap())
    };
    let t = |data: Vec<f32>, shape: &[usize]| Tensor::from_vec(data, shape.to_vec(), &c).unwrap();
    // MSE of [1, 2] against [0, 0]: (1 + 4) / 2.
    let mse = loss::mean_squared_error(&v(vec![1.0, 2.0], &[2]), &t(vec![0.0, 0.0], &[2])).unwrap();
    assert!((mse.value().item().unwrap() - 2.5).abs() < 1e-6);
    // BCE with logits at x = 0: ln 2 whatever the target.
    let bce =
        loss::binary_cross_entropy_with_logits(&v(vec![0.0, 0.0], &[2]), &t(vec![1.0, 0.0], &[2]))
            .unwrap();
    assert!((bce.value().item().unwrap() - std::f64::consts::LN_2).abs() < 1e-6);
    // Hinge, scores [3, 1, 2] with margin 1: label 0 → 0; label 1 → (3−1+1) + (2−1+1) = 5.
    let scores = v(vec![3.0, 1.0, 2.0, 3.0, 1.0, 2.0], &[2, 3]);
    let labels = Tensor::from_vec(vec![0u32, 1], [2], &c).unwrap();
    let hinge = loss::multiclass_hinge(&scores, &labels, 1.0).unwrap();
    assert!(
        (hinge.value().item().unwrap() - 2.5).abs() < 1e-6,
        "mean of 0 and 5"
    );
    // Label smoothing ε = 0.1 over 3 classes: targets (0.9·onehot + 0.0333…).
    let logits = v(vec![0.0, 0.0, 0.0], &[1, 3]);
    let smoothed = loss::softmax_cross_entropy(
        &logits,
        &Tensor::from_vec(vec![2u32], [1], &c).unwrap(),
        0.1,
    )
    .unwrap();
    assert!(
        (smoothed.value().item().unwrap() - 3f64.ln()).abs() < 1e-6,
        "uniform logits: ln 3 for any targets"
    );
    assert!(loss::softmax_cross_entropy(
        &logits,
        &Tensor::from_vec(vec![2u32], [1], &c).unwrap(),
        1.0
    )
    .is_err());
}

/// A loss of one variable, as gradcheck takes it.
type LossFn<'a> = dyn Fn(&[Var<CpuBackend>]) -> kiln::tensor::Result<Var<CpuBackend>> + 'a;

#[test]
fn gradcheck_losses() {
    let x = |seed, shape: &[usize]| {
        let data: Vec<f64> = random_vec(seed, shape.iter().product(), -2.0, 2.0)
            .into_iter()
            .map(|v| v as f64)
            .collect();
        Tensor::from_vec(data, shape.to_vec(), &cpu()).unwrap()
    };
    let labels = Tensor::from_vec(vec![0u32, 2, 1, 2], [4], &cpu()).unwrap();
    let targets = x(90, &[4, 3]);
    let probabilities = Tensor::from_vec(
        vec![
            1.0f64, 0.0, 1.0, 0.0, 0.5, 0.25, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0,
        ],
        [4, 3],
        &cpu(),
    )
    .unwrap();
    let cases: Vec<(&str, Box<LossFn<'_>>)> = vec![
        (
            "cross-entropy, smoothing 0.1",
            Box::new(|v| loss::softmax_cross_entropy(&v[0], &labels, 0.1)),
        ),
        (
            "mse",
            Box::new(|v| loss::mean_squared_error(&v[0], &targets)),
        ),
        (
            "hinge",
            Box::new(|v| loss::multiclass_hinge(&v[0], &labels, 1.0)),
        ),
        (
            "bce with logits",
            Box::new(|v| loss::binary_cross_entropy_with_logits(&v[0], &probabilities)),
        ),
    ];
    for (name, f) in cases {
        let report = gradcheck(f, &[x(91, &[4, 3])], GradcheckOptions::default()).unwrap();
        assert!(report.passed(), "{name}:\n{report}");
    }
}
