//! GPU vs CPU, the pool family: max pooling (values, arg-max indices with ties going to the
//! same element on both backends, and the gradient through them) and average pooling, forward
//! and backward, with overlapping and padded windows at awkward shapes.

mod common;
use common::*;

/// (batch, channels, height, width, kernel, stride, padding).
const CASES: [[usize; 7]; 6] = [
    [1, 1, 1, 1, 1, 1, 0],
    [2, 3, 5, 7, 2, 2, 0],
    [33, 5, 9, 6, 3, 2, 1],
    [2, 33, 7, 7, 3, 1, 1],
    [3, 3, 8, 8, 2, 2, 0],
    [1, 2, 28, 28, 2, 2, 0],
];

#[test]
fn max_pooling_matches_with_ties_going_to_one_element() {
    let Some(gpu) = gpu() else { return };
    for (i, c) in CASES.iter().enumerate() {
        // Few distinct values, so windows hold ties.
        let data: Vec<f32> = random_vec(i as u64, c[0] * c[1] * c[2] * c[3], 0.0, 4.0)
            .iter()
            .map(|v| v.floor())
            .collect();
        let (x_g, x_c) = pair(&data, &[c[0], c[1], c[2], c[3]], &gpu);
        let (y_g, i_g) = x_g.max_pool2d(c[4], c[5], c[6]).unwrap();
        let (y_c, i_c) = x_c.max_pool2d(c[4], c[5], c[6]).unwrap();
        assert_eq!(
            y_g.to_vec::<f32>().unwrap(),
            y_c.to_vec::<f32>().unwrap(),
            "{c:?}"
        );
        assert_eq!(
            i_g.to_vec::<u32>().unwrap(),
            i_c.to_vec::<u32>().unwrap(),
            "{c:?}"
        );
        let s = x_c.pool2d_shape(c[4], c[5], c[6]).unwrap();
        let dy = random_vec(i as u64 + 50, s.output_len(), -1.0, 1.0);
        let (dy_g, dy_c) = pair(&dy, y_c.dims(), &gpu);
        let dx_g = dy_g.max_pool2d_backward(&i_g, &s).unwrap();
        let dx_c = dy_c.max_pool2d_backward(&i_c, &s).unwrap();
        // Each input sums the windows that chose it, in the same order on both.
        let windows = c[4].div_ceil(c[5]).pow(2);
        assert_close(
            &format!("{c:?} max dx"),
            &values(dx_g.to_host().unwrap()),
            &values(dx_c.to_host().unwrap()),
            precision::sum(windows, windows as f64),
        );
    }
}

#[test]
fn average_pooling_matches_forward_and_backward() {
    let Some(gpu) = gpu() else { return };
    for (i, c) in CASES.iter().enumerate() {
        let data = random_vec(i as u64 + 7, c[0] * c[1] * c[2] * c[3], -1.0, 1.0);
        let (x_g, x_c) = pair(&data, &[c[0], c[1], c[2], c[3]], &gpu);
        let area = c[4] * c[4];
        let tol = precision::sum(area, area as f64).plus(precision::DIVISION);
        let y_g = x_g.avg_pool2d(c[4], c[5], c[6]).unwrap();
        let y_c = x_c.avg_pool2d(c[4], c[5], c[6]).unwrap();
        assert_close(
            &format!("{c:?} avg"),
            &values(y_g.to_host().unwrap()),
            &values(y_c.to_host().unwrap()),
            tol,
        );
        let s = x_c.pool2d_shape(c[4], c[5], c[6]).unwrap();
        let dy = random_vec(i as u64 + 70, s.output_len(), -1.0, 1.0);
        let (dy_g, dy_c) = pair(&dy, y_c.dims(), &gpu);
        let windows = c[4].div_ceil(c[5]).pow(2);
        let tol = precision::sum(windows, windows as f64).plus(precision::DIVISION);
        assert_close(
            &format!("{c:?} avg dx"),
            &values(dy_g.avg_pool2d_backward(&s).unwrap().to_host().unwrap()),
            &values(dy_c.avg_pool2d_backward(&s).unwrap().to_host().unwrap()),
            tol,
        );
    }
}
