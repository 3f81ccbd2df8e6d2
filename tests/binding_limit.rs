//! Batches past the device's storage-binding limit: training splits them into micro-batches
//! (gradients accumulated, one optimiser step) and evaluation halves its batches, so a model
//! whose activations do not fit at the configured batch size still trains, to the result the
//! whole batches give. The limit is lowered with `WgpuOptions::max_binding_bytes`, as on a
//! smaller GPU.

mod common;
use common::*;
use kiln::nn::{Activation, BatchNorm2d, Conv2d, Conv2dConfig, Dropout, Flatten};
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

/// Batches of 40 quadrant images, 80 held out for validation.
fn learner(epochs: usize) -> Learner<'static> {
    Learner::new()
        .epochs(epochs)
        .batch_size(40)
        .layout(InputLayout::Images)
        .validation(80)
        .seed(4)
        .quiet(true)
}

/// 480 training and 160 test images, split as `learner` splits them.
fn data() -> RunData {
    let settings = learner(1).settings().clone();
    RunData::prepare(&quadrants(480, 1), quadrants(160, 2), &settings).unwrap()
}

#[test]
fn batches_past_the_binding_limit_train_as_micro_batches() {
    let Some(_) = gpu() else { return };
    // A batch of 40 makes [40, 8, 8, 8] f32 activations, 81 920 bytes: past a 48 KiB limit,
    // which 20 images (40 960 bytes) and every other tensor of the run fit.
    let capped = device(Some(48 * 1024));
    let whole = device(None);
    let data = data();
    let (_, split) = learner(3).fit(&capped, cnn(&capped), &data).unwrap();
    let (_, reference) = learner(3).fit(&whole, cnn(&whole), &data).unwrap();
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

/// conv 3×3 (1 → 2, padding 1), batch norm, ReLU, dropout 0.2, conv 3×3 (2 → 8, padding 1,
/// ReLU), flatten, linear 512 → 4: the activations past the limit come after the batch norm
/// and the dropout have run.
fn cnn_with_state(backend: &WgpuBackend) -> Sequential<WgpuBackend> {
    let narrow = Conv2dConfig::new(1, 2, 3).padding(1).bias(false);
    let wide = Conv2dConfig::new(2, 8, 3)
        .padding(1)
        .activation(Some(UnaryOp::Relu));
    Sequential::new()
        .push(Conv2d::new("conv0", narrow, Init::XavierNormal, 1, backend).unwrap())
        .push(BatchNorm2d::new("conv0.bn", 2, backend).unwrap())
        .push(Activation(UnaryOp::Relu))
        .push(Dropout::new(0.2, 3).unwrap().named("drop"))
        .push(Conv2d::new("conv1", wide, Init::XavierNormal, 2, backend).unwrap())
        .push(Flatten)
        .push(Linear::new("fc", 512, 4, Init::XavierNormal, None, 3, backend).unwrap())
}

/// The whole-batch attempt that does not fit leaves no trace: batch norm's running statistics
/// and the dropout stream see only the micro-batches, so a run that finds the split matches
/// one told to split from the start (`micro_batches(2)`), buffers included.
#[test]
fn a_batch_that_does_not_fit_leaves_no_trace_of_the_attempt() {
    let Some(_) = gpu() else { return };
    let capped = device(Some(48 * 1024));
    let whole = device(None);
    let data = data();
    let (_, found) = learner(2)
        .fit(&capped, cnn_with_state(&capped), &data)
        .unwrap();
    let (_, told) = learner(2)
        .micro_batches(2)
        .fit(&whole, cnn_with_state(&whole), &data)
        .unwrap();
    assert_eq!((found.micro_batches, told.micro_batches), (2, 2));
    let state = |o: &Outcome| {
        let mut all = o.parameters.clone();
        all.extend(o.buffers.clone());
        all
    };
    let (a, b) = (state(&found), state(&told));
    assert_eq!(a.len(), b.len());
    assert!(a.iter().any(|(name, _)| name.ends_with("running_mean")));
    for ((name, x), (other, y)) in a.iter().zip(&b) {
        assert_eq!(name, other);
        let worst = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-5, "{name}: differs by {worst}");
    }
}
