//! GPU vs CPU, the data family: minibatches of a u8 dataset mapped to f32, across chunks.

mod common;
use common::*;
use kiln::prelude::*;

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
