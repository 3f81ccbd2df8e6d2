//! GPU vs CPU, the loss_scale family: the in-place unscale with its non-finite check, at
//! awkward sizes with and without inf/NaN, and the scale's rule over a run of clean and
//! overflowing steps.

mod common;
use common::*;
use kiln::prelude::*;

/// One unscale on `backend`: the unscaled gradient's bits and the flags.
fn unscale<B: Backend>(grad: &[f32], scale: f32, backend: &B) -> (Vec<u32>, Vec<u32>) {
    let g = Tensor::from_slice(grad, [grad.len()], backend).unwrap();
    let s = Tensor::from_slice(&[scale], [1], backend).unwrap();
    let flags = Tensor::from_vec(vec![0u32, 3, 7], [3], backend).unwrap();
    g.unscale_gradient(&s, &flags).unwrap();
    (f32_bits(&g), flags.to_vec::<u32>().unwrap())
}

#[test]
fn unscale_matches_bit_for_bit_and_flags_any_non_finite_element() {
    let Some(gpu) = gpu() else { return };
    for (n, poison) in [
        (1, None),
        (5, Some(4)),
        (1023, None),
        (4099, Some(17)),
        (65_537, Some(65_536)),
    ] {
        for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
            let mut grad = random_vec(n as u64, n, -3e4, 3e4);
            if let Some(i) = poison {
                grad[i] = bad;
            }
            // A power of two divides exactly; 3 rounds, the same way on both (IEEE division).
            for scale in [65_536.0, 3.0] {
                let (g_bits, g_flags) = unscale(&grad, scale, &gpu);
                let (c_bits, c_flags) = unscale(&grad, scale, &cpu());
                assert_eq!(g_flags, c_flags, "flags, n {n}, poison {poison:?}");
                assert_eq!(g_flags[0], u32::from(poison.is_some()), "n {n}");
                if poison.is_none() {
                    assert_eq!(g_bits, c_bits, "unscaled values, n {n}, scale {scale}");
                }
            }
            if poison.is_none() {
                break;
            }
        }
    }
}

#[test]
fn the_scale_moves_alike_over_clean_and_overflowing_steps() {
    let Some(gpu) = gpu() else { return };
    let rule = LossScaleRule {
        growth: 2.0,
        backoff: 0.5,
        interval: 3,
    };
    // Overflow at these steps; the others are clean.
    let overflows = [false, true, false, false, false, false, true, true, false];
    fn trace<B: Backend>(
        backend: &B,
        rule: &LossScaleRule,
        overflows: &[bool],
    ) -> Vec<(u32, Vec<u32>)> {
        let scale = Tensor::from_slice(&[1024.0f32], [1], backend).unwrap();
        let flags = Tensor::from_vec(vec![0u32; 3], [3], backend).unwrap();
        overflows
            .iter()
            .map(|&overflow| {
                let g = Tensor::from_slice(
                    &[if overflow { f32::INFINITY } else { 1.0 }, 2.0],
                    [2],
                    backend,
                )
                .unwrap();
                g.unscale_gradient(&scale, &flags).unwrap();
                Tensor::update_loss_scale(&scale, &flags, rule).unwrap();
                (f32_bits(&scale)[0], flags.to_vec::<u32>().unwrap())
            })
            .collect()
    }
    let on_gpu = trace(&gpu, &rule, &overflows);
    assert_eq!(on_gpu, trace(&cpu(), &rule, &overflows));
    // By hand: 1024 → 512 (overflow), three clean steps → 1024, two overflows → 256.
    let scales: Vec<f32> = on_gpu
        .iter()
        .map(|(bits, _)| f32::from_bits(*bits))
        .collect();
    assert_eq!(
        scales,
        [1024.0, 512.0, 512.0, 512.0, 1024.0, 1024.0, 512.0, 256.0, 256.0]
    );
}
