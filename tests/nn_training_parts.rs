//! Schedules, regularisation, AdaGrad/RMSProp and EMA, against hand-computed values.

mod common;
use common::*;
use kiln::nn::optim::{adagrad, rmsprop};
use kiln::nn::regularization::{
    apply_max_norm, clip_grad_norm, clip_grad_value, elastic_net_penalty, l1_penalty, l2_penalty,
};
use kiln::nn::schedule::{Decay, ReduceOnPlateau, Schedule};
use kiln::nn::Ema;
use kiln::prelude::*;

fn near(a: f32, b: f64, what: &str) {
    assert!(
        (a as f64 - b).abs() < 1e-6 * b.abs().max(1.0),
        "{what}: {a} vs {b}"
    );
}

#[test]
fn schedules_give_the_stated_rates() {
    let lr = 0.1f64;
    let s = Schedule::new(
        0.1,
        Decay::Step {
            every: 10,
            gamma: 0.5,
        },
    )
    .unwrap();
    near(s.lr_at(9), lr, "step before the drop");
    near(s.lr_at(10), lr * 0.5, "step after one drop");
    near(s.lr_at(25), lr * 0.25, "step after two drops");
    let s = Schedule::new(0.1, Decay::Exponential { gamma: 0.9 }).unwrap();
    near(s.lr_at(3), lr * 0.9f64.powi(3), "exponential");
    let s = Schedule::new(0.1, Decay::InverseTime { k: 0.5 }).unwrap();
    near(s.lr_at(4), lr / 3.0, "1/t");
    let s = Schedule::new(
        0.1,
        Decay::Cosine {
            period: 10,
            min_lr: 0.0,
            restarts: false,
            period_mult: 1,
        },
    )
    .unwrap();
    near(s.lr_at(0), lr, "cosine start");
    near(s.lr_at(5), lr / 2.0, "cosine midpoint");
    near(s.lr_at(10), 0.0, "cosine end");
    near(s.lr_at(20), 0.0, "cosine stays at the floor");
    // Warm restarts with doubling periods: cycles [0, 10), [10, 30), [30, 70).
    let s = Schedule::new(
        0.1,
        Decay::Cosine {
            period: 10,
            min_lr: 0.0,
            restarts: true,
            period_mult: 2,
        },
    )
    .unwrap();
    near(s.lr_at(10), lr, "restart");
    near(s.lr_at(20), lr / 2.0, "middle of the second cycle");
    near(s.lr_at(30), lr, "second restart");
    let s = Schedule::new(
        0.1,
        Decay::Triangular {
            half_cycle: 4,
            max_lr: 0.5,
        },
    )
    .unwrap();
    near(s.lr_at(2), 0.3, "triangular rising");
    near(s.lr_at(4), 0.5, "triangular peak");
    near(s.lr_at(8), 0.1, "triangular back down");
    let s = Schedule::new(
        0.1,
        Decay::Step {
            every: 10,
            gamma: 0.5,
        },
    )
    .unwrap()
    .with_warmup(5);
    near(s.lr_at(0), lr / 5.0, "warm-up start");
    near(s.lr_at(4), lr, "warm-up end");
    near(s.lr_at(15), lr * 0.5, "decay clock starts after warm-up");
    assert!(Schedule::new(-1.0, Decay::Constant).is_err());
    assert!(Schedule::new(0.1, Decay::Exponential { gamma: 1.5 }).is_err());
}

#[test]
fn reduce_on_plateau_waits_for_patience() {
    let mut plateau = ReduceOnPlateau::new(0.5, 2, 0.01).unwrap();
    let mut lr = 0.1;
    for metric in [1.0, 0.9, 0.9, 0.9] {
        lr = plateau.observe(metric, lr);
    }
    near(lr, 0.1, "two bad epochs are within patience");
    lr = plateau.observe(0.9, lr);
    near(lr, 0.05, "the third bad epoch halves the rate");
    for _ in 0..20 {
        lr = plateau.observe(0.9, lr);
    }
    near(lr, 0.01, "never below min_lr");
}

fn param(values: &[f32], shape: &[usize]) -> Parameter<CpuBackend> {
    Parameter::new(
        "w",
        Tensor::from_slice(values, shape.to_vec(), &cpu()).unwrap(),
    )
}

#[test]
fn penalties_add_the_stated_amounts_and_raise_the_loss() {
    let w = param(&[1.0, -2.0, 3.0], &[3]);
    // L2: 0.1/2 · (1 + 4 + 9) = 0.7; L1: 0.1 · 6 = 0.6.
    near(
        l2_penalty(std::slice::from_ref(&w), 0.1)
            .unwrap()
            .unwrap()
            .value()
            .item()
            .unwrap() as f32,
        0.7,
        "L2",
    );
    near(
        l1_penalty(std::slice::from_ref(&w), 0.1)
            .unwrap()
            .unwrap()
            .value()
            .item()
            .unwrap() as f32,
        0.6,
        "L1",
    );
    // Elastic net over two tensors, [1, −2, 3] and [0.5], with λ1 = 0.1 and λ2 = 0.2:
    // 0.1 · (6 + 0.5) + 0.2/2 · (14 + 0.25) = 0.65 + 1.425 = 2.075. Its gradient at each
    // weight is λ1·sign(w) + λ2·w: at w = −2, −0.1 − 0.4 = −0.5.
    let v = param(&[0.5], &[1]);
    let elastic = elastic_net_penalty(&[w.clone(), v], 0.1, 0.2)
        .unwrap()
        .unwrap();
    near(elastic.value().item().unwrap() as f32, 2.075, "elastic net");
    elastic.backward().unwrap();
    let grad = w.grad().unwrap().to_vec::<f32>().unwrap();
    near(grad[1], -0.5, "elastic net gradient at −2");
    near(grad[2], 0.1 + 0.6, "elastic net gradient at 3");
    // With either λ zero it is the other penalty alone.
    let only_l1 = elastic_net_penalty(std::slice::from_ref(&w), 0.1, 0.0)
        .unwrap()
        .unwrap();
    near(
        only_l1.value().item().unwrap() as f32,
        0.6,
        "elastic net with λ2 = 0",
    );
    // At the same weights, a loss with L2 added is larger.
    let c = cpu();
    let model = Mlp::new(&[4, 8, 3]).seed(1).build(&c).unwrap();
    let x = Var::constant(
        Tensor::rand_normal([6, 4], 0.0, 1.0, RngState { seed: 2, offset: 0 }, &c).unwrap(),
    );
    let labels = Tensor::from_vec(vec![0u32, 1, 2, 0, 1, 2], [6], &c).unwrap();
    let data_loss = model
        .forward(&x)
        .unwrap()
        .softmax_xent(&labels)
        .unwrap()
        .mean_all()
        .unwrap();
    let total = data_loss
        .add(&l2_penalty(&model.parameters(), 0.01).unwrap().unwrap())
        .unwrap();
    assert!(total.value().item().unwrap() > data_loss.value().item().unwrap());
    // Its gradient is λ·w on top of the data gradient.
    total.backward().unwrap();
}

#[test]
fn clipping_and_max_norm_rescale_as_stated() {
    let a = param(&[0.0, 0.0], &[2]);
    let b = param(&[0.0], &[1]);
    a.set_grad(Tensor::from_vec(vec![3.0f32, 0.0], [2], &cpu()).unwrap());
    b.set_grad(Tensor::from_vec(vec![4.0f32], [1], &cpu()).unwrap());
    // Global norm 5; clipped to 1: every gradient scaled by 1/5.
    let norm = clip_grad_norm(&[a.clone(), b.clone()], 1.0)
        .unwrap()
        .unwrap();
    near(norm.item().unwrap() as f32, 5.0, "global norm");
    near(a.grad().unwrap().to_vec::<f32>().unwrap()[0], 0.6, "scaled");
    near(b.grad().unwrap().to_vec::<f32>().unwrap()[0], 0.8, "scaled");
    clip_grad_value(std::slice::from_ref(&b), 0.5).unwrap();
    near(
        b.grad().unwrap().to_vec::<f32>().unwrap()[0],
        0.5,
        "clamped",
    );
    // Columns [3, 4] (norm 5) and [0.3, 0.4] (norm 0.5); max-norm 1 shrinks only the first.
    let w = param(&[3.0, 0.3, 4.0, 0.4], &[2, 2]);
    apply_max_norm(&w, 1.0).unwrap();
    let v = w.value().to_vec::<f32>().unwrap();
    for (x, e) in v.iter().zip([0.6, 0.3, 0.8, 0.4]) {
        near(*x, e, "max-norm");
    }
}

#[test]
fn adagrad_and_rmsprop_match_hand_computed_steps() {
    let grads = [0.5f64, -1.0, 0.25];
    let (lr, alpha) = (0.1f64, 0.9f64);
    let (mut w_ada, mut g_ada, mut w_rms, mut v_rms) = (1.0f64, 0.0f64, 1.0f64, 0.0f64);
    let (mut ada, mut rms) = (vec![], vec![]);
    for &g in &grads {
        g_ada += g * g;
        w_ada -= lr * g / (g_ada.sqrt() + 1e-10);
        v_rms = alpha * v_rms + (1.0 - alpha) * g * g;
        w_rms -= lr * g / (v_rms.sqrt() + 1e-8);
        ada.push(w_ada);
        rms.push(w_rms);
    }
    // First AdaGrad step by hand: 1 − 0.1 · 0.5 / 0.5 = 0.9.
    assert!((ada[0] - 0.9).abs() < 1e-9);
    for (mut opt, expected) in [
        (Box::new(adagrad::<CpuBackend>(0.1).unwrap()), ada),
        (Box::new(rmsprop::<CpuBackend>(0.1, 0.9).unwrap()), rms),
    ] {
        let p = param(&[1.0], &[1]);
        for (g, e) in grads.iter().zip(&expected) {
            p.set_grad(Tensor::from_vec(vec![*g as f32], [1], &cpu()).unwrap());
            opt.step(std::slice::from_ref(&p)).unwrap();
            near(p.value().to_vec::<f32>().unwrap()[0], *e, "adaptive step");
        }
    }
}

#[test]
fn ema_averages_and_swaps() {
    let p = param(&[1.0], &[1]);
    let mut ema = Ema::new(0.5).unwrap();
    ema.update(std::slice::from_ref(&p)).unwrap(); // shadow = 1
    p.set(Tensor::from_vec(vec![3.0f32], [1], &cpu()).unwrap());
    ema.update(std::slice::from_ref(&p)).unwrap(); // shadow = 0.5 · 1 + 0.5 · 3 = 2
    ema.swap(std::slice::from_ref(&p));
    near(
        p.value().to_vec::<f32>().unwrap()[0],
        2.0,
        "averaged weights swapped in",
    );
    ema.swap(std::slice::from_ref(&p));
    near(
        p.value().to_vec::<f32>().unwrap()[0],
        3.0,
        "raw weights back",
    );
}
