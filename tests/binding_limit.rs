//! Batches past the device's storage-binding limit: training splits them into micro-batches
//! (gradients accumulated, one optimiser step) and evaluation halves its batches, so a model
//! whose activations do not fit at the configured batch size still trains, to the result the
//! whole batches give. The limit is lowered with `WgpuOptions::max_binding_bytes`, as on a
//! smaller GPU.

mod common;
use common::*;
use kiln::nn::{Conv2d, Conv2dConfig, Flatten};
use kiln::prelude::*;
use kiln::tensor::wgpu::WgpuOptions;
use kiln::tensor::UnaryOp;
use kiln::train::*;

/// conv 3×3 (1 → 8, padding 1, ReLU), flatten, linear 512 → 4.
fn cnn(backend: &WgpuBackend) -> Sequential<WgpuBackend> {
    let conv = Conv2dConfig::new(1, 8, 3)
        .padding(1)
        .activation(Some(UnaryOp::Relu));
    Sequential::new()
        .push(Conv2d::new("conv", conv, Init::XavierNormal, 1, backend).unwrap())
        .push(Flatten)
        .push(Linear::new("fc", 512, 4, Init::XavierNormal, None, 2, backend).unwrap())
}

fn device(max_binding_bytes: Option<u64>) -> WgpuBackend {
    WgpuBackend::with_options(WgpuOptions {
        max_binding_bytes,
        ..WgpuOptions::default()
    })
    .unwrap()
}

#[test]
fn batches_past_the_binding_limit_train_as_micro_batches() {
    let Some(_) = gpu() else { return };
    // A batch of 40 makes [40, 8, 8, 8] f32 activations, 81 920 bytes: past a 48 KiB limit,
    // which 20 images (40 960 bytes) and every other tensor of the run fit.
    let capped = device(Some(48 * 1024));
    let whole = device(None);
    let learner = || {
        Learner::new()
            .epochs(3)
            .batch_size(40)
            .layout(InputLayout::Images)
            .validation(80)
            .seed(4)
            .quiet(true)
    };
    let settings = learner().settings().clone();
    let data = RunData::prepare(&quadrants(480, 1), quadrants(160, 2), &settings).unwrap();
    let (_, split) = learner().fit(&capped, cnn(&capped), &data).unwrap();
    let (_, reference) = learner().fit(&whole, cnn(&whole), &data).unwrap();
    assert_eq!((split.micro_batches, reference.micro_batches), (2, 1));
    // The same gradients up to the order of f32 sums, so the same training.
    for (a, b) in split.history.iter().zip(&reference.history) {
        let scale = b.train_loss.abs().max(1.0);
        assert!(
            (a.train_loss - b.train_loss).abs() <= 1e-3 * scale,
            "epoch {}: {} split, {} whole",
            b.epoch,
            a.train_loss,
            b.train_loss
        );
    }
    assert!(split.test.accuracy >= 0.9, "{}", split.test.accuracy);
    assert!((split.test.accuracy - reference.test.accuracy).abs() <= 0.02);
    for ((name, a), (_, b)) in split.parameters.iter().zip(&reference.parameters) {
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-3, "{name}: parameters differ by {worst}");
    }
}
