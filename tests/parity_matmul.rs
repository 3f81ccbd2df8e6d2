//! GPU vs CPU: matmul at awkward sizes with every transpose flag, K = 1, batches, and the
//! fused bias + activation epilogue.

mod common;
use common::*;
use kiln::prelude::*;
use kiln::tensor::wgpu::{MatmulKernel, WgpuOptions};

/// One device per matmul kernel the adapter can run (the three tiled shapes always; the
/// subgroup and texture kernels where the adapter has subgroups of a fixed size), so each is
/// checked on any machine that has it.
fn matmul_devices() -> Vec<WgpuBackend> {
    let Some(_) = gpu() else { return Vec::new() };
    let mut devices = Vec::new();
    for kernel in MatmulKernel::EXPLICIT {
        match WgpuBackend::with_options(WgpuOptions {
            matmul: kernel,
            ..WgpuOptions::default()
        }) {
            Ok(device) => devices.push(device),
            Err(e) => eprintln!("{kernel:?} matmul not checked here: {e}"),
        }
    }
    devices
}

/// Builds op(A) (m×k) from stored data, transposed or not, on both backends.
fn operand(
    seed: u64,
    rows: usize,
    cols: usize,
    transposed: bool,
    gpu: &WgpuBackend,
) -> (Tensor<WgpuBackend>, Tensor<CpuBackend>) {
    let data = random_vec(seed, rows * cols, -1.0, 1.0);
    if transposed {
        let (g, c) = pair(&data, &[cols, rows], gpu);
        (g.t().unwrap(), c.t().unwrap())
    } else {
        pair(&data, &[rows, cols], gpu)
    }
}

#[test]
fn matmul_matches_at_awkward_sizes_with_all_transposes() {
    for gpu in matmul_devices() {
        let gpu = &gpu;
        let sizes = [
            (1usize, 1usize, 1usize),
            (3, 17, 33),
            (17, 3, 1),
            (33, 127, 17),
            (127, 33, 257),
            (257, 17, 3),
            (64, 64, 64),
            (65, 63, 16),
            (1000, 33, 17),
            (17, 1000, 33),
            (300, 260, 70),
        ];
        for (i, &(m, n, k)) in sizes.iter().enumerate() {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let (ga, ca) = operand(i as u64, m, k, ta, gpu);
                let (gb, cb) = operand(i as u64 + 100, k, n, tb, gpu);
                let g = ga.matmul(&gb).unwrap();
                let c = ca.matmul(&cb).unwrap();
                assert_tensors_close(
                    &format!("{m}×{k}·{k}×{n} ta={ta} tb={tb}"),
                    &g,
                    &c,
                    matmul_tolerance(k),
                );
            }
        }
    }
}

#[test]
fn matmul_vec4_path_matches() {
    for gpu in matmul_devices() {
        let gpu = &gpu;
        // Contiguous dimensions that are multiples of 4 take the vec4 kernel.
        for &(m, n, k) in &[(4usize, 4usize, 4usize), (132, 68, 36), (256, 128, 512)] {
            for (ta, tb) in [(false, false), (true, false), (false, true)] {
                let (ga, ca) = operand(m as u64, m, k, ta, gpu);
                let (gb, cb) = operand(n as u64, k, n, tb, gpu);
                assert_tensors_close(
                    &format!("vec4 {m}×{k}·{k}×{n} ta={ta} tb={tb}"),
                    &ga.matmul(&gb).unwrap(),
                    &ca.matmul(&cb).unwrap(),
                    matmul_tolerance(k),
                );
            }
        }
    }
}

#[test]
fn matmul_with_k_equal_one_is_an_outer_product() {
    for gpu in matmul_devices() {
        let gpu = &gpu;
        let (ga, ca) = operand(1, 257, 1, false, gpu);
        let (gb, cb) = operand(2, 1, 33, false, gpu);
        assert_tensors_close(
            "outer",
            &ga.matmul(&gb).unwrap(),
            &ca.matmul(&cb).unwrap(),
            ROUNDED,
        );
    }
}

#[test]
fn batched_matmul_and_broadcast_rhs() {
    for gpu in matmul_devices() {
        let gpu = &gpu;
        let a = random_vec(1, 3 * 17 * 33, -1.0, 1.0);
        let b = random_vec(2, 3 * 33 * 5, -1.0, 1.0);
        let (ga, ca) = pair(&a, &[3, 17, 33], gpu);
        let (gb, cb) = pair(&b, &[3, 33, 5], gpu);
        assert_tensors_close(
            "batched",
            &ga.matmul(&gb).unwrap(),
            &ca.matmul(&cb).unwrap(),
            matmul_tolerance(33),
        );
        let (gb2, cb2) = pair(&b[..33 * 5], &[33, 5], gpu);
        assert_tensors_close(
            "batched·matrix",
            &ga.matmul(&gb2).unwrap(),
            &ca.matmul(&cb2).unwrap(),
            matmul_tolerance(33),
        );
    }
}

#[test]
fn fused_bias_and_activation_epilogue() {
    for gpu in matmul_devices() {
        let gpu = &gpu;
        let (ga, ca) = operand(3, 127, 257, false, gpu);
        let (gb, cb) = operand(4, 257, 33, true, gpu);
        let bias = random_vec(5, 33, -1.0, 1.0);
        let (gbias, cbias) = pair(&bias, &[33], gpu);
        for act in [
            None,
            Some(UnaryOp::Relu),
            Some(UnaryOp::Tanh),
            Some(UnaryOp::LeakyRelu { alpha: 0.1 }),
            Some(UnaryOp::Sigmoid),
        ] {
            let g = ga.matmul_bias_act(&gb, Some(&gbias), act).unwrap();
            let c = ca.matmul_bias_act(&cb, Some(&cbias), act).unwrap();
            // A 257-long dot product and the bias (258 roundings), then the activation, whose
            // slope is at most 1, and its own error.
            let tol = match act {
                Some(op) => matmul_tolerance(258).plus(precision::unary(op, 300.0)),
                None => matmul_tolerance(258),
            };
            assert_tensors_close(&format!("epilogue {act:?}"), &g, &c, tol);
            // The fused epilogue equals the unfused ops on the same backend.
            let unfused = (ga.matmul(&gb).unwrap() + &gbias).unwrap();
            let unfused = match act {
                Some(op) => unfused.unary(op).unwrap(),
                None => unfused,
            };
            assert_tensors_close(
                &format!("fused vs composed {act:?}"),
                &g,
                &cpu_copy(&unfused),
                tol.plus(tol),
            );
        }
    }
}

fn cpu_copy(t: &Tensor<WgpuBackend>) -> Tensor<CpuBackend> {
    Tensor::from_host(&t.to_host().unwrap(), t.shape().clone(), &cpu()).unwrap()
}

#[test]
fn mismatched_inner_dimensions_name_both_shapes() {
    let Some(gpu) = gpu() else { return };
    let a = Tensor::zeros([3, 4], DType::F32, &gpu).unwrap();
    let b = Tensor::zeros([5, 6], DType::F32, &gpu).unwrap();
    let message = a.matmul(&b).unwrap_err().to_string();
    assert!(
        message.contains("[3, 4]") && message.contains("[5, 6]"),
        "{message}"
    );
}

#[test]
fn auto_picks_the_texture_kernel_on_software_adapters_and_tunes_elsewhere() {
    let Some(gpu) = gpu() else { return };
    let software = gpu.adapter_info().device_type == kiln::tensor::wgpu::DeviceType::Cpu;
    if gpu.matmul_kernel() == MatmulKernel::Texture {
        assert!(software, "the texture kernel is for CPU-type adapters");
        assert!(gpu.matmul_tuning().is_none());
    } else {
        assert_eq!(gpu.matmul_kernel(), MatmulKernel::Tuned);
        assert!(gpu.matmul_tuning().is_some());
    }
}

#[test]
fn texture_kernel_packs_both_operands_then_multiplies_narrows_and_batches_fall_back() {
    let Some(_) = gpu() else { return };
    let Ok(gpu) = WgpuBackend::with_options(WgpuOptions {
        matmul: MatmulKernel::Texture,
        ..WgpuOptions::default()
    }) else {
        return;
    };
    let dispatches = |f: &dyn Fn()| {
        let before = gpu.counters().dispatches;
        f();
        gpu.counters().dispatches - before
    };
    let (ga, _) = operand(3, 40, 24, false, &gpu);
    let (gb, _) = operand(4, 24, 12, true, &gpu);
    assert_eq!(dispatches(&|| drop(ga.matmul(&gb).unwrap())), 3);
    // The same shapes again reuse the packed textures and the pipelines.
    let built = gpu.counters().pipelines_built;
    assert_eq!(dispatches(&|| drop(ga.matmul(&gb).unwrap())), 3);
    assert_eq!(gpu.counters().pipelines_built, built);
    // B already in the packed layout (X-contiguous, N a multiple of 256, K of the subgroup
    // size) is copied into its texture instead of packed.
    let (ga2, ca2) = operand(7, 40, 16, false, &gpu);
    let (gb2, cb2) = operand(8, 16, 256, false, &gpu);
    let copies = gpu.counters().copies;
    let product = std::cell::RefCell::new(None);
    assert_eq!(
        dispatches(&|| *product.borrow_mut() = Some(ga2.matmul(&gb2).unwrap())),
        2
    );
    assert_eq!(gpu.counters().copies, copies + 1);
    assert_tensors_close(
        "copied B",
        product.borrow().as_ref().unwrap(),
        &ca2.matmul(&cb2).unwrap(),
        matmul_tolerance(16),
    );
    // Both sides copied: Aᵀ stored [K, M] with M = 64.
    let (ga3, ca3) = operand(9, 64, 16, true, &gpu);
    let copies = gpu.counters().copies;
    let product = std::cell::RefCell::new(None);
    assert_eq!(
        dispatches(&|| *product.borrow_mut() = Some(ga3.matmul(&gb2).unwrap())),
        1
    );
    assert_eq!(gpu.counters().copies, copies + 2);
    assert_tensors_close(
        "copied A and B",
        product.borrow().as_ref().unwrap(),
        &ca3.matmul(&cb2).unwrap(),
        matmul_tolerance(16),
    );
    // N not a multiple of 4 (a classifier's 10 outputs): the kernel stores vec4s into a C
    // padded to 12 columns, which one strided copy narrows; the workgroup is one subgroup wide.
    for (ta, tb) in [(false, false), (true, false), (false, true)] {
        let (ga4, ca4) = operand(10, 70, 37, ta, &gpu);
        let (gb4, cb4) = operand(11, 37, 10, tb, &gpu);
        let product = std::cell::RefCell::new(None);
        assert_eq!(
            dispatches(&|| *product.borrow_mut() = Some(ga4.matmul(&gb4).unwrap())),
            4
        );
        assert_tensors_close(
            &format!("narrow N ta={ta} tb={tb}"),
            product.borrow().as_ref().unwrap(),
            &ca4.matmul(&cb4).unwrap(),
            matmul_tolerance(37),
        );
    }
    let batch = random_vec(5, 2 * 40 * 24, -1.0, 1.0);
    let (gbatch, _) = pair(&batch, &[2, 40, 24], &gpu);
    let (gc, _) = operand(6, 24, 8, false, &gpu);
    assert_eq!(dispatches(&|| drop(gbatch.matmul(&gc).unwrap())), 1);
}

#[test]
fn f16_matmul_is_the_f32_product_of_the_f16_values_rounded_once() {
    // Reference: the f16 operands widened exactly to f32, multiplied on the CPU, rounded to f16.
    let half = |v: &[f32]| -> Vec<f32> {
        v.iter()
            .map(|&x| kiln::tensor::f16::from_f32(x).to_f32())
            .collect()
    };
    let cpu = cpu();
    for &(m, k, n) in &[(1usize, 1usize, 1usize), (17, 33, 3), (127, 257, 20)] {
        let a = half(&random_vec(70, m * k, -1.0, 1.0));
        let b = half(&random_vec(71, k * n, -1.0, 1.0));
        let bias = half(&random_vec(72, n, -1.0, 1.0));
        let f32_product =
            |t: &Tensor<CpuBackend>, u: &Tensor<CpuBackend>, c: &Tensor<CpuBackend>| {
                t.matmul_bias_act(u, Some(c), Some(UnaryOp::Relu)).unwrap()
            };
        let expected = half(
            &f32_product(
                &Tensor::from_slice(&a, [m, k], &cpu).unwrap(),
                &Tensor::from_slice(&b, [k, n], &cpu).unwrap(),
                &Tensor::from_slice(&bias, [n], &cpu).unwrap(),
            )
            .to_vec::<f32>()
            .unwrap(),
        );
        let on = |backend_a: Tensor<CpuBackend>| backend_a.cast(DType::F16).unwrap();
        let (a16, b16, bias16) = (
            on(Tensor::from_slice(&a, [m, k], &cpu).unwrap()),
            on(Tensor::from_slice(&b, [k, n], &cpu).unwrap()),
            on(Tensor::from_slice(&bias, [n], &cpu).unwrap()),
        );
        let product = a16
            .matmul_bias_act(&b16, Some(&bias16), Some(UnaryOp::Relu))
            .unwrap();
        assert_eq!(product.dtype(), DType::F16);
        let got = product.cast(DType::F32).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(got, expected, "cpu {m}×{k}×{n}");
        // Transposed f16 views read the same values.
        let at16 = on(Tensor::from_slice(&a, [m, k], &cpu)
            .unwrap()
            .t()
            .unwrap()
            .contiguous()
            .unwrap());
        let via_t = at16.t().unwrap().matmul(&b16).unwrap();
        assert_eq!(via_t.shape(), &Shape::new([m, n]));
        for gpu in matmul_devices() {
            let up = |v: &[f32], dims: &[usize]| {
                Tensor::from_slice(v, dims.to_vec(), &gpu)
                    .unwrap()
                    .cast(DType::F16)
                    .unwrap()
            };
            let product = up(&a, &[m, k])
                .matmul_bias_act(
                    &up(&b, &[k, n]),
                    Some(&up(&bias, &[n])),
                    Some(UnaryOp::Relu),
                )
                .unwrap();
            assert_eq!(product.dtype(), DType::F16);
            let got = product.cast(DType::F32).unwrap().to_vec::<f32>().unwrap();
            // The GPU's f32 sum may differ from the CPU's in its last bits, and so round to
            // the neighbouring f16: one f16 step (2⁻¹⁰ relative) at most.
            assert_close(
                &format!("{:?} f16 {m}×{k}×{n}", gpu.matmul_kernel()),
                &got.iter().map(|&x| x as f64).collect::<Vec<_>>(),
                &expected.iter().map(|&x| x as f64).collect::<Vec<_>>(),
                f16_result(k, None),
            );
        }
    }
    let err = Tensor::from_slice(&[1.0f32], [1, 1], &cpu)
        .unwrap()
        .matmul(
            &Tensor::from_slice(&[1.0f32], [1, 1], &cpu)
                .unwrap()
                .cast(DType::F16)
                .unwrap(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("f32") && err.contains("f16"), "{err}");
}

/// Every f16 path (the native tiled kernel, the texture kernel packing from f16, and the
/// widening fallback without `shader-f16`) against the CPU, with f16 and f32 results.
#[test]
fn f16_matmul_paths_match_the_cpu_with_f16_and_f32_results() {
    let Some(_) = gpu() else { return };
    let mut devices = matmul_devices();
    devices.push(
        WgpuBackend::with_options(WgpuOptions {
            use_shader_f16: false,
            ..WgpuOptions::default()
        })
        .unwrap(),
    );
    let half = |t: Tensor<CpuBackend>| t.cast(DType::F16).unwrap();
    for gpu in &devices {
        let label = format!(
            "{:?} kernel, native f16 {}",
            gpu.matmul_kernel(),
            gpu.has_native_f16()
        );
        for &(m, k, n, trans_a, trans_b) in &[
            (1usize, 1usize, 1usize, false, false),
            (17, 33, 4, false, false),
            (33, 127, 20, true, false),
            (127, 17, 36, false, true),
            (65, 257, 68, true, true),
        ] {
            let (ga, ca) = operand(80, m, k, trans_a, gpu);
            let (gb, cb) = operand(81, k, n, trans_b, gpu);
            let (gbias, cbias) = pair(&random_vec(82, n, -1.0, 1.0), &[n], gpu);
            for output in [DType::F32, DType::F16] {
                let gpu_half = |t: &Tensor<WgpuBackend>| t.cast(DType::F16).unwrap();
                let expected = half(ca.clone())
                    .matmul_bias_act_to(
                        &half(cb.clone()),
                        Some(&cbias.cast(output).unwrap()),
                        Some(UnaryOp::Tanh),
                        output,
                    )
                    .unwrap();
                let got = gpu_half(&ga)
                    .matmul_bias_act_to(
                        &gpu_half(&gb),
                        Some(&gbias.cast(output).unwrap()),
                        Some(UnaryOp::Tanh),
                        output,
                    )
                    .unwrap();
                let tolerance = match output {
                    DType::F16 => f16_result(k + 1, Some(UnaryOp::Tanh)),
                    _ => matmul_tolerance(k + 1).plus(TANH),
                };
                assert_tensors_close(
                    &format!("{label}: {m}×{k}×{n} ({trans_a}, {trans_b}) → {output}"),
                    &got,
                    &expected,
                    tolerance,
                );
                // Without a bias or activation.
                assert_tensors_close(
                    &format!("{label}: {m}×{k}×{n} ({trans_a}, {trans_b}) → {output}, no bias"),
                    &gpu_half(&ga)
                        .matmul_bias_act_to(&gpu_half(&gb), None, None, output)
                        .unwrap(),
                    &half(ca.clone())
                        .matmul_bias_act_to(&half(cb.clone()), None, None, output)
                        .unwrap(),
                    tolerance,
                );
            }
        }
    }
    // The native tiled kernel reads f16 directly: one dispatch, no widening casts.
    if let Some(tiled) = devices
        .iter()
        .find(|d| d.matmul_kernel() == MatmulKernel::Tiled && d.has_native_f16())
    {
        let (ga, _) = operand(83, 40, 24, false, tiled);
        let a16 = ga.cast(DType::F16).unwrap();
        tiled.sync().unwrap();
        let before = tiled.counters().dispatches;
        let _ = a16
            .matmul_bias_act_to(&a16.t().unwrap(), None, None, DType::F32)
            .unwrap();
        assert_eq!(tiled.counters().dispatches - before, 1);
    }
    let cpu = cpu();
    let a = Tensor::from_slice(&[1.0f32, 2.0], [1, 2], &cpu).unwrap();
    let err = a
        .matmul_bias_act_to(&a.t().unwrap(), None, None, DType::F16)
        .unwrap_err()
        .to_string();
    assert!(err.contains("only f16 operands"), "{err}");
}

/// A K-long product (and an activation) rounded to f16 at the end: the f32 result's bound,
/// then one f16 rounding, which a last-bit difference can tip to the neighbouring f16: one
/// f16 step, 2⁻¹⁰ relative (2⁻²⁴ absolute among subnormals).
fn f16_result(k: usize, act: Option<UnaryOp>) -> Tolerance {
    let f32_result = match act {
        Some(op) => matmul_tolerance(k).plus(precision::unary(op, k as f64)),
        None => matmul_tolerance(k),
    };
    f32_result.plus(precision::F16_ROUNDING).named("f16 result")
}
