//! GPU vs CPU, the random family: uniform and normal streams (bit-identical uniform draws)
//! and dropout masks.

mod common;
use common::*;
use kiln::prelude::*;

#[test]
fn uniform_streams_are_identical_on_both_backends() {
    let Some(gpu) = gpu() else { return };
    for &(n, seed, offset) in &[
        (1usize, 0u64, 0u64),
        (1000, 42, 3),
        (257, u64::MAX, u64::MAX - 100),
        (65_537, 7, 1 << 33),
    ] {
        let rng = RngState { seed, offset };
        let g = Tensor::rand_uniform([n], -2.0, 3.0, rng, &gpu).unwrap();
        let c = Tensor::rand_uniform([n], -2.0, 3.0, rng, &cpu()).unwrap();
        // The words are identical; low + (high − low)·u is a subtraction, a multiply, an add.
        let tol = scale_and_shift(-2.0, 5.0);
        assert_tensors_close(&format!("uniform n={n}"), &g, &c, tol);
        let v = g.to_vec::<f32>().unwrap();
        assert!(v.iter().all(|&x| (-2.0..3.0).contains(&x)));
    }
    // An offset continues the stream: elements 10.. of one draw are a draw at offset 10.
    let whole = Tensor::rand_uniform([40], 0.0, 1.0, RngState { seed: 5, offset: 0 }, &gpu)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let tail = Tensor::rand_uniform(
        [30],
        0.0,
        1.0,
        RngState {
            seed: 5,
            offset: 10,
        },
        &gpu,
    )
    .unwrap()
    .to_vec::<f32>()
    .unwrap();
    assert_eq!(&whole[10..], &tail[..]);
}

#[test]
fn normal_fills_match_and_have_the_right_moments() {
    let Some(gpu) = gpu() else { return };
    let n = 100_000;
    let rng = RngState { seed: 9, offset: 0 };
    // The standard normal draws are integer arithmetic: the same bits everywhere.
    let g = Tensor::rand_normal([n], 0.0, 1.0, rng, &gpu).unwrap();
    let c = Tensor::rand_normal([n], 0.0, 1.0, rng, &cpu()).unwrap();
    assert_eq!(f32_bits(&g), f32_bits(&c), "standard normal draws");
    // mean + std·z is one f32 multiply and add.
    let g = Tensor::rand_normal([n], 1.0, 2.0, rng, &gpu).unwrap();
    let c = Tensor::rand_normal([n], 1.0, 2.0, rng, &cpu()).unwrap();
    // |2z| ≤ 2 · 5.77.
    assert_tensors_close("normal", &g, &c, scale_and_shift(1.0, 11.6));
    let v = g.to_vec::<f32>().unwrap();
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    // Standard errors: σ/√n = 0.0063 for the mean, σ²·√(2/n) = 0.018 for the variance; 4σ bounds.
    assert!((mean - 1.0).abs() < 0.026, "mean {mean}");
    assert!((var - 4.0).abs() < 0.072, "variance {var}");
}

#[test]
fn dropout_masks_match_and_scale() {
    let Some(gpu) = gpu() else { return };
    let n = 10_000;
    let x = random_vec(1, n, -1.0, 1.0);
    let (gx, cx) = pair(&x, &[n], &gpu);
    let rng = RngState {
        seed: 77,
        offset: 123,
    };
    let (gy, gmask) = gx.dropout(0.3, rng).unwrap();
    let (cy, cmask) = cx.dropout(0.3, rng).unwrap();
    assert_tensors_close("dropout mask", &gmask, &cmask, EXACT);
    assert_tensors_close("dropout y", &gy, &cy, ROUNDED);
    let kept = gmask
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .filter(|&&m| m > 0.0)
        .count() as f64;
    // Binomial(n, 0.7): σ = √(n·0.7·0.3) ≈ 45.8; 4σ bound.
    assert!((kept - 7000.0).abs() < 184.0, "kept {kept}");
    assert!(gx.dropout(1.0, rng).is_err());
}
