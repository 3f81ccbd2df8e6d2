//! Runs the suite on one backend: each workload is validated against the CPU backend, warmed
//! up, then timed `repeats` times; the median is reported with its throughput. The device's
//! ceilings come from the same run: bandwidth from the large copy, FLOP/s from the best matmul,
//! and every row gets its percentage of the ceiling that bounds it.

use crate::device::{BenchDevice, Clock};
use crate::doctor::training_tolerance;
use crate::overhead::Overhead;
use crate::report::Row;
use crate::training_step::{StepOverhead, TrainingStep};
use crate::workload::{ConvPass, Op, Work, Workload};
use kiln_cpu::CpuBackend;
use kiln_nn::Precision;
use kiln_tensor::precision::Tolerance;
use kiln_tensor::{KilnError, Result, Tensor};
use std::time::{Duration, Instant};

/// Which sizes to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    /// The sizes the targets speak of (matmul to 4096³, 16M-element ops, the CIFAR-10
    /// MLP step at batch 128 and 512). Minutes on a software driver.
    Full,
    /// Small sizes of every workload, for a quick look and for the tests (seconds).
    Quick,
}

/// How to measure.
#[derive(Clone, Debug)]
pub struct Options {
    pub suite: Suite,
    /// Untimed runs before the timed ones (pipelines built, buffers pooled).
    pub warmup: usize,
    /// Timed runs; the median is reported.
    pub repeats: usize,
    /// Only workloads whose name contains this.
    pub filter: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            suite: Suite::Full,
            warmup: 1,
            repeats: 5,
            filter: None,
        }
    }
}

/// One entry of the suite.
#[derive(Clone, Debug)]
pub enum Item {
    Micro(Workload),
    Step(TrainingStep),
    Overhead(Overhead),
}

impl Item {
    pub fn name(&self) -> String {
        match self {
            Item::Micro(w) => w.name.clone(),
            Item::Step(s) => s.name(),
            Item::Overhead(o) => o.name().into(),
        }
    }
}

fn matmul(name: &str, m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Item {
    Item::Micro(Workload::new(
        name,
        Op::Matmul {
            m,
            k,
            n,
            transpose_a: ta,
            transpose_b: tb,
        },
    ))
}

/// The workloads of a suite, the bandwidth probe first.
pub fn items(suite: Suite) -> Vec<Item> {
    let full = suite == Suite::Full;
    let pick = |big: usize, small: usize| if full { big } else { small };
    let micro = |name: &str, op| Item::Micro(Workload::new(name, op));
    let mut items = vec![micro(
        "copy",
        Op::Copy {
            n: pick(16 << 20, 1 << 16),
        },
    )];
    let squares: &[usize] = if full {
        &[512, 1024, 2048, 4096]
    } else {
        &[64, 127]
    };
    for &n in squares {
        items.push(matmul("matmul", n, n, n, false, false));
    }
    // f16 storage against f32 at the same sizes.
    for &n in if full {
        &[1024usize, 2048][..]
    } else {
        &[64usize][..]
    } {
        items.push(Item::Micro(Workload::new(
            "matmul_f16",
            Op::MatmulF16 { n },
        )));
    }
    // The CIFAR-10 MLP's first layer at batch 256: forward, weight gradient Xᵀ·dY and input
    // gradient dY·Wᵀ.
    let (batch, input, hidden) = (pick(256, 16), pick(3072, 96), pick(1024, 33));
    items.push(matmul("mlp_forward", batch, input, hidden, false, false));
    items.push(matmul("mlp_weight_grad", input, batch, hidden, true, false));
    items.push(matmul("mlp_input_grad", batch, hidden, input, false, true));
    if full {
        // The Fashion-MNIST MLP's 10-class output layer at batch 128: outputs too narrow to
        // fill a device's cores, where the tile choice matters most.
        items.push(matmul("narrow_forward", 128, 512, 10, false, false));
        items.push(matmul("narrow_weight_grad", 512, 128, 10, true, false));
        items.push(matmul("narrow_input_grad", 128, 10, 512, false, true));
    }
    // The reference CNN's second convolution (32 → 64 channels on 14×14 images) at batch 32,
    // each pass beside the plain matmul of its GEMM shape (M = N·H·W, N = O, K = C·9; the
    // input gradient M = N·H·W, N = C, K = O·9; the weight gradient M = O, N = C·9,
    // K = N·H·W): the implicit GEMM's rate against the tiled matmul's.
    let (batch, channels, side, out) = (pick(32, 2), pick(32, 3), pick(14, 7), pick(64, 5));
    let pixels = batch * side * side;
    for (pass, (m, k, n)) in [
        (ConvPass::Forward, (pixels, channels * 9, out)),
        (ConvPass::BackwardInput, (pixels, out * 9, channels)),
        (ConvPass::BackwardWeight, (out, pixels, channels * 9)),
    ] {
        let name = match pass {
            ConvPass::Forward => "conv_forward",
            ConvPass::BackwardInput => "conv_input_grad",
            ConvPass::BackwardWeight => "conv_weight_grad",
        };
        items.push(micro(name, Op::conv(pass, batch, channels, side, out)));
        items.push(matmul(&format!("{name}_as_matmul"), m, k, n, false, false));
    }
    // A depthwise 3×3 of the same images (the grouped kernels; no GEMM to compare with).
    for (pass, name) in [
        (ConvPass::Forward, "conv_depthwise_forward"),
        (ConvPass::BackwardInput, "conv_depthwise_input_grad"),
        (ConvPass::BackwardWeight, "conv_depthwise_weight_grad"),
    ] {
        let shape = (batch, channels, side, channels);
        items.push(micro(name, Op::conv_grouped(pass, shape, channels)));
    }
    let n = pick(16 << 20, 1 << 14);
    items.push(micro("add", Op::Add { n }));
    let (rows, cols) = (pick(4096, 33), pick(4096, 257));
    items.push(micro("sum_rows", Op::SumRows { rows, cols }));
    for (rows, cols) in [(pick(256, 17), 10), (pick(4096, 33), pick(1000, 100))] {
        items.push(micro("softmax_xent", Op::SoftmaxXent { rows, cols }));
    }
    let (rows, cols) = (pick(256, 17), pick(1024, 65));
    items.push(micro(
        "batch_norm_forward",
        Op::BatchNormForward { rows, cols },
    ));
    items.push(micro(
        "batch_norm_backward",
        Op::BatchNormBackward { rows, cols },
    ));
    let n = pick(4 << 20, 1 << 12);
    items.push(micro("adam", Op::Adam { n }));
    items.push(micro("sgd_momentum", Op::SgdMomentum { n }));
    if full {
        for precision in [Precision::F32, Precision::Mixed] {
            items.push(Item::Step(TrainingStep::cifar10(128, precision)));
            items.push(Item::Step(TrainingStep::cifar10(512, precision)));
            items.push(Item::Step(TrainingStep::fashion_mnist_plain(
                128, precision,
            )));
        }
    } else {
        for precision in [Precision::F32, Precision::Mixed] {
            items.push(Item::Step(TrainingStep {
                widths: vec![48, 32, 16, 10],
                batch: 8,
                precision,
                regularised: true,
            }));
        }
    }
    items.push(Item::Overhead(Overhead::RoundTrip));
    items.push(Item::Overhead(Overhead::TinyKernels { kernels: 1000 }));
    items
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// `options.warmup` untimed runs of `work`, then the median seconds of `options.repeats`
/// timed ones and the clock that timed them.
fn timed_median<D: BenchDevice>(
    device: &D,
    options: &Options,
    work: &mut dyn FnMut() -> Result<()>,
) -> Result<(f64, Clock)> {
    for _ in 0..options.warmup {
        device.time(work)?;
    }
    let mut times = Vec::with_capacity(options.repeats.max(1));
    let mut clock = Clock::Wall;
    for _ in 0..options.repeats.max(1) {
        let (t, c) = device.time(work)?;
        times.push(t);
        clock = c;
    }
    Ok((median(times).as_secs_f64(), clock))
}

/// The worst difference between `actual` and `expected` as a share of what `tolerance` allows
/// (≤ 1), else an error naming `what`, the share and the precision class and bound.
pub fn validate(what: &str, actual: &[f64], expected: &[f64], tolerance: Tolerance) -> Result<f64> {
    let worst = tolerance.worst_ratio(actual, expected);
    if worst <= 1.0 {
        Ok(worst)
    } else {
        Err(KilnError::invalid(
            "compare_backends",
            format!(
                "{what} differs from the CPU backend by {worst:.1}× its allowance ({tolerance})"
            ),
        ))
    }
}

/// Runs the suite on `device`, validating against `reference` (None when `device` is the
/// reference). `progress` sees each row as it is measured. A workload that fails validation
/// or errors becomes a row with its error, and the run goes on.
pub fn run_suite<D: BenchDevice>(
    device: &D,
    reference: Option<&CpuBackend>,
    options: &Options,
    progress: &mut dyn FnMut(&Row),
) -> Vec<Row> {
    let mut rows = Vec::new();
    for item in items(options.suite) {
        if let Some(filter) = &options.filter {
            if !item.name().contains(filter.as_str()) && item.name() != "copy" {
                continue;
            }
        }
        let row = match &item {
            Item::Micro(w) => measure_micro(device, reference, options, w),
            Item::Step(s) => measure_step(device, reference, options, s),
            Item::Overhead(o) => measure_overhead(device, options, o),
        };
        progress(&row);
        rows.push(row);
    }
    apply_ceilings(&mut rows);
    rows
}

fn measure_micro<D: BenchDevice>(
    device: &D,
    reference: Option<&CpuBackend>,
    options: &Options,
    w: &Workload,
) -> Row {
    let mut row = Row::new(&w.name, w.shape(), device.label());
    let result = (|| -> Result<()> {
        let inputs = w.inputs(device)?;
        let output = w.run(&inputs)?.to_vec::<f64>()?;
        if let Some(cpu) = reference {
            let expected = w.run(&w.inputs(cpu)?)?.to_vec::<f64>()?;
            row.worst_ratio = Some(validate(&w.name, &output, &expected, w.tolerance())?);
        }
        let (seconds, clock) = timed_median(device, options, &mut || w.run(&inputs).map(drop))?;
        row.median_seconds = Some(seconds);
        row.clock = Some(clock);
        match w.work() {
            Work::Flops(f) => row.gflops = Some(f / seconds / 1e9),
            Work::Bytes(b) => row.gbps = Some(b / seconds / 1e9),
        }
        Ok(())
    })();
    if let Err(e) = result {
        row.error = Some(e.to_string());
    }
    row
}

fn measure_step<D: BenchDevice>(
    device: &D,
    reference: Option<&CpuBackend>,
    options: &Options,
    s: &TrainingStep,
) -> Row {
    let mut row = Row::new(&s.name(), s.shape(), device.label());
    let result = (|| -> Result<()> {
        let mut state = s.prepare(device)?;
        // Two steps: the first loss checks the forward pass, the second the backward pass
        // and the optimiser's update.
        let first = s.step(&mut state)?;
        let second = s.step(&mut state)?;
        let losses: Vec<f64> = Tensor::read_many(&[&first, &second])?
            .into_iter()
            .map(|h| h.to_f64_vec()[0])
            .collect();
        if let Some(cpu) = reference {
            let mut cpu_state = s.prepare(cpu)?;
            let expected = [
                s.step(&mut cpu_state)?.item()?,
                s.step(&mut cpu_state)?.item()?,
            ];
            row.worst_ratio = Some(validate(
                "the training step's loss",
                &losses,
                &expected,
                training_tolerance(s.precision),
            )?);
        }
        // The host's share (pipelines and buffers exist after the two steps above): record one step without waiting, counting what it did.
        device.sync()?;
        let before = device.activity();
        let start = Instant::now();
        let loss = s.step(&mut state)?;
        let record_seconds = start.elapsed().as_secs_f64();
        let recorded = device.activity();
        device.sync()?;
        let after = device.activity();
        drop(loss);
        if let (Some(b), Some(r), Some(a)) = (before, recorded, after) {
            row.step = Some(StepOverhead {
                dispatches: r.0 - b.0,
                submits: a.1 - b.1,
                readbacks: r.2 - b.2,
                record_seconds,
            });
        } else {
            row.step = Some(StepOverhead {
                record_seconds,
                ..Default::default()
            });
        }
        let (seconds, clock) = timed_median(device, options, &mut || s.step(&mut state).map(drop))?;
        row.median_seconds = Some(seconds);
        row.clock = Some(clock);
        row.gflops = Some(s.flops() / seconds / 1e9);
        Ok(())
    })();
    if let Err(e) = result {
        row.error = Some(e.to_string());
    }
    row
}

fn measure_overhead<D: BenchDevice>(device: &D, options: &Options, o: &Overhead) -> Row {
    let mut row = Row::new(o.name(), o.shape(), device.label());
    let result = (|| -> Result<()> {
        let x = Tensor::from_slice(&[1.0f32], [1], device)?;
        for _ in 0..options.warmup.max(1) {
            o.run(&x)?;
        }
        let times = (0..options.repeats.max(1))
            .map(|_| o.run(&x))
            .collect::<Result<Vec<_>>>()?;
        let seconds = median(times).as_secs_f64();
        row.median_seconds = Some(seconds);
        row.clock = Some(Clock::Wall);
        row.microseconds_per_kernel = Some(seconds * 1e6 / o.kernels() as f64);
        Ok(())
    })();
    if let Err(e) = result {
        row.error = Some(e.to_string());
    }
    row
}

/// Fills each row's percentage of its ceiling: the copy's GB/s for bandwidth-bound rows, the
/// best matmul's GFLOP/s for FLOP-bound rows.
fn apply_ceilings(rows: &mut [Row]) {
    let bandwidth = rows
        .iter()
        .filter(|r| r.workload == "copy")
        .filter_map(|r| r.gbps)
        .fold(0.0, f64::max);
    let flops = rows
        .iter()
        .filter(|r| r.workload.contains("matmul") || r.workload.starts_with("mlp_"))
        .filter_map(|r| r.gflops)
        .fold(0.0, f64::max);
    for row in rows.iter_mut() {
        if let Some(g) = row.gbps.filter(|_| bandwidth > 0.0) {
            row.percent_of_ceiling = Some(100.0 * g / bandwidth);
            row.ceiling = Some(format!("{bandwidth:.1} GB/s (copy)"));
        } else if let Some(g) = row.gflops.filter(|_| flops > 0.0) {
            row.percent_of_ceiling = Some(100.0 * g / flops);
            row.ceiling = Some(format!("{flops:.1} GFLOP/s (best matmul)"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_differences_nans_and_length_mismatches() {
        let exact = kiln_tensor::precision::EXACT;
        let loose = Tolerance::new("test class", 1e-3, 0.0);
        assert_eq!(validate("x", &[1.0, 2.0], &[1.0, 2.0], exact).unwrap(), 0.0);
        let err = validate("matmul", &[1.0, 2.5], &[1.0, 2.0], loose).unwrap_err();
        assert!(
            err.to_string().contains(
                "matmul differs from the CPU backend by 500.0× its allowance (test class:"
            ),
            "{err}"
        );
        assert!((validate("x", &[1.0005], &[1.0], loose).unwrap() - 0.5).abs() < 1e-9);
        assert!(validate("x", &[f64::NAN], &[1.0], loose).is_err());
        assert!(validate("x", &[1.0], &[1.0, 2.0], loose).is_err());
    }

    #[test]
    fn ceilings_come_from_the_copy_and_the_best_matmul() {
        let row = |workload: &str, gflops: Option<f64>, gbps: Option<f64>| Row {
            gflops,
            gbps,
            ..Row::new(workload, String::new(), "cpu".into())
        };
        let mut rows = vec![
            row("copy", None, Some(10.0)),
            row("matmul", Some(50.0), None),
            row("mlp_forward", Some(100.0), None),
            row("add", None, Some(5.0)),
            row("train_step", Some(25.0), None),
            row("round_trip", None, None),
        ];
        apply_ceilings(&mut rows);
        let percent: Vec<_> = rows.iter().map(|r| r.percent_of_ceiling).collect();
        assert_eq!(
            percent,
            [
                Some(100.0),
                Some(50.0),
                Some(100.0),
                Some(50.0),
                Some(25.0),
                None
            ]
        );
    }
}
