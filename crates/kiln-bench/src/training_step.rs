//! One full training step of an MLP classifier (forward, softmax cross-entropy, backward, Adam),
//! with what a step costs the host: dispatches and submits per step, blocking readbacks, and
//! the CPU time spent recording it.

use kiln_autograd::Var;
use kiln_nn::optim::{Adam, Optimizer};
use kiln_nn::{LossScaler, Module, Parameter, Precision, Sequential};
use kiln_tensor::wgpu::KernelTime;
use kiln_tensor::CoreOps;
use kiln_tensor::{Backend, Result, RngState, Tensor, WgpuBackend};

/// An MLP, the batch size it trains at, and the arithmetic of its products (mixed: f16
/// products, f32 master weights, dynamic loss scaling).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingStep {
    pub widths: Vec<usize>,
    pub batch: usize,
    pub precision: Precision,
    /// Batch norm and dropout 0.2 after each hidden layer (the recipes' default); without,
    /// the plain Linear-ReLU stack that peers' benchmarks train.
    pub regularised: bool,
}

/// A model, its optimiser and one fixed batch, on one backend.
pub struct StepState<B: Backend> {
    model: Sequential<B>,
    parameters: Vec<Parameter<B>>,
    optimizer: Adam<B>,
    scaler: Option<LossScaler<B>>,
    x: Tensor<B>,
    labels: Tensor<B>,
}

/// What recording one step cost the host, measured without waiting for the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct StepOverhead {
    pub dispatches: u64,
    /// Submits while recording the step and at the sync that ends it.
    pub submits: u64,
    /// Blocking readbacks while recording (the step reads nothing back).
    pub readbacks: u64,
    pub record_seconds: f64,
}

impl TrainingStep {
    /// The CIFAR-10 MLP, 3072-1024-512-10, with batch norm and dropout.
    pub fn cifar10(batch: usize, precision: Precision) -> Self {
        TrainingStep {
            widths: vec![3072, 1024, 512, 10],
            batch,
            precision,
            regularised: true,
        }
    }

    /// The plain Fashion-MNIST MLP, 784-512-512-10 (no batch norm or dropout, as Burn's
    /// epoch on the same driver was measured): 430 of its steps at batch 128 are an epoch of
    /// 55 000 training samples.
    pub fn fashion_mnist_plain(batch: usize, precision: Precision) -> Self {
        TrainingStep {
            widths: vec![784, 512, 512, 10],
            batch,
            precision,
            regularised: false,
        }
    }

    pub fn name(&self) -> String {
        match self.precision {
            Precision::F32 => "train_step".into(),
            Precision::Mixed => "train_step_mixed".into(),
        }
    }

    pub fn shape(&self) -> String {
        let widths: Vec<String> = self.widths.iter().map(|w| w.to_string()).collect();
        let plain = if self.regularised { "" } else { " plain" };
        format!("{}{plain} @ batch {}", widths.join("-"), self.batch)
    }

    /// Forward 2·B·Σ in·out, backward twice that (the input gradient of the first layer
    /// included, as the step computes it).
    pub fn flops(&self) -> f64 {
        let products: usize = self.widths.windows(2).map(|w| w[0] * w[1]).sum();
        6.0 * self.batch as f64 * products as f64
    }

    pub fn prepare<B: Backend>(&self, backend: &B) -> Result<StepState<B>> {
        let mut model = kiln_nn::Mlp::new(&self.widths)
            .batch_norm(self.regularised)
            .dropout(if self.regularised { 0.2 } else { 0.0 })
            .seed(1)
            .build(backend)?;
        model.set_precision(self.precision);
        let parameters = model.parameters();
        let (features, classes) = (self.widths[0], *self.widths.last().expect("widths"));
        Ok(StepState {
            model,
            parameters,
            optimizer: Adam::new(1e-3)?,
            scaler: match self.precision {
                Precision::Mixed => Some(LossScaler::new(backend)?),
                Precision::F32 => None,
            },
            x: Tensor::rand_normal(
                [self.batch, features],
                0.0,
                1.0,
                RngState { seed: 2, offset: 0 },
                backend,
            )?,
            labels: Tensor::from_vec(
                (0..self.batch)
                    .map(|i| (i * 7 % classes) as u32)
                    .collect::<Vec<_>>(),
                [self.batch],
                backend,
            )?,
        })
    }

    /// Records one step and returns its loss (not read back).
    pub fn step<B: Backend>(&self, s: &mut StepState<B>) -> Result<Tensor<B>> {
        s.model.zero_grad();
        let loss = s
            .model
            .forward(&Var::constant(s.x.clone()))?
            .softmax_xent(&s.labels)?
            .mean_all()?;
        match &s.scaler {
            Some(scaler) => {
                scaler.scale_loss(&loss)?.backward()?;
                scaler.unscale(&s.parameters)?;
                scaler.step(&mut s.optimizer, &s.parameters)?;
            }
            None => {
                loss.backward()?;
                s.optimizer.step(&s.parameters)?;
            }
        }
        Ok(loss.value().clone())
    }
}

/// Device time per kernel of `steps` training steps on `gpu`, after two unprofiled steps that
/// build the pipelines and fill the pool (see `WgpuBackend::set_kernel_profiling`). The totals
/// cover all `steps`; divide by it for one step.
pub fn profile_kernels(
    gpu: &WgpuBackend,
    s: &TrainingStep,
    steps: usize,
) -> Result<Vec<KernelTime>> {
    let mut state = s.prepare(gpu)?;
    for _ in 0..2 {
        s.step(&mut state)?;
    }
    gpu.sync()?;
    gpu.set_kernel_profiling(true)?;
    let profiled = (|| {
        for _ in 0..steps {
            s.step(&mut state)?;
        }
        gpu.kernel_profile()
    })();
    gpu.set_kernel_profiling(false)?;
    profiled
}
