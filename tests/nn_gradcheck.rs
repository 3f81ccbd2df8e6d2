//! Gradient checks (centred differences in f64 on the CPU backend) of the layers with their
//! own backward rules or compositions — PReLU, Maxout, BatchNorm1d — with respect to the input
//! and every parameter, and of each loss with respect to its input.

mod common;
use common::*;
use kiln::nn::loss::{
    binary_cross_entropy_with_logits, mean_squared_error, multiclass_hinge, one_hot,
    softmax_cross_entropy,
};
use kiln::nn::{BatchNorm1d, Maxout, Prelu};
use kiln::prelude::*;

/// Gradient-checks `module` followed by a weighted sum (so every output element gets a
/// different upstream gradient) with respect to the input `x` and every parameter.
fn check_module(what: &str, module: &dyn Module<CpuBackend>, x: Tensor<CpuBackend>) {
    let params = module.parameters();
    let mut inputs = vec![x];
    inputs.extend(
        params
            .iter()
            .map(|p| p.value().cast(DType::F64).unwrap().deep_copy().unwrap()),
    );
    let out_shape = {
        for (p, v) in params.iter().zip(&inputs[1..]) {
            p.bind(Var::constant(v.clone()));
        }
        module
            .forward(&Var::constant(inputs[0].clone()))
            .unwrap()
            .shape()
            .clone()
    };
    let weights = f64_tensor(99, out_shape.dims(), -1.0, 1.0);
    let f = |vars: &[Var<CpuBackend>]| {
        for (p, v) in params.iter().zip(&vars[1..]) {
            p.bind(v.clone());
        }
        module
            .forward(&vars[0])?
            .mul(&Var::constant(weights.clone()))?
            .sum_all()
    };
    let report = gradcheck(f, &inputs, GradcheckOptions::default()).unwrap();
    assert!(report.passed(), "{what}:\n{report}");
    assert_eq!(report.inputs.len(), 1 + params.len());
    for (i, r) in report.inputs.iter().enumerate() {
        assert!(r.checked > 0, "{what}: input {i} had every element skipped");
    }
}

#[test]
fn gradcheck_prelu_input_and_alpha() {
    let prelu = Prelu::new("act", 5, 0.25, &cpu()).unwrap();
    check_module("PReLU", &prelu, f64_tensor(1, &[4, 5], -2.0, 2.0));
}

#[test]
fn gradcheck_maxout_input_weights_and_bias() {
    let maxout = Maxout::new("maxout", 6, 3, 4, Init::XavierNormal, 7, &cpu()).unwrap();
    check_module("Maxout", &maxout, f64_tensor(2, &[5, 6], -1.0, 1.0));
}

#[test]
fn gradcheck_batch_norm_in_training_mode() {
    let bn = BatchNorm1d::new("bn", 4, &cpu()).unwrap();
    // γ and β away from their initial 1 and 0 so that both terms matter.
    let params = bn.parameters();
    params[0].set(f64_tensor(3, &[4], 0.5, 2.0).cast(DType::F32).unwrap());
    params[1].set(f64_tensor(4, &[4], -1.0, 1.0).cast(DType::F32).unwrap());
    check_module("BatchNorm1d", &bn, f64_tensor(5, &[6, 4], -2.0, 2.0));
}

#[test]
fn gradcheck_batch_norm_in_evaluation_mode() {
    let mut bn = BatchNorm1d::new("bn", 3, &cpu()).unwrap();
    bn.set_training(false);
    check_module("BatchNorm1d (eval)", &bn, f64_tensor(6, &[4, 3], -2.0, 2.0));
}

fn check_loss(
    what: &str,
    logits: Tensor<CpuBackend>,
    loss: impl Fn(&Var<CpuBackend>) -> Result<Var<CpuBackend>>,
) {
    let report = gradcheck(|v| loss(&v[0]), &[logits], GradcheckOptions::default()).unwrap();
    assert!(report.passed(), "{what}:\n{report}");
    assert!(
        report.inputs[0].checked > 0,
        "{what}: every element skipped"
    );
}

#[test]
fn gradcheck_each_loss() {
    let c = cpu();
    let labels = Tensor::from_vec(vec![0u32, 2, 1, 3, 2], [5], &c).unwrap();
    let logits = || f64_tensor(10, &[5, 4], -3.0, 3.0);
    check_loss("cross-entropy", logits(), |v| {
        softmax_cross_entropy(v, &labels, 0.0)
    });
    check_loss("cross-entropy, label smoothing 0.1", logits(), |v| {
        softmax_cross_entropy(v, &labels, 0.1)
    });
    let soft = f64_tensor(11, &[5, 4], 0.0, 1.0);
    let soft = (&soft / &soft.sum(1).unwrap().reshape([5, 1]).unwrap()).unwrap();
    check_loss("cross-entropy, soft targets", logits(), |v| {
        v.softmax_xent(&soft)?.mean_all()
    });
    let target = f64_tensor(12, &[5, 4], -1.0, 1.0);
    check_loss("mean squared error", logits(), |v| {
        mean_squared_error(v, &target)
    });
    check_loss("multiclass hinge", logits(), |v| {
        multiclass_hinge(v, &labels, 1.0)
    });
    let binary = one_hot(&labels, 4, DType::F64).unwrap();
    check_loss("binary cross-entropy with logits", logits(), |v| {
        binary_cross_entropy_with_logits(v, &binary)
    });
}

#[test]
fn gradcheck_conv2d_input_weights_and_bias() {
    use kiln::nn::{Conv2d, Conv2dConfig};
    // Stride 2, padding 1, a fused smooth activation, a bias.
    let config = Conv2dConfig::new(3, 4, 3)
        .stride(2)
        .padding(1)
        .activation(Some(UnaryOp::Tanh));
    let conv = Conv2d::new("conv", config, Init::XavierNormal, 3, &cpu()).unwrap();
    check_module(
        "Conv2d 3×3 s2 p1 tanh",
        &conv,
        f64_tensor(2, &[2, 3, 5, 6], -1.0, 1.0),
    );
    // Dilation 2, no bias, no activation; a 1×1 kernel (the matmul route) too.
    let config = Conv2dConfig::new(2, 3, 3)
        .dilation(2)
        .padding(2)
        .bias(false);
    let conv = Conv2d::new("dilated", config, Init::XavierNormal, 4, &cpu()).unwrap();
    check_module(
        "Conv2d dilation 2",
        &conv,
        f64_tensor(3, &[2, 2, 7, 5], -1.0, 1.0),
    );
    let config = Conv2dConfig::new(3, 2, 1);
    let conv = Conv2d::new("pointwise", config, Init::XavierNormal, 5, &cpu()).unwrap();
    check_module("Conv2d 1×1", &conv, f64_tensor(4, &[2, 3, 4, 3], -1.0, 1.0));
}

#[test]
fn gradcheck_grouped_and_depthwise_conv2d() {
    use kiln::nn::{Conv2d, Conv2dConfig};
    // Two groups of 2 → 3 channels, stride 2, padding 1, a bias and tanh.
    let config = Conv2dConfig::new(4, 6, 3)
        .groups(2)
        .stride(2)
        .padding(1)
        .activation(Some(UnaryOp::Tanh));
    let conv = Conv2d::new("grouped", config, Init::XavierNormal, 6, &cpu()).unwrap();
    check_module(
        "Conv2d groups 2",
        &conv,
        f64_tensor(5, &[2, 4, 5, 6], -1.0, 1.0),
    );
    // Depthwise with a channel multiplier of 2, dilation 2, no bias; and a grouped 1×1.
    let config = Conv2dConfig::new(3, 6, 3)
        .groups(3)
        .dilation(2)
        .padding(2)
        .bias(false);
    let conv = Conv2d::new("depthwise", config, Init::XavierNormal, 7, &cpu()).unwrap();
    check_module(
        "Conv2d depthwise ×2",
        &conv,
        f64_tensor(6, &[2, 3, 7, 5], -1.0, 1.0),
    );
    let config = Conv2dConfig::new(4, 2, 1).groups(2);
    let conv = Conv2d::new("grouped 1×1", config, Init::XavierNormal, 8, &cpu()).unwrap();
    check_module(
        "Conv2d 1×1 groups 2",
        &conv,
        f64_tensor(7, &[2, 4, 3, 3], -1.0, 1.0),
    );
}

#[test]
fn gradcheck_pooling_and_batch_norm_2d() {
    use kiln::nn::{BatchNorm2d, Flatten, GlobalAvgPool, Pool2d};
    let x = || f64_tensor(5, &[2, 3, 7, 6], -2.0, 2.0);
    check_module(
        "max pool 3 s2 p1",
        &Pool2d::max(3).stride(2).padding(1),
        x(),
    );
    check_module("max pool 2", &Pool2d::max(2), x());
    check_module(
        "avg pool 2 s1 p1",
        &Pool2d::avg(2).stride(1).padding(1),
        x(),
    );
    check_module("global average pool", &GlobalAvgPool, x());
    check_module("flatten", &Flatten, x());
    let bn = BatchNorm2d::new("bn", 3, &cpu()).unwrap();
    check_module("BatchNorm2d", &bn, x());
}

#[test]
fn max_pool_ties_are_kinks_to_gradcheck() {
    // Integer pixels: most 2×2 windows hold a tie, where the arg-max (and so the gradient)
    // jumps; gradcheck must skip those elements, not fail on them.
    let data: Vec<f64> = random_vec(8, 2 * 2 * 6 * 6, 0.0, 3.0)
        .iter()
        .map(|v| v.floor() as f64)
        .collect();
    let x = Tensor::from_vec(data, [2, 2, 6, 6], &cpu()).unwrap();
    let weights = f64_tensor(9, &[2, 2, 3, 3], -1.0, 1.0);
    let report = gradcheck(
        |v: &[Var<CpuBackend>]| {
            v[0].max_pool2d(2, 2, 0)?
                .mul(&Var::constant(weights.clone()))?
                .sum_all()
        },
        &[x],
        GradcheckOptions::default(),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
    assert!(report.inputs[0].skipped_at_kinks > 0, "{report}");
    assert!(report.inputs[0].checked > 0, "{report}");
}
