//! The GPU execution model, counted: pipelines are built once, buffers come from the pool,
//! ops never submit or wait, several tensors read back in one submit, and errors are values.

mod common;
use common::*;
use kiln::prelude::*;
use kiln::tensor::wgpu::{Backends, Counters, WgpuOptions, MAX_DISPATCHES_PER_BATCH};

fn delta(after: Counters, before: Counters) -> (u64, u64, u64, u64) {
    (
        after.pipelines_built - before.pipelines_built,
        after.buffers_allocated - before.buffers_allocated,
        after.submits - before.submits,
        after.dispatches - before.dispatches,
    )
}

/// One small "training-like" iteration: matmul with epilogue, softmax-xent, reductions.
fn small_step(
    x: &Tensor<WgpuBackend>,
    w: &Tensor<WgpuBackend>,
    b: &Tensor<WgpuBackend>,
    labels: &Tensor<WgpuBackend>,
) -> Tensor<WgpuBackend> {
    let h = x.matmul_bias_act(w, Some(b), Some(UnaryOp::Relu)).unwrap();
    let loss = h.softmax_xent(labels).unwrap();
    let grad_rows = (Tensor::ones([x.dims()[0]], DType::F32, x.backend()).unwrap()
        / x.dims()[0] as f32)
        .unwrap();
    let dh = h.softmax_xent_backward(labels, &grad_rows).unwrap();
    let dw = x.t().unwrap().matmul(&dh).unwrap();
    let _db = dh.sum(0).unwrap();
    ((loss.sum_all().unwrap() + &dw.sum_all().unwrap()).unwrap() * 0.5).unwrap()
}

#[test]
fn a_loop_of_small_ops_allocates_no_buffers_after_the_first_iteration() {
    let Some(gpu) = fresh_gpu() else { return };
    let x = Tensor::from_slice(&random_vec(1, 16 * 8, -1.0, 1.0), [16, 8], &gpu).unwrap();
    let w = Tensor::from_slice(&random_vec(2, 8 * 10, -1.0, 1.0), [8, 10], &gpu).unwrap();
    let b = Tensor::zeros([10], DType::F32, &gpu).unwrap();
    let labels = Tensor::from_slice(&[3u32; 16], [16], &gpu).unwrap();
    // Warm-up: the loop keeps the previous result alive while computing the next, so its
    // steady state is reached on the second iteration.
    let first = small_step(&x, &w, &b, &labels);
    let mut last = Some(small_step(&x, &w, &b, &labels));
    drop(first);
    last.as_ref().unwrap().item().unwrap();
    let before = gpu.counters();
    for _ in 0..1000 {
        last = Some(small_step(&x, &w, &b, &labels));
    }
    last.unwrap().item().unwrap();
    let (pipelines, allocated, _, dispatches) = delta(gpu.counters(), before);
    assert_eq!(
        pipelines, 0,
        "every pipeline was built in the first iteration"
    );
    assert_eq!(
        allocated, 0,
        "the pool served every buffer after the first iteration"
    );
    assert!(
        dispatches >= 1000 * 8,
        "dispatches were recorded ({dispatches})"
    );
}

#[test]
fn ops_record_without_submitting_until_a_sync_point() {
    let Some(gpu) = fresh_gpu() else { return };
    let x = Tensor::from_slice(&random_vec(3, 1000, -1.0, 1.0), [10, 100], &gpu).unwrap();
    x.item().ok();
    gpu.sync().unwrap();
    let before = gpu.counters();
    let mut y = x.clone();
    for _ in 0..200 {
        y = (y.tanh().unwrap() * 1.01).unwrap();
    }
    let s = y.sum(1).unwrap();
    let (_, _, submits, _) = delta(gpu.counters(), before);
    assert_eq!(submits, 0, "recording ops must not submit");
    // One readback of two tensors: one submit.
    let both = Tensor::read_many(&[&s, &y]).unwrap();
    assert_eq!(both.len(), 2);
    let (_, _, submits, _) = delta(gpu.counters(), before);
    assert_eq!(submits, 1, "reading several tensors is one flush");
}

#[test]
fn a_full_batch_submits_on_its_own() {
    let Some(gpu) = fresh_gpu() else { return };
    let x = Tensor::ones([4], DType::F32, &gpu).unwrap();
    gpu.sync().unwrap();
    let before = gpu.counters();
    let mut y = x;
    for _ in 0..MAX_DISPATCHES_PER_BATCH + 10 {
        y = (y + 1.0).unwrap();
    }
    let (_, _, submits, _) = delta(gpu.counters(), before);
    assert_eq!(submits, 1, "the size threshold submitted once");
    assert_eq!(
        y.to_vec::<f32>().unwrap(),
        vec![(MAX_DISPATCHES_PER_BATCH + 11) as f32; 4]
    );
}

#[test]
fn readback_is_a_future_at_its_core() {
    let Some(gpu) = gpu() else { return };
    let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0], [3], &gpu).unwrap();
    let b = (&a * 2.0).unwrap();
    let readback = gpu.read_async(&[&a, &b]).unwrap();
    let data = pollster::block_on(readback).unwrap();
    assert_eq!(data[1].to_f64_vec(), vec![2.0, 4.0, 6.0]);
}

#[test]
fn uploads_after_pending_work_do_not_clobber_it() {
    // A buffer freed while recorded commands still read it must not receive an upload
    // (queue writes land before the pending commands run).
    let Some(gpu) = gpu() else { return };
    for round in 0..20 {
        let a = Tensor::from_slice(&[round as f32; 64], [64], &gpu).unwrap();
        let b = (&a + 1.0).unwrap();
        drop(a);
        let _c = Tensor::from_slice(&[-1000.0f32; 64], [64], &gpu).unwrap();
        assert_eq!(b.to_vec::<f32>().unwrap(), vec![round as f32 + 1.0; 64]);
    }
}

#[test]
fn tensors_over_the_binding_limit_are_errors() {
    let Some(gpu) = gpu() else { return };
    let limit = gpu.limits().max_storage_buffer_binding_size;
    let elements = (limit / 4 + 1) as usize;
    let err = Tensor::zeros([elements], DType::F32, &gpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("storage-binding limit") && err.contains(&limit.to_string()),
        "{err}"
    );
}

#[test]
fn shape_and_dtype_errors_name_both_sides() {
    let Some(gpu) = gpu() else { return };
    let a = Tensor::zeros([2, 3], DType::F32, &gpu).unwrap();
    let b = Tensor::zeros([4, 3], DType::F32, &gpu).unwrap();
    let err = (&a + &b).unwrap_err().to_string();
    assert!(err.contains("[2, 3]") && err.contains("[4, 3]"), "{err}");
    let u = Tensor::zeros([2, 3], DType::U32, &gpu).unwrap();
    let err = (&u + 1.0).unwrap_err().to_string();
    assert!(err.contains("u32"), "{err}");
    let err = Tensor::from_slice(&[1.0f64], [1], &gpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("f64") && err.contains("wgpu"), "{err}");
    let err = Tensor::from_slice(&[1.0f32; 5], [2, 3], &gpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("5") && err.contains("[2, 3]"), "{err}");
}

#[test]
fn an_unknown_adapter_name_lists_what_was_found() {
    let Some(_) = gpu() else { return };
    let err = WgpuBackend::with_adapter("no-such-adapter-xyz")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no-such-adapter-xyz") && err.contains("found"),
        "{err}"
    );
}

#[test]
fn no_adapter_names_the_backends_tried() {
    let Some(_) = gpu() else { return };
    // This machine's wgpu is built with Vulkan, Metal and DX12; asking only for a backend
    // the platform lacks finds no adapter.
    let other = if cfg!(target_os = "macos") {
        Backends::VULKAN | Backends::DX12
    } else {
        Backends::METAL
    };
    let err = WgpuBackend::with_options(WgpuOptions {
        backends: other,
        ..WgpuOptions::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("no GPU adapter") && err.contains("backends tried"),
        "{err}"
    );
}

#[test]
fn device_loss_surfaces_as_an_error() {
    let Some(gpu) = fresh_gpu() else { return };
    let x = Tensor::ones([16], DType::F32, &gpu).unwrap();
    assert_eq!(x.to_vec::<f32>().unwrap(), vec![1.0; 16]);
    gpu.destroy();
    let result = (&x + 1.0).and_then(|y| y.to_vec::<f32>());
    let err = result.unwrap_err().to_string();
    assert!(err.contains("lost"), "{err}");
}

#[test]
fn device_timing_measures_the_recorded_work_and_keeps_its_result() {
    let Some(gpu) = gpu() else { return };
    if !gpu.can_time_on_device() {
        eprintln!("{}: no timestamp queries, nothing to time", gpu.name());
        return;
    }
    let a = Tensor::from_slice(&random_vec(1, 256 * 256, -1.0, 1.0), [256, 256], &gpu).unwrap();
    let small = Tensor::from_slice(&random_vec(2, 64 * 64, -1.0, 1.0), [64, 64], &gpu).unwrap();
    let (product, once) = gpu.time_on_device(|| a.matmul(&a)).unwrap();
    let once = once.expect("the adapter has timestamps");
    assert!(once.as_nanos() > 0, "a 256³ matmul took {once:?}");
    // Ten products take longer on the device than one small one.
    let (_, ten) = gpu
        .time_on_device(|| {
            let mut c = a.clone();
            for _ in 0..10 {
                c = a.matmul(&c)?;
            }
            Ok(c)
        })
        .unwrap();
    let (_, tiny) = gpu.time_on_device(|| small.matmul(&small)).unwrap();
    assert!(ten.unwrap() > tiny.unwrap(), "{ten:?} vs {tiny:?}");
    // The timed work's result is the untimed one's, and later ops still record and read back.
    let expected = a.matmul(&a).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(product.to_vec::<f32>().unwrap(), expected);
}

#[test]
fn kernel_profiling_times_each_dispatch_recorded_while_it_is_on() {
    let Some(gpu) = fresh_gpu() else { return };
    if !gpu.can_time_on_device() {
        return;
    }
    let x = Tensor::from_slice(&random_vec(3, 64 * 32, -1.0, 1.0), [64, 32], &gpu).unwrap();
    let w = Tensor::from_slice(&random_vec(4, 32 * 10, -1.0, 1.0), [32, 10], &gpu).unwrap();
    let labels = Tensor::from_slice(&[2u32; 64], [64], &gpu).unwrap();
    // Off: nothing is timed, and the profile is empty.
    let before = x.exp().unwrap();
    assert!(gpu.kernel_profile().unwrap().is_empty());
    // Work pending when profiling starts is submitted unprofiled.
    let pending = (&before + 1.0).unwrap();
    gpu.set_kernel_profiling(true).unwrap();
    let dispatches_before = gpu.counters().dispatches;
    let h = x.matmul(&w).unwrap();
    let loss = h.softmax_xent(&labels).unwrap();
    let mut last = loss.clone();
    for _ in 0..3 {
        last = (&last * 2.0).unwrap();
    }
    let profile = gpu.kernel_profile().unwrap();
    let dispatched = gpu.counters().dispatches - dispatches_before;
    let names: Vec<&str> = profile.iter().map(|t| t.kernel.as_str()).collect();
    assert_eq!(
        profile.iter().map(|t| t.dispatches).sum::<u64>(),
        dispatched,
        "every dispatch recorded while on is timed once: {names:?}"
    );
    assert!(names
        .iter()
        .any(|n| n.starts_with("softmax_xent_labels_forward")));
    let scaled = profile
        .iter()
        .find(|t| t.kernel.starts_with("elementwise_binary_scalar"))
        .expect("the scalar products");
    assert_eq!(
        scaled.dispatches, 3,
        "three products by a scalar share one pipeline"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("elementwise_unary")),
        "exp ran before"
    );
    assert!(profile
        .iter()
        .all(|t| t.seconds >= 0.0 && t.seconds.is_finite()));
    assert!(profile.iter().map(|t| t.seconds).sum::<f64>() > 0.0);
    assert!(
        profile.windows(2).all(|p| p[0].seconds >= p[1].seconds),
        "slowest first"
    );
    // Read and cleared; results are unchanged by profiling.
    assert!(gpu.kernel_profile().unwrap().is_empty());
    let cpu_h = Tensor::from_slice(&x.to_vec::<f32>().unwrap(), [64, 32], &cpu())
        .unwrap()
        .matmul(&Tensor::from_slice(&w.to_vec::<f32>().unwrap(), [32, 10], &cpu()).unwrap())
        .unwrap();
    assert_tensors_close("profiled matmul", &h, &cpu_h, matmul_tolerance(32));
    // More dispatches than one query set holds are timed over several submits.
    let mut y = x.clone();
    for _ in 0..2100 {
        y = (&y * 1.0).unwrap();
    }
    let many = gpu.kernel_profile().unwrap();
    assert_eq!(many.iter().map(|t| t.dispatches).sum::<u64>(), 2100);
    gpu.set_kernel_profiling(false).unwrap();
    drop((pending, last, y));
    let _ = (&x + 1.0).unwrap();
    assert!(gpu.kernel_profile().unwrap().is_empty(), "off again");
}

#[test]
fn elementwise_ops_take_the_vec4_kernels_where_the_layouts_allow() {
    let Some(gpu) = fresh_gpu() else { return };
    if !gpu.can_time_on_device() {
        return;
    }
    let kernels_of = |work: &dyn Fn()| -> Vec<String> {
        gpu.set_kernel_profiling(true).unwrap();
        work();
        let names = gpu
            .kernel_profile()
            .unwrap()
            .into_iter()
            .map(|t| t.kernel.split(' ').next().unwrap_or("").to_string())
            .collect();
        gpu.set_kernel_profiling(false).unwrap();
        names
    };
    let x = Tensor::from_slice(&random_vec(1, 33 * 64, -1.0, 1.0), [33, 64], &gpu).unwrap();
    let bias = Tensor::from_slice(&random_vec(2, 64, -1.0, 1.0), [64], &gpu).unwrap();
    let column = Tensor::from_slice(&random_vec(3, 33, -1.0, 1.0), [33, 1], &gpu).unwrap();
    let odd = Tensor::from_slice(&random_vec(4, 33 * 3, -1.0, 1.0), [33, 3], &gpu).unwrap();
    let vec4 = kernels_of(&|| {
        let _ = (&x + &bias).unwrap();
        let _ = x.relu().unwrap();
        let _ = (&x * 2.0).unwrap();
        let _ = x.unary_backward(UnaryOp::Relu, &x).unwrap();
    });
    assert_eq!(
        vec4.iter().filter(|k| k.ends_with("_vec4")).count(),
        4,
        "{vec4:?}"
    );
    let strided = kernels_of(&|| {
        let _ = (&x + &column).unwrap();
        let _ = odd.relu().unwrap();
        let _ = x.t().unwrap().exp().unwrap();
    });
    assert!(!strided.iter().any(|k| k.ends_with("_vec4")), "{strided:?}");
    assert_eq!(strided.len(), 3, "binary, relu and exp: {strided:?}");
}

#[test]
fn matmuls_recorded_from_several_threads_at_once_stay_correct() {
    // Tests share one device and record into one batch concurrently; on CPU-type adapters a
    // matmul packs its operands into cached textures between two dispatches, and no other
    // thread's matmul may pack into the same texture in between.
    let Some(gpu) = gpu() else { return };
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let gpu = gpu.clone();
            std::thread::spawn(move || {
                for i in 0..15u64 {
                    let seed = 100 * t + i;
                    let a = random_vec(seed, 16 * 24, -1.0, 1.0);
                    let b = random_vec(seed + 50, 24 * 12, -1.0, 1.0);
                    let (ga, ca) = pair(&a, &[16, 24], &gpu);
                    let (gb, cb) = pair(&b, &[24, 12], &gpu);
                    let product = ga.matmul(&gb).unwrap();
                    let expected = ca.matmul(&cb).unwrap();
                    assert_tensors_close(
                        &format!("thread {t}, product {i}"),
                        &product,
                        &expected,
                        matmul_tolerance(24),
                    );
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a thread's products matched the CPU");
    }
}
