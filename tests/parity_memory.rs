//! GPU vs CPU: random fills (bit-identical uniform streams), dropout, row gathers, casts
//! (f16 with and without `shader-f16`, u8, u32) and uploads of every dtype.

mod common;
use common::*;
use kiln::prelude::*;
use kiln::tensor::wgpu::WgpuOptions;
use kiln::tensor::{f16, BackendStorage, HostData};

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

#[test]
fn gather_rows_matches_for_f32_and_u32() {
    let Some(gpu) = gpu() else { return };
    let (rows, cols) = (257, 33);
    let src = random_vec(3, rows * cols, -1.0, 1.0);
    let idx: Vec<u32> = random_vec(4, 127, 0.0, rows as f32)
        .into_iter()
        .map(|v| v as u32)
        .collect();
    let (gs, cs) = pair(&src, &[rows, cols], &gpu);
    let gi = Tensor::from_slice(&idx, [idx.len()], &gpu).unwrap();
    let ci = Tensor::from_slice(&idx, [idx.len()], &cpu()).unwrap();
    assert_tensors_close(
        "gather f32",
        &gs.gather_rows(&gi).unwrap(),
        &cs.gather_rows(&ci).unwrap(),
        EXACT,
    );
    let ints: Vec<u32> = (0..(rows * cols) as u32).collect();
    let gu = Tensor::from_slice(&ints, [rows, cols], &gpu).unwrap();
    let cu = Tensor::from_slice(&ints, [rows, cols], &cpu()).unwrap();
    assert_tensors_close(
        "gather u32",
        &gu.gather_rows(&gi).unwrap(),
        &cu.gather_rows(&ci).unwrap(),
        EXACT,
    );
    // Out of range: an error on the CPU, NaN rows on the GPU (documented behaviour).
    let bad_c = Tensor::from_slice(&[0u32, rows as u32], [2], &cpu()).unwrap();
    assert!(cs
        .gather_rows(&bad_c)
        .unwrap_err()
        .to_string()
        .contains("out of range"));
    let bad_g = Tensor::from_slice(&[0u32, rows as u32], [2], &gpu).unwrap();
    let out = gs.gather_rows(&bad_g).unwrap().to_vec::<f32>().unwrap();
    assert!(out[cols..].iter().all(|v| v.is_nan()));
}

/// f32 values at the edges of f16: the overflow threshold (65520 rounds past 65504 to inf),
/// infinities, NaN, ties to even, subnormals and what rounds to them, f32 denormals, −0.
fn f16_edge_values() -> Vec<f32> {
    let mut v = vec![
        65504.0,
        65519.0,
        65520.0,
        70000.0,
        1e6,
        3.4e38,
        f32::INFINITY,
        f32::NAN,
        1.0 + 1.0 / 2048.0, // a tie: stays 1 (even)
        1.0 + 3.0 / 2048.0, // a tie: rounds up to the even neighbour
        6.103_515_6e-5,     // 2⁻¹⁴, the smallest normal f16
        6.0e-5,             // rounds to a subnormal
        5.960_464_5e-8,     // 2⁻²⁴, the smallest subnormal
        2.980_232_2e-8,     // 2⁻²⁵: a tie with zero, rounds to 0
        4.470_348_4e-8,     // 1.5·2⁻²⁴: a tie, rounds to 2⁻²³
        3.1e-8,             // just above 2⁻²⁵: rounds to 2⁻²⁴
        1e-40,              // an f32 denormal: 0
        0.0,
        -0.0,
        1.0,
        0.1,
        3.140_625,
    ];
    let negated: Vec<f32> = v.iter().map(|x| -x).collect();
    v.extend(negated);
    v
}

/// Bit patterns, so that −0, infinities and NaN payloads count.
fn f16_bits<B: Backend>(t: &Tensor<B>) -> Vec<u16> {
    t.to_vec::<f16>()
        .unwrap()
        .iter()
        .map(|h| h.to_bits())
        .collect()
}

fn f32_bits<B: Backend>(t: &Tensor<B>) -> Vec<u32> {
    t.to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

/// f32 → f16 rounds to nearest even and saturates to ±inf beyond f16's range, f16 → f32 is
/// exact, bit for bit as IEEE 754 (the `half` crate) says, on the GPU as on the CPU.
fn check_f16_rounding_rule(gpu: &WgpuBackend, label: &str) {
    let x = f16_edge_values();
    let n = x.len();
    let expected: Vec<u16> = x.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
    let (g, c) = pair(&x, &[n], gpu);
    assert_eq!(
        f16_bits(&g.cast(DType::F16).unwrap()),
        expected,
        "{label}: f32→f16"
    );
    assert_eq!(
        f16_bits(&c.cast(DType::F16).unwrap()),
        expected,
        "cpu: f32→f16"
    );
    assert_eq!(expected[3], f16::INFINITY.to_bits(), "70000 is beyond f16");

    // Every f16 bit pattern, widened.
    let every: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
    let gh = Tensor::from_slice(&every, [every.len()], gpu).unwrap();
    let ch = Tensor::from_slice(&every, [every.len()], &cpu()).unwrap();
    let widened: Vec<u32> = every.iter().map(|h| h.to_f32().to_bits()).collect();
    assert_eq!(
        f32_bits(&gh.cast(DType::F32).unwrap()),
        widened,
        "{label}: f16→f32"
    );
    assert_eq!(
        f32_bits(&ch.cast(DType::F32).unwrap()),
        widened,
        "cpu: f16→f32"
    );
}

fn check_casts(gpu: &WgpuBackend, label: &str) {
    check_f16_rounding_rule(gpu, label);
    for &n in &[1usize, 3, 17, 1000] {
        let x: Vec<f32> = random_vec(n as u64, n, -70000.0, 70000.0)
            .into_iter()
            .enumerate()
            .map(|(i, v)| if i % 2 == 0 { v / 1000.0 } else { v })
            .collect();
        let (g, c) = pair(&x, &[n], gpu);
        let g16 = g.cast(DType::F16).unwrap();
        let c16 = c.cast(DType::F16).unwrap();
        assert_eq!(
            g16.to_host().unwrap(),
            c16.to_host().unwrap(),
            "{label}: f32→f16 n={n}"
        );
        assert_tensors_close(
            &format!("{label}: f16→f32 n={n}"),
            &g16.cast(DType::F32).unwrap(),
            &c16.cast(DType::F32).unwrap(),
            EXACT,
        );
        // Host f16 data uploaded and converted on the device.
        let halves: Vec<f16> = x.iter().map(|&v| f16::from_f32(v / 100.0)).collect();
        let gh = Tensor::from_slice(&halves, [n], gpu).unwrap();
        let ch = Tensor::from_slice(&halves, [n], &cpu()).unwrap();
        assert_tensors_close(
            &format!("{label}: uploaded f16 n={n}"),
            &gh.cast(DType::F32).unwrap(),
            &ch.cast(DType::F32).unwrap(),
            EXACT,
        );
    }
}

#[test]
fn f16_casts_with_native_shader_f16() {
    let Some(gpu) = gpu() else { return };
    if !gpu.has_native_f16() {
        eprintln!("adapter has no shader-f16; the fallback test covers the packed path");
    }
    check_casts(&gpu, "native");
}

#[test]
fn f16_casts_with_the_packed_fallback() {
    let Some(_) = gpu() else { return };
    let fallback = WgpuBackend::with_options(WgpuOptions {
        use_shader_f16: false,
        ..WgpuOptions::default()
    })
    .unwrap();
    assert!(!fallback.has_native_f16());
    check_casts(&fallback, "fallback");
}

#[test]
fn u8_and_u32_casts_match() {
    let Some(gpu) = gpu() else { return };
    for &n in &[1usize, 3, 5, 1000, 3073] {
        let bytes: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
        let g = Tensor::from_slice(&bytes, [n], &gpu).unwrap();
        let c = Tensor::from_slice(&bytes, [n], &cpu()).unwrap();
        assert_tensors_close(
            &format!("u8→f32 n={n}"),
            &g.cast(DType::F32).unwrap(),
            &c.cast(DType::F32).unwrap(),
            EXACT,
        );
        assert_eq!(g.to_vec::<u8>().unwrap(), bytes, "u8 round trip");
        let ints: Vec<u32> = (0..n as u32).map(|i| i * 7919).collect();
        let g = Tensor::from_slice(&ints, [n], &gpu).unwrap();
        let c = Tensor::from_slice(&ints, [n], &cpu()).unwrap();
        let gf = g.cast(DType::F32).unwrap();
        assert_tensors_close(
            &format!("u32→f32 n={n}"),
            &gf,
            &c.cast(DType::F32).unwrap(),
            EXACT,
        );
        let back = (gf - 0.25).unwrap().cast(DType::U32).unwrap();
        assert_tensors_close(
            "f32→u32",
            &back,
            &(c.cast(DType::F32).unwrap() - 0.25)
                .unwrap()
                .cast(DType::U32)
                .unwrap(),
            EXACT,
        );
    }
    let neg = Tensor::from_slice(&[-3.5f32, 2.9], [2], &gpu).unwrap();
    assert_eq!(
        neg.cast(DType::U32).unwrap().to_vec::<u32>().unwrap(),
        vec![0, 2]
    );
}

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
fn gather_u8_affine_reads_minibatches_across_chunks() {
    let Some(gpu) = gpu() else { return };
    // 36 features run the vec4 kernel (four features per invocation), 37 the scalar one.
    for features in [36usize, 37] {
        check_gather_u8_affine(&gpu, features);
    }
}

fn check_gather_u8_affine(gpu: &WgpuBackend, features: usize) {
    let rows = 1001usize;
    let bytes: Vec<u8> = (0..rows * features)
        .map(|i| (i * 7 + i / 13) as u8)
        .collect();
    let scale: Vec<f32> = (0..features).map(|c| 1.0 / (1.0 + c as f32)).collect();
    let shift: Vec<f32> = (0..features).map(|c| -(c as f32) * 0.5).collect();
    let indices: Vec<u32> = random_vec(77, 129, 0.0, rows as f32)
        .into_iter()
        .map(|v| (v as u32).min(rows as u32 - 1))
        .chain([0, 399, 400, 1000])
        .collect();
    let bounds = [(0usize, 400usize), (400, 800), (800, 1001)];
    fn run<B: Backend>(
        backend: &B,
        bytes: &[u8],
        bounds: &[(usize, usize)],
        features: usize,
        indices: &[u32],
        scale: &[f32],
        shift: &[f32],
    ) -> Vec<f32> {
        let chunks: Vec<(Tensor<B>, usize)> = bounds
            .iter()
            .map(|&(a, b)| {
                let t = Tensor::from_slice(
                    &bytes[a * features..b * features],
                    [b - a, features],
                    backend,
                )
                .unwrap();
                (t, a)
            })
            .collect();
        let refs: Vec<(&Tensor<B>, usize)> = chunks.iter().map(|(t, f)| (t, *f)).collect();
        Tensor::gather_u8_affine(
            &refs,
            &Tensor::from_slice(indices, [indices.len()], backend).unwrap(),
            &Tensor::from_slice(scale, [features], backend).unwrap(),
            &Tensor::from_slice(shift, [features], backend).unwrap(),
        )
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
    }
    let g = run(gpu, &bytes, &bounds, features, &indices, &scale, &shift);
    let c = run(&cpu(), &bytes, &bounds, features, &indices, &scale, &shift);
    let expected: Vec<f64> = indices
        .iter()
        .flat_map(|&r| {
            let (bytes, scale, shift) = (&bytes, &scale, &shift);
            (0..features).map(move |f| {
                bytes[r as usize * features + f] as f64 * scale[f] as f64 + shift[f] as f64
            })
        })
        .collect();
    let as_f64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let what = format!("gather_u8_affine, {features} features");
    // byte · scale + shift: a multiply and an add (or one fused), against the exact value.
    let tol = scale_and_shift(18.0, 255.0);
    assert_close(&format!("{what} GPU"), &as_f64(&g), &expected, tol);
    assert_close(&format!("{what} CPU"), &as_f64(&c), &expected, tol);

    // An index outside every chunk is an error on the CPU.
    let c = cpu();
    let chunk = Tensor::from_slice(&bytes[..10 * features], [10, features], &c).unwrap();
    let err = Tensor::gather_u8_affine(
        &[(&chunk, 0)],
        &Tensor::from_slice(&[3u32, 10], [2], &c).unwrap(),
        &Tensor::from_slice(&scale, [features], &c).unwrap(),
        &Tensor::from_slice(&shift, [features], &c).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("index 10 at position 1"), "{err}");
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
