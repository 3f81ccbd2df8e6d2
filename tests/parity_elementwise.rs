//! GPU vs CPU, the elementwise family: unary ops, binary ops with broadcasting, scalar forms,
//! select, strided views, fill; at awkward sizes, several seeds and extreme values.

mod common;
use common::*;
use kiln::prelude::*;

#[test]
fn unary_ops_match_cpu_at_awkward_sizes() {
    let Some(gpu) = gpu() else { return };
    for op in UnaryOp::ALL {
        let (low, high) = input_range(op);
        for (s, &n) in AWKWARD_SIZES.iter().enumerate() {
            let seed = SEEDS[s % SEEDS.len()];
            let data = random_vec(seed, n * 3, low, high);
            let (g, c) = pair(&data, &[n, 3], &gpu);
            assert_tensors_close(
                &format!("{op:?} n={n}"),
                &g.unary(op).unwrap(),
                &c.unary(op).unwrap(),
                precision::unary(op, 4.0),
            );
        }
    }
}

/// Shape pairs that broadcast: equal, row vector, column vector, scalar, leading dims. Those
/// whose operands are contiguous or a repeated contiguous block of whole vec4s ([1000], the
/// [64] bias row over 33 rows, the [4, 8] block over 3) run the `_vec4` kernels; a broadcast
/// in the middle ([5, 1, 8]) or a column ([64, 1]) keeps the strided ones.
const BROADCAST_CASES: [(&[usize], &[usize]); 10] = [
    (&[17, 33], &[17, 33]),
    (&[127, 3], &[3]),
    (&[33, 17], &[33, 1]),
    (&[257], &[1]),
    (&[3, 1, 17], &[1, 127, 17]),
    (&[1000], &[1000]),
    (&[33, 64], &[64]),
    (&[3, 4, 8], &[4, 8]),
    (&[5, 2, 8], &[5, 1, 8]),
    (&[8, 64], &[8, 1]),
];

#[test]
fn binary_ops_broadcast_like_the_cpu() {
    let Some(gpu) = gpu() else { return };
    for op in BinaryOp::ALL {
        for (i, (ls, rs)) in BROADCAST_CASES.iter().enumerate() {
            let (low, high) = if op == BinaryOp::Pow {
                (0.1, 3.0)
            } else {
                (-3.0, 3.0)
            };
            let mut l = random_vec(SEEDS[i % 3] + i as u64, ls.iter().product(), low, high);
            let r = random_vec(
                SEEDS[(i + 1) % 3] + i as u64,
                rs.iter().product(),
                low,
                high,
            );
            // Make some elements equal so comparisons see ties.
            if r.len() == l.len() {
                for j in (0..l.len()).step_by(3) {
                    l[j] = r[j];
                }
            }
            let (gl, cl) = pair(&l, ls, &gpu);
            let (gr, cr) = pair(&r, rs, &gpu);
            // pow: exponents up to 3, bases in [0.1, 3] (|log2| ≤ 3.33).
            let tol = precision::binary(op, 3.0, 10f64.log2());
            let g = gl.binary(op, &gr).unwrap();
            let c = cl.binary(op, &cr).unwrap();
            assert_tensors_close(&format!("{op:?} {ls:?}·{rs:?}"), &g, &c, tol);
            // And with the operands swapped (broadcast on the left).
            let g = gr.binary(op, &gl).unwrap();
            let c = cr.binary(op, &cl).unwrap();
            assert_tensors_close(&format!("{op:?} {rs:?}·{ls:?}"), &g, &c, tol);
        }
    }
}

#[test]
fn scalar_forms_on_both_sides() {
    let Some(gpu) = gpu() else { return };
    // 256 elements run the vec4 kernel, 257 the strided one.
    for n in [256, 257] {
        check_scalar_forms(&gpu, n);
    }
}

fn check_scalar_forms(gpu: &WgpuBackend, n: usize) {
    let data = random_vec(3, n, 0.5, 2.0);
    let (g, c) = pair(&data, &[n], gpu);
    for op in BinaryOp::ALL {
        // pow: x^1.5 and 1.5^x with x in [0.5, 2]: exponents ≤ 2, |log2 base| ≤ 1.
        let tol = precision::binary(op, 2.0, 1.0);
        assert_tensors_close(
            &format!("x {op:?} 1.5"),
            &g.binary_scalar(op, 1.5).unwrap(),
            &c.binary_scalar(op, 1.5).unwrap(),
            tol,
        );
        assert_tensors_close(
            &format!("1.5 {op:?} x"),
            &Tensor::scalar_binary(1.5, op, &g).unwrap(),
            &Tensor::scalar_binary(1.5, op, &c).unwrap(),
            tol,
        );
    }
    // The operators route to the same kernels.
    assert_tensors_close("2 - x", &(2.0 - &g).unwrap(), &(2.0 - &c).unwrap(), ROUNDED);
    assert_tensors_close(
        "x / 3",
        &(&g / 3.0).unwrap(),
        &(&c / 3.0).unwrap(),
        DIVISION,
    );
    assert_tensors_close("-x", &(-&g).unwrap(), &(-&c).unwrap(), EXACT_UP_TO_FLUSH);
}

#[test]
fn select_broadcasts_all_three_operands() {
    let Some(gpu) = gpu() else { return };
    let cond: Vec<f32> = random_vec(5, 127 * 17, -1.0, 1.0)
        .into_iter()
        .map(|v| (v > 0.0) as u8 as f32)
        .collect();
    let a = random_vec(6, 17, -1.0, 1.0);
    let b = random_vec(7, 127, -1.0, 1.0);
    let (gc, cc) = pair(&cond, &[127, 17], &gpu);
    let (ga, ca) = pair(&a, &[17], &gpu);
    let (gb, cb) = pair(&b, &[127, 1], &gpu);
    assert_tensors_close(
        "select",
        &gc.select(&ga, &gb).unwrap(),
        &cc.select(&ca, &cb).unwrap(),
        EXACT,
    );
}

#[test]
fn strided_views_read_through_strides() {
    let Some(gpu) = gpu() else { return };
    let data = random_vec(8, 33 * 127, -2.0, 2.0);
    let (g, c) = pair(&data, &[33, 127], &gpu);
    // Transposed, narrowed and broadcast views feed elementwise kernels without copies.
    let gt = g.t().unwrap();
    let ct = c.t().unwrap();
    assert_tensors_close(
        "exp(xᵀ)",
        &gt.exp().unwrap(),
        &ct.exp().unwrap(),
        precision::exp(2.0),
    );
    // Whole rows from row 4 of a 128-wide tensor: contiguous at offset 512, a vec4 view;
    // from row 3 of 127-wide: offset 381, strided kernels.
    let wide = random_vec(9, 33 * 128, -2.0, 2.0);
    let (gw, cw) = pair(&wide, &[33, 128], &gpu);
    for (tensor_g, tensor_c, start) in [(&gw, &cw, 4), (&g, &c, 3)] {
        let rows_g = tensor_g.narrow(0, start, 20).unwrap();
        let rows_c = tensor_c.narrow(0, start, 20).unwrap();
        let what = format!("rows from {start}");
        assert_tensors_close(
            &format!("tanh of {what}"),
            &rows_g.tanh().unwrap(),
            &rows_c.tanh().unwrap(),
            TANH,
        );
        assert_tensors_close(
            &format!("{what} - 1"),
            &(&rows_g - 1.0).unwrap(),
            &(&rows_c - 1.0).unwrap(),
            ROUNDED,
        );
        assert_tensors_close(
            &format!("{what} · {what}"),
            &(&rows_g * &rows_g).unwrap(),
            &(&rows_c * &rows_c).unwrap(),
            ROUNDED,
        );
        assert_tensors_close(
            &format!("relu'({what})"),
            &rows_g.unary_backward(UnaryOp::Relu, &rows_g).unwrap(),
            &rows_c.unary_backward(UnaryOp::Relu, &rows_c).unwrap(),
            ROUNDED,
        );
    }
    let gn = g.narrow(1, 5, 100).unwrap().narrow(0, 3, 17).unwrap();
    let cn = c.narrow(1, 5, 100).unwrap().narrow(0, 3, 17).unwrap();
    assert_tensors_close(
        "narrow",
        &gn.contiguous().unwrap(),
        &cn.contiguous().unwrap(),
        EXACT,
    );
    assert_tensors_close(
        "narrow·2",
        &(&gn * 2.0).unwrap(),
        &(&cn * 2.0).unwrap(),
        ROUNDED,
    );
    let gb = g
        .narrow(0, 0, 1)
        .unwrap()
        .broadcast_to([4, 1, 127])
        .unwrap();
    let cb = c
        .narrow(0, 0, 1)
        .unwrap()
        .broadcast_to([4, 1, 127])
        .unwrap();
    assert_tensors_close(
        "broadcast copy",
        &gb.contiguous().unwrap(),
        &cb.contiguous().unwrap(),
        EXACT,
    );
    assert_tensors_close(
        "reshape of transpose",
        &gt.reshape([127 * 33]).unwrap(),
        &ct.reshape([127 * 33]).unwrap(),
        EXACT,
    );
}

#[test]
fn fill_writes_every_dtype() {
    let Some(gpu) = gpu() else { return };
    for dtype in [DType::F32, DType::F16, DType::U8, DType::U32] {
        for &n in &[1usize, 3, 1000] {
            let g = Tensor::full([n], 7.0, dtype, &gpu).unwrap();
            let c = Tensor::full([n], 7.0, dtype, &cpu()).unwrap();
            assert_eq!(
                g.to_host().unwrap(),
                c.to_host().unwrap(),
                "fill {dtype} n={n}"
            );
        }
    }
}
