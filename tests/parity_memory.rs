//! GPU vs CPU: uploads and readbacks of narrow dtypes at odd offsets, copies into existing
//! tensors, and ops on prefix views.

mod common;
use common::*;
use kiln::prelude::*;
use kiln::tensor::{f16, BackendStorage, HostData};

#[test]
fn narrow_dtype_views_read_back_at_odd_offsets() {
    let Some(gpu) = gpu() else { return };
    let bytes: Vec<u8> = (0..23).collect();
    let g = Tensor::from_slice(&bytes, [23], &gpu).unwrap();
    assert_eq!(
        g.narrow(0, 5, 11).unwrap().to_vec::<u8>().unwrap(),
        (5..16).collect::<Vec<u8>>()
    );
    let halves: Vec<f16> = (0..9).map(|i| f16::from_f32(i as f32)).collect();
    let g = Tensor::from_slice(&halves, [9], &gpu).unwrap();
    assert_eq!(
        g.narrow(0, 3, 5).unwrap().to_host().unwrap(),
        HostData::F16(halves[3..8].to_vec())
    );
}

#[test]
fn copy_into_overwrites_the_destination_on_both_backends() {
    let values = random_vec(41, 1027, -1.0, 1.0);
    let cpu = cpu();
    let src = Tensor::from_slice(&values, [13, 79], &cpu).unwrap();
    let dst = Tensor::zeros([13, 79], DType::F32, &cpu).unwrap();
    cpu.copy_into(&src, &dst).unwrap();
    assert_eq!(dst.to_vec::<f32>().unwrap(), values);
    let err = cpu
        .copy_into(&src, &dst.t().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[13, 79]") && err.contains("[79, 13]"),
        "{err}"
    );
    let err = cpu
        .copy_into(&src.narrow(0, 0, 2).unwrap(), &dst.narrow(0, 1, 2).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("whole contiguous tensor"), "{err}");
    let Some(gpu) = fresh_gpu() else { return };
    let src = Tensor::from_slice(&values, [13, 79], &gpu).unwrap();
    let dst = Tensor::zeros([13, 79], DType::F32, &gpu).unwrap();
    gpu.sync().unwrap();
    let before = gpu.counters();
    gpu.copy_into(&src, &dst).unwrap();
    let after = gpu.counters();
    assert_eq!(after.copies - before.copies, 1, "one buffer copy");
    assert_eq!(after.dispatches, before.dispatches, "no kernel");
    assert_eq!(after.submits, before.submits, "recorded, not submitted");
    assert_eq!(dst.to_vec::<f32>().unwrap(), values);
    assert!(gpu
        .copy_into(&src, &dst.reshape([79, 13]).unwrap())
        .is_err());
}

/// A prefix view (`narrow` from 0) shares its parent's storage; ops that size their work by the
/// storage must see only the view's elements (the first minibatch of an epoch once gathered the
/// whole dataset this way).
fn prefix_views_act_on_their_own_elements<B: Backend>(backend: &B) {
    let data: Vec<f32> = (0..10).map(|i| i as f32).collect();
    let t = Tensor::from_slice(&data, [10], backend).unwrap();
    let prefix = t.narrow(0, 0, 4).unwrap();
    let own = prefix.contiguous().unwrap();
    assert_eq!(own.storage().len(), 4);
    let half = prefix.cast(DType::F16).unwrap();
    assert_eq!(half.storage().len(), 4);
    assert_eq!(
        half.cast(DType::F32).unwrap().to_vec::<f32>().unwrap(),
        vec![0.0, 1.0, 2.0, 3.0]
    );
    let pixels: Vec<u8> = (0..30).collect();
    let chunk = Tensor::from_slice(&pixels, [10, 3], backend).unwrap();
    let order = Tensor::from_vec((0..10u32).rev().collect::<Vec<_>>(), [10], backend).unwrap();
    let ones = Tensor::from_vec(vec![1.0f32; 3], [3], backend).unwrap();
    let zeros = Tensor::from_vec(vec![0.0f32; 3], [3], backend).unwrap();
    let batch = Tensor::gather_u8_affine(
        &[(&chunk, 0)],
        &order.narrow(0, 0, 2).unwrap(),
        &ones,
        &zeros,
    )
    .unwrap();
    assert_eq!(batch.dims(), &[2, 3]);
    assert_eq!(batch.storage().len(), 6);
    assert_eq!(
        batch.to_vec::<f32>().unwrap(),
        vec![27.0, 28.0, 29.0, 24.0, 25.0, 26.0]
    );
}

#[test]
fn prefix_views_act_on_their_own_elements_on_both_backends() {
    prefix_views_act_on_their_own_elements(&cpu());
    if let Some(gpu) = gpu() {
        prefix_views_act_on_their_own_elements(&gpu);
    }
}
