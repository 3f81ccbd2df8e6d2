//! GPU vs CPU, the conv family: forward (with and without the bias and activation epilogue,
//! 1×1 kernels through the matmul), the input gradient and the weight gradient, at awkward
//! shapes (odd and tiny images, channels 1, 3, 5, 33, strides 1 and 2, padding 0–2, kernels
//! 1, 3, 5, dilation 2, batches 1 and 33; channel groups 2 and depthwise, with and without a
//! channel multiplier: conv_grouped.wgsl). The GPU computes in f32, the CPU reference in f64
//! from the same f32 values; the bounds are the dot-product bound of the table over each
//! output's terms. Each case runs on both GPU paths the adapter can take: the implicit GEMM
//! (conv.wgsl, any device whose matmul is not the texture kernel) and, where the adapter has
//! subgroups of a fixed size, the packed-texture path (conv_texture.wgsl, CPU-type adapters).

mod common;
use common::*;
use kiln::prelude::*;
use kiln::tensor::wgpu::{MatmulKernel, WgpuOptions};
use kiln::tensor::{Conv2dOptions, Conv2dShape};

/// The convolution paths this adapter runs, each on a device of its own: the implicit GEMM
/// (a device with the tiled matmul) and the texture path (a device with the texture matmul).
fn conv_devices() -> Vec<(&'static str, WgpuBackend)> {
    let Some(_) = gpu() else { return Vec::new() };
    let mut devices = Vec::new();
    for (name, kernel) in [
        ("implicit GEMM", MatmulKernel::Tiled),
        ("texture", MatmulKernel::Texture),
    ] {
        match WgpuBackend::with_options(WgpuOptions {
            matmul: kernel,
            ..WgpuOptions::default()
        }) {
            Ok(device) => devices.push((name, device)),
            Err(e) => eprintln!("the {name} convolution is not checked here: {e}"),
        }
    }
    devices
}

/// (batch, in channels, height, width, out channels, kernel, stride, padding, dilation,
/// groups).
type Case = [usize; 10];

const CASES: [Case; 15] = [
    [1, 1, 1, 1, 1, 1, 1, 0, 1, 1],
    [2, 3, 5, 7, 4, 3, 1, 1, 1, 1],
    [33, 5, 9, 6, 33, 3, 2, 1, 1, 1],
    [3, 33, 7, 7, 5, 5, 1, 2, 1, 1],
    [2, 3, 11, 9, 5, 3, 1, 2, 2, 1],
    [4, 5, 8, 8, 6, 1, 1, 0, 1, 1],
    [2, 3, 8, 8, 4, 1, 2, 0, 1, 1],
    [1, 1, 3, 3, 1, 5, 1, 2, 1, 1],
    [33, 1, 6, 5, 3, 3, 2, 0, 1, 1],
    [2, 3, 13, 13, 5, 5, 2, 2, 1, 1],
    [2, 6, 7, 5, 4, 3, 1, 1, 1, 2],
    [33, 5, 9, 6, 5, 3, 2, 1, 1, 5],
    [3, 3, 11, 9, 6, 3, 1, 2, 2, 3],
    [1, 4, 6, 6, 8, 1, 1, 0, 1, 4],
    [2, 33, 5, 5, 33, 5, 1, 2, 1, 33],
];

fn options(c: &Case) -> Conv2dOptions {
    Conv2dOptions {
        stride: c[6],
        padding: c[7],
        dilation: c[8],
        groups: c[9],
    }
}

fn f64_of(t: &Tensor<CpuBackend>) -> Tensor<CpuBackend> {
    t.cast(DType::F64).unwrap()
}

fn host<B: Backend>(t: &Tensor<B>) -> Vec<f64> {
    values(t.to_host().unwrap())
}

#[test]
fn forward_and_both_gradients_match_at_awkward_shapes() {
    for (path, gpu) in conv_devices() {
        for (i, c) in CASES.iter().enumerate() {
            check_case(&gpu, &format!("{path}, case {c:?}"), i as u64 * 10, c);
        }
    }
}

/// Images past one packed texture (64×64 planes: 1 024 texels each, so a texture row of
/// 16 384 texels holds 16 images, and 4 images' pixels fill a weight-gradient chunk's rows),
/// and a weight gradient the implicit GEMM splits into many workgroup layers.
#[test]
fn batches_past_a_texture_or_a_split_are_chunked_and_summed() {
    for (path, gpu) in conv_devices() {
        // Two images more than one texture row of the adapter's holds.
        let images = gpu.limits().max_texture_dimension_2d as usize / 1024 + 2;
        let c = [images, 2, 64, 64, 3, 3, 1, 1, 1, 1];
        check_case(&gpu, &format!("{path}, chunked {c:?}"), 5, &c);
    }
}

/// Forward (four epilogues), input gradient and weight gradient of one case on `gpu` against
/// the CPU in f64.
fn check_case(gpu: &WgpuBackend, what: &str, seed: u64, c: &Case) {
    let gpu = &gpu;
    {
        let (x_g, x_c) = pair(
            &random_vec(seed, c[0] * c[1] * c[2] * c[3], -1.0, 1.0),
            &[c[0], c[1], c[2], c[3]],
            gpu,
        );
        let (w_g, w_c) = pair(
            &random_vec(seed + 1, c[4] * c[1] / c[9] * c[5] * c[5], -1.0, 1.0),
            &[c[4], c[1] / c[9], c[5], c[5]],
            gpu,
        );
        let (b_g, b_c) = pair(&random_vec(seed + 2, c[4], -1.0, 1.0), &[c[4]], gpu);
        let s: Conv2dShape = x_c.conv2d_shape(&w_c, options(c)).unwrap();
        let terms = s.patch_len();
        // Without epilogue, with a bias, with bias and ReLU (through the output), and with
        // bias and tanh.
        for (bias, act) in [
            (false, None),
            (true, None),
            (true, Some(UnaryOp::Relu)),
            (true, Some(UnaryOp::Tanh)),
        ] {
            let g = x_g
                .conv2d(&w_g, bias.then_some(&b_g), act, options(c))
                .unwrap();
            let b64 = f64_of(&b_c);
            let r = f64_of(&x_c)
                .conv2d(&f64_of(&w_c), bias.then_some(&b64), act, options(c))
                .unwrap();
            assert_eq!(g.dims(), r.dims(), "{what}");
            let mut tol = precision::dot(terms + 1, terms as f64 + 1.0);
            if let Some(op) = act {
                tol = tol.plus(precision::unary(op, terms as f64 + 1.0));
            }
            assert_close(
                &format!("{what} forward, bias {bias}, {act:?}"),
                &host(&g),
                &host(&r),
                tol,
            );
        }
        let dy_data = random_vec(seed + 3, s.output_len(), -1.0, 1.0);
        let (dy_g, dy_c) = pair(&dy_data, &[c[0], c[4], s.out_height(), s.out_width()], gpu);
        let dx = dy_g.conv2d_backward_input(&w_g, &s).unwrap();
        let dx_ref = f64_of(&dy_c)
            .conv2d_backward_input(&f64_of(&w_c), &s)
            .unwrap();
        let taps = s.group_out() * c[5] * c[5];
        assert_close(
            &format!("{what} dx"),
            &host(&dx),
            &host(&dx_ref),
            precision::dot(taps, taps as f64),
        );
        let dw = x_g.conv2d_backward_weight(&dy_g, &s).unwrap();
        let dw_ref = f64_of(&x_c)
            .conv2d_backward_weight(&f64_of(&dy_c), &s)
            .unwrap();
        let pixels = c[0] * s.out_height() * s.out_width();
        assert_close(
            &format!("{what} dw"),
            &host(&dw),
            &host(&dw_ref),
            precision::dot(pixels, pixels as f64),
        );
    }
}

#[test]
fn shapes_that_do_not_fit_are_errors_naming_them() {
    let x = Tensor::zeros([1, 3, 4, 4], DType::F32, &cpu()).unwrap();
    let w = Tensor::zeros([2, 3, 5, 5], DType::F32, &cpu()).unwrap();
    let e = x
        .conv2d(&w, None, None, Conv2dOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("5×5 kernel") && e.contains("4×4 image"), "{e}");
    let w = Tensor::zeros([2, 4, 3, 3], DType::F32, &cpu()).unwrap();
    let e = x
        .conv2d(&w, None, None, Conv2dOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[1, 3, 4, 4]") && e.contains("[2, 4, 3, 3]"),
        "{e}"
    );
    // Groups that do not divide the channels, and a weight whose channels do not match them.
    let w = Tensor::zeros([4, 1, 3, 3], DType::F32, &cpu()).unwrap();
    let grouped = |groups| Conv2dOptions {
        groups,
        ..Conv2dOptions::default()
    };
    let e = x
        .conv2d(&w, None, None, grouped(2))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("groups 2") && e.contains("input channels (3)"),
        "{e}"
    );
    let e = x
        .conv2d(&w, None, None, grouped(0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("groups 0") && e.contains("≥ 1"), "{e}");
    let w = Tensor::zeros([6, 3, 3, 3], DType::F32, &cpu()).unwrap();
    let e = x
        .conv2d(&w, None, None, grouped(3))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[O, 3 / 3 = 1, KH, KW]"), "{e}");
    let e = x.max_pool2d(5, 5, 0).unwrap_err().to_string();
    assert!(e.contains("5×5 window") && e.contains("4×4 image"), "{e}");
}

/// A grouped convolution is its groups' own convolutions side by side: each group's input
/// channels convolved (with one group, the GEMM path) with its rows of the weights, on both
/// backends, forward and both gradients, in f64 on the CPU and f32 on the GPU.
#[test]
fn groups_are_their_convolutions_side_by_side() {
    let cpu = cpu();
    let c: Case = [3, 6, 7, 6, 4, 3, 2, 1, 1, 2];
    check_side_by_side(&cpu, &c, DType::F64, 1e-12);
    if let Some(gpu) = gpu() {
        check_side_by_side(&gpu, &c, DType::F32, 1e-5);
    }
}

fn check_side_by_side<B: Backend>(b: &B, c: &Case, dtype: DType, tolerance: f64) {
    let (groups, cg, og) = (c[9], c[1] / c[9], c[4] / c[9]);
    let cast = |v: Vec<f32>, dims: &[usize]| {
        Tensor::from_vec(v, dims.to_vec(), b)
            .unwrap()
            .cast(dtype)
            .unwrap()
    };
    let x = cast(
        random_vec(1, c[0] * c[1] * c[2] * c[3], -1.0, 1.0),
        &[c[0], c[1], c[2], c[3]],
    );
    let w = cast(
        random_vec(2, c[4] * cg * c[5] * c[5], -1.0, 1.0),
        &[c[4], cg, c[5], c[5]],
    );
    let s = x.conv2d_shape(&w, options(c)).unwrap();
    let y = x.conv2d(&w, None, None, options(c)).unwrap();
    let dy = cast(random_vec(3, s.output_len(), -1.0, 1.0), y.dims());
    let dx = dy.conv2d_backward_input(&w, &s).unwrap();
    let dw = x.conv2d_backward_weight(&dy, &s).unwrap();
    let plain = Conv2dOptions {
        groups: 1,
        ..options(c)
    };
    for g in 0..groups {
        let xg = x.narrow(1, g * cg, cg).unwrap().contiguous().unwrap();
        let wg = w.narrow(0, g * og, og).unwrap().contiguous().unwrap();
        let dyg = dy.narrow(1, g * og, og).unwrap().contiguous().unwrap();
        let sg = xg.conv2d_shape(&wg, plain).unwrap();
        let pairs = [
            (
                "y",
                y.narrow(1, g * og, og).unwrap(),
                xg.conv2d(&wg, None, None, plain).unwrap(),
            ),
            (
                "dx",
                dx.narrow(1, g * cg, cg).unwrap(),
                dyg.conv2d_backward_input(&wg, &sg).unwrap(),
            ),
            (
                "dw",
                dw.narrow(0, g * og, og).unwrap(),
                xg.conv2d_backward_weight(&dyg, &sg).unwrap(),
            ),
        ];
        for (name, grouped, alone) in pairs {
            let (a, e) = (host(&grouped.contiguous().unwrap()), host(&alone));
            assert_eq!(a.len(), e.len(), "{name} of group {g}");
            for (i, (a, e)) in a.iter().zip(&e).enumerate() {
                assert!(
                    (a - e).abs() <= tolerance * (1.0 + e.abs()),
                    "{} {name} of group {g}, element {i}: {a} grouped, {e} alone",
                    b.name()
                );
            }
        }
    }
}
