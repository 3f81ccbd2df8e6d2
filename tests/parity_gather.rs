//! GPU vs CPU, the gather family: rows picked by u32 indices, f32 and u32.

mod common;
use common::*;
use kiln::prelude::*;

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

#[test]
fn flip_width_mirrors_images_exactly_on_both_backends() {
    // Known values: each row of the last dimension reversed.
    let data: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let flipped = Tensor::from_slice(&data, [2, 1, 2, 3], &cpu())
        .unwrap()
        .flip_width()
        .unwrap();
    assert_eq!(
        values(flipped.to_host().unwrap()),
        [2.0, 1.0, 0.0, 5.0, 4.0, 3.0, 8.0, 7.0, 6.0, 11.0, 10.0, 9.0]
    );
    let Some(gpu) = gpu() else { return };
    let (g, c) = pair(
        &random_vec(9, 3 * 2 * 5 * 7, -1.0, 1.0),
        &[3, 2, 5, 7],
        &gpu,
    );
    assert_tensors_close(
        "flip_width",
        &g.flip_width().unwrap(),
        &c.flip_width().unwrap(),
        EXACT,
    );
    // Twice is the identity.
    assert_tensors_close(
        "flip_width twice",
        &g.flip_width().unwrap().flip_width().unwrap(),
        &c,
        EXACT,
    );
}
