//! GPU vs CPU: reductions along each axis (row and column kernels) and the global sum.

mod common;
use common::*;
use kiln::prelude::*;

#[test]
fn reductions_along_every_axis() {
    let Some(gpu) = gpu() else { return };
    // Rows of ≤ 64 run one invocation per row (the last axis of [257, 17], [130, 64] and
    // [3, 127, 33]), longer rows a workgroup per row.
    let shapes: [&[usize]; 7] = [
        &[1000],
        &[17, 257],
        &[257, 17],
        &[130, 64],
        &[5, 65],
        &[3, 127, 33],
        &[1, 1, 1],
    ];
    for (s, shape) in shapes.iter().enumerate() {
        let n = shape.iter().product();
        let data = random_vec(SEEDS[s % 3], n, -3.0, 3.0);
        let (g, c) = pair(&data, shape, &gpu);
        for axis in 0..shape.len() as isize {
            for op in ReduceOp::ALL {
                let gr = match op {
                    ReduceOp::Sum => g.sum(axis),
                    ReduceOp::Mean => g.mean(axis),
                    ReduceOp::Max => g.max(axis),
                    ReduceOp::Min => g.min(axis),
                    ReduceOp::ArgMax => g.argmax(axis),
                }
                .unwrap();
                let cr = match op {
                    ReduceOp::Sum => c.sum(axis),
                    ReduceOp::Mean => c.mean(axis),
                    ReduceOp::Max => c.max(axis),
                    ReduceOp::Min => c.min(axis),
                    ReduceOp::ArgMax => c.argmax(axis),
                }
                .unwrap();
                // The last axis runs the row kernels, any other the column kernel; terms ≤ 3.
                let len = shape[axis as usize];
                let depth = if axis as usize == shape.len() - 1 {
                    precision::row_sum_depth(len)
                } else {
                    precision::column_sum_depth(len)
                };
                let tol = match op {
                    ReduceOp::Sum => precision::sum(depth, 3.0 * len as f64),
                    ReduceOp::Mean => precision::sum(depth, 3.0),
                    _ => EXACT,
                };
                assert_tensors_close(&format!("{op:?} {shape:?} axis {axis}"), &gr, &cr, tol);
            }
        }
    }
}

#[test]
fn argmax_takes_the_first_of_equal_maxima() {
    let Some(gpu) = gpu() else { return };
    let data = [1.0f32, 5.0, 5.0, 2.0, 7.0, 7.0, 7.0, 0.0];
    let (g, c) = pair(&data, &[2, 4], &gpu);
    assert_eq!(g.argmax(1).unwrap().to_vec::<u32>().unwrap(), vec![1, 0]);
    assert_eq!(c.argmax(1).unwrap().to_vec::<u32>().unwrap(), vec![1, 0]);
    assert_eq!(
        g.argmax(0).unwrap().to_vec::<u32>().unwrap(),
        c.argmax(0).unwrap().to_vec::<u32>().unwrap()
    );
}

#[test]
fn global_sum_over_long_vectors() {
    let Some(gpu) = gpu() else { return };
    // Up to 4096 elements one pass (a row reduction), beyond it partial sums first.
    for &n in &[1usize, 3, 257, 1000, 4096, 4097, 65_537, 1_000_003] {
        let data = random_vec(n as u64, n, -1.0, 1.0);
        let (g, c) = pair(&data, &[n], &gpu);
        let gs = g.sum_all().unwrap().item().unwrap();
        let cs = c.sum_all().unwrap().item().unwrap();
        // n terms of size ≤ 1 along the kernels' longest chain of additions.
        let depth = precision::global_sum_depth(n);
        assert_close(
            &format!("sum of {n}"),
            &[gs],
            &[cs],
            precision::sum(depth, n as f64),
        );
        let gm = g.mean_all().unwrap().item().unwrap();
        assert_close(
            &format!("mean of {n}"),
            &[gm],
            &[cs / n as f64],
            precision::sum(depth, 1.0),
        );
    }
}
