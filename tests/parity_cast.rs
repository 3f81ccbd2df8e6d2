//! GPU vs CPU, the cast family: f32↔f16 (with and without `shader-f16`), u8 and u32.

mod common;
use common::*;
use kiln::prelude::*;
use kiln::tensor::f16;
use kiln::tensor::wgpu::WgpuOptions;

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
