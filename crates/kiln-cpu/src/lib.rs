//! Kiln's CPU backend: the fallback on machines without a GPU and the reference every GPU
//! kernel is checked against. f32 and f64; GEMM from the `gemm` crate; large elementwise ops
//! and reductions run on all cores with rayon.

mod activation;
mod augment;
mod batch_norm;
mod cast;
mod conv;
mod data;
mod elementwise;
mod gather;
mod loss_scale;
mod matmul;
mod memory;
mod optim;
mod pool;
pub mod random;
pub mod real;
mod reduce;
mod softmax_xent;

use kiln_tensor::{
    AdamStep, AdaptiveStep, BackendStorage, BatchNormShape, BinaryOp, Conv2dShape, CoreOps, DType,
    DataOps, Distribution, Epilogue, HostData, ImageBatch, KilnError, Layout, LossScaleRule,
    MatmulShape, NnOps, OptimOps, Pool2dShape, ReduceDims, ReduceOp, Result, RngState, Rows,
    SgdStep, UnaryOp, Warp, XentTargets,
};
use std::sync::{RwLock, RwLockReadGuard};

/// Element counts above which elementwise work is split across threads.
pub(crate) const PARALLEL_THRESHOLD: usize = 1 << 15;

/// Host memory holding one tensor's elements. The lock exists for `adam_step`, which
/// updates its state in place.
#[derive(Debug)]
pub struct CpuStorage {
    data: RwLock<HostData>,
}

impl CpuStorage {
    pub fn new(data: HostData) -> Self {
        CpuStorage {
            data: RwLock::new(data),
        }
    }

    pub fn read(&self) -> RwLockReadGuard<'_, HostData> {
        self.data.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write(&self) -> std::sync::RwLockWriteGuard<'_, HostData> {
        self.data.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl BackendStorage for CpuStorage {
    fn dtype(&self) -> DType {
        self.read().dtype()
    }

    fn len(&self) -> usize {
        self.read().len()
    }
}

#[derive(Clone, Debug, Default)]
pub struct CpuBackend;

impl CpuBackend {
    pub fn new() -> Self {
        CpuBackend
    }

    /// Copies `src` into `dst` in place (`dst.copy_(src)` in PyTorch): whole contiguous
    /// tensors of one dtype and shape, in parallel chunks for large tensors. It is the plain
    /// memory copy `compare_backends` takes as the CPU's bandwidth ceiling.
    pub fn copy_into(
        &self,
        src: &kiln_tensor::Tensor<CpuBackend>,
        dst: &kiln_tensor::Tensor<CpuBackend>,
    ) -> Result<()> {
        src.check_copy_into(dst)?;
        if std::ptr::eq(src.storage(), dst.storage()) {
            return Ok(());
        }
        memory::copy_into(&src.storage().read(), &mut dst.storage().write());
        Ok(())
    }
}

pub(crate) fn unsupported(op: &'static str, dtype: DType) -> KilnError {
    KilnError::UnsupportedDType {
        op,
        dtype,
        backend: "cpu".into(),
        supported: "f32, f64".into(),
    }
}

/// Applies `$body` with `$v` bound to the f32 or f64 vector inside `$data`, wrapping the
/// result back into HostData of the same float type.
macro_rules! float_dispatch {
    ($data:expr, $op:expr, |$v:ident| $body:expr) => {
        match $data {
            HostData::F32($v) => HostData::F32($body),
            HostData::F64($v) => HostData::F64($body),
            other => return Err(crate::unsupported($op, other.dtype())),
        }
    };
}
pub(crate) use float_dispatch;

impl CoreOps for CpuBackend {
    type Storage = CpuStorage;

    fn name(&self) -> String {
        "cpu".into()
    }

    fn supports_dtype(&self, _dtype: DType) -> bool {
        true
    }

    fn upload(&self, data: &HostData) -> Result<CpuStorage> {
        Ok(CpuStorage::new(data.clone()))
    }

    fn download(&self, tensors: &[(&CpuStorage, &Layout)]) -> Result<Vec<HostData>> {
        tensors
            .iter()
            .map(|(s, layout)| memory::copy_strided(&s.read(), layout))
            .collect()
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn fill(&self, numel: usize, dtype: DType, value: f64) -> Result<CpuStorage> {
        Ok(CpuStorage::new(memory::fill(numel, dtype, value)))
    }

    fn copy_strided(&self, src: &CpuStorage, layout: &Layout) -> Result<CpuStorage> {
        Ok(CpuStorage::new(memory::copy_strided(&src.read(), layout)?))
    }

    fn cast(&self, src: &CpuStorage, to: DType) -> Result<CpuStorage> {
        Ok(CpuStorage::new(cast::cast(&src.read(), to)?))
    }

    fn unary(&self, op: UnaryOp, x: &CpuStorage, layout: &Layout) -> Result<CpuStorage> {
        Ok(CpuStorage::new(elementwise::unary(op, &x.read(), layout)?))
    }

    fn binary(
        &self,
        op: BinaryOp,
        lhs: &CpuStorage,
        lhs_layout: &Layout,
        rhs: &CpuStorage,
        rhs_layout: &Layout,
    ) -> Result<CpuStorage> {
        Ok(CpuStorage::new(elementwise::binary(
            op,
            &lhs.read(),
            lhs_layout,
            &rhs.read(),
            rhs_layout,
        )?))
    }

    fn binary_scalar(
        &self,
        op: BinaryOp,
        x: &CpuStorage,
        layout: &Layout,
        scalar: f64,
        scalar_on_left: bool,
    ) -> Result<CpuStorage> {
        Ok(CpuStorage::new(elementwise::binary_scalar(
            op,
            &x.read(),
            layout,
            scalar,
            scalar_on_left,
        )?))
    }

    fn select(
        &self,
        cond: (&CpuStorage, &Layout),
        on_true: (&CpuStorage, &Layout),
        on_false: (&CpuStorage, &Layout),
    ) -> Result<CpuStorage> {
        Ok(CpuStorage::new(elementwise::select(
            (&cond.0.read(), cond.1),
            (&on_true.0.read(), on_true.1),
            (&on_false.0.read(), on_false.1),
        )?))
    }

    fn reduce(&self, op: ReduceOp, x: &CpuStorage, dims: ReduceDims) -> Result<CpuStorage> {
        Ok(CpuStorage::new(reduce::reduce(op, &x.read(), dims)?))
    }

    fn sum_all(&self, x: &CpuStorage) -> Result<CpuStorage> {
        Ok(CpuStorage::new(reduce::sum_all(&x.read())?))
    }

    fn gather_rows(
        &self,
        src: &CpuStorage,
        src_rows: Rows,
        indices: &CpuStorage,
    ) -> Result<CpuStorage> {
        Ok(CpuStorage::new(gather::gather_rows(
            &src.read(),
            src_rows,
            &indices.read(),
        )?))
    }

    fn random(
        &self,
        numel: usize,
        distribution: Distribution,
        rng: RngState,
    ) -> Result<CpuStorage> {
        Ok(CpuStorage::new(random::random(numel, distribution, rng)))
    }
}

impl NnOps for CpuBackend {
    fn matmul(
        &self,
        a: &CpuStorage,
        b: &CpuStorage,
        shape: &MatmulShape,
        epilogue: Epilogue<'_, CpuStorage>,
    ) -> Result<CpuStorage> {
        let bias = epilogue.bias.map(|b| b.read());
        Ok(CpuStorage::new(matmul::matmul(
            &a.read(),
            &b.read(),
            shape,
            bias.as_deref(),
            epilogue.activation,
            epilogue.output,
        )?))
    }

    fn unary_backward(
        &self,
        op: UnaryOp,
        x: &CpuStorage,
        x_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<CpuStorage> {
        Ok(CpuStorage::new(activation::unary_backward(
            op,
            &x.read(),
            x_layout,
            &grad.read(),
            grad_layout,
        )?))
    }

    fn prelu(&self, x: &CpuStorage, alpha: &CpuStorage, dims: ReduceDims) -> Result<CpuStorage> {
        Ok(CpuStorage::new(activation::prelu(
            &x.read(),
            &alpha.read(),
            dims,
        )?))
    }

    fn prelu_backward(
        &self,
        x: &CpuStorage,
        alpha: &CpuStorage,
        grad: &CpuStorage,
        dims: ReduceDims,
    ) -> Result<(CpuStorage, CpuStorage)> {
        let (dx, dalpha) =
            activation::prelu_backward(&x.read(), &alpha.read(), &grad.read(), dims)?;
        Ok((CpuStorage::new(dx), CpuStorage::new(dalpha)))
    }

    fn softmax(&self, x: &CpuStorage, shape: Rows, log: bool) -> Result<CpuStorage> {
        Ok(CpuStorage::new(softmax_xent::softmax(
            &x.read(),
            shape,
            log,
        )?))
    }

    fn softmax_xent(
        &self,
        logits: &CpuStorage,
        shape: Rows,
        targets: XentTargets<'_, CpuStorage>,
    ) -> Result<CpuStorage> {
        let (guard, soft) = targets_guard(&targets);
        Ok(CpuStorage::new(softmax_xent::softmax_xent(
            &logits.read(),
            shape,
            &guard,
            soft,
        )?))
    }

    fn softmax_xent_backward(
        &self,
        logits: &CpuStorage,
        shape: Rows,
        targets: XentTargets<'_, CpuStorage>,
        grad_rows: &CpuStorage,
    ) -> Result<CpuStorage> {
        let (guard, soft) = targets_guard(&targets);
        Ok(CpuStorage::new(softmax_xent::softmax_xent_backward(
            &logits.read(),
            shape,
            &guard,
            soft,
            &grad_rows.read(),
        )?))
    }

    fn batch_norm_stats(
        &self,
        x: &CpuStorage,
        shape: BatchNormShape,
    ) -> Result<(CpuStorage, CpuStorage)> {
        let (mean, var) = batch_norm::batch_norm_stats(&x.read(), shape)?;
        Ok((CpuStorage::new(mean), CpuStorage::new(var)))
    }

    fn batch_norm_forward(
        &self,
        x: &CpuStorage,
        mean: &CpuStorage,
        var: &CpuStorage,
        gamma: &CpuStorage,
        beta: &CpuStorage,
        shape: BatchNormShape,
        eps: f32,
    ) -> Result<CpuStorage> {
        let [m, v, g, b] = [mean, var, gamma, beta].map(|t| t.read());
        Ok(CpuStorage::new(batch_norm::batch_norm_forward(
            &x.read(),
            [&*m, &*v, &*g, &*b],
            shape,
            eps,
        )?))
    }

    fn batch_norm_backward_reduce(
        &self,
        x: &CpuStorage,
        dy: &CpuStorage,
        mean: &CpuStorage,
        var: &CpuStorage,
        shape: BatchNormShape,
        eps: f32,
    ) -> Result<(CpuStorage, CpuStorage)> {
        let (a, b) = batch_norm::batch_norm_backward_reduce(
            &x.read(),
            &dy.read(),
            [&*mean.read(), &*var.read()],
            shape,
            eps,
        )?;
        Ok((CpuStorage::new(a), CpuStorage::new(b)))
    }

    fn batch_norm_backward_input(
        &self,
        x: &CpuStorage,
        dy: &CpuStorage,
        mean: &CpuStorage,
        var: &CpuStorage,
        gamma: &CpuStorage,
        (sum_dy, sum_dy_xhat): (&CpuStorage, &CpuStorage),
        shape: BatchNormShape,
        eps: f32,
    ) -> Result<CpuStorage> {
        let [m, v, g, a, b] = [mean, var, gamma, sum_dy, sum_dy_xhat].map(|t| t.read());
        Ok(CpuStorage::new(batch_norm::batch_norm_backward_input(
            &x.read(),
            &dy.read(),
            [&*m, &*v, &*g],
            [&*a, &*b],
            shape,
            eps,
        )?))
    }

    fn dropout(&self, x: &CpuStorage, p: f32, rng: RngState) -> Result<(CpuStorage, CpuStorage)> {
        let (y, mask) = random::dropout(&x.read(), p, rng)?;
        Ok((CpuStorage::new(y), CpuStorage::new(mask)))
    }

    fn conv2d(
        &self,
        x: &CpuStorage,
        w: &CpuStorage,
        bias: Option<&CpuStorage>,
        activation: Option<UnaryOp>,
        shape: &Conv2dShape,
    ) -> Result<CpuStorage> {
        let bias = bias.map(|b| b.read());
        Ok(CpuStorage::new(conv::conv2d(
            &x.read(),
            &w.read(),
            bias.as_deref(),
            activation,
            shape,
        )?))
    }

    fn conv2d_backward_input(
        &self,
        dy: &CpuStorage,
        w: &CpuStorage,
        shape: &Conv2dShape,
    ) -> Result<CpuStorage> {
        Ok(CpuStorage::new(conv::conv2d_backward_input(
            &dy.read(),
            &w.read(),
            shape,
        )?))
    }

    fn conv2d_backward_weight(
        &self,
        x: &CpuStorage,
        dy: &CpuStorage,
        shape: &Conv2dShape,
    ) -> Result<CpuStorage> {
        Ok(CpuStorage::new(conv::conv2d_backward_weight(
            &x.read(),
            &dy.read(),
            shape,
        )?))
    }

    fn max_pool2d(&self, x: &CpuStorage, shape: &Pool2dShape) -> Result<(CpuStorage, CpuStorage)> {
        let (y, indices) = pool::max_pool2d(&x.read(), shape)?;
        Ok((CpuStorage::new(y), CpuStorage::new(indices)))
    }

    fn max_pool2d_backward(
        &self,
        dy: &CpuStorage,
        indices: &CpuStorage,
        shape: &Pool2dShape,
    ) -> Result<CpuStorage> {
        Ok(CpuStorage::new(pool::max_pool2d_backward(
            &dy.read(),
            &indices.read(),
            shape,
        )?))
    }

    fn avg_pool2d(&self, x: &CpuStorage, shape: &Pool2dShape) -> Result<CpuStorage> {
        Ok(CpuStorage::new(pool::avg_pool2d(&x.read(), shape)?))
    }

    fn avg_pool2d_backward(&self, dy: &CpuStorage, shape: &Pool2dShape) -> Result<CpuStorage> {
        Ok(CpuStorage::new(pool::avg_pool2d_backward(
            &dy.read(),
            shape,
        )?))
    }
}

impl OptimOps for CpuBackend {
    fn adam_step(
        &self,
        param: &CpuStorage,
        grad: &CpuStorage,
        m: &CpuStorage,
        v: &CpuStorage,
        step: &AdamStep,
        skip_if: Option<&CpuStorage>,
    ) -> Result<()> {
        distinct_from_gradient("adam_step", grad, &[param, m, v])?;
        let (skip, skipped) = loss_scale::gate(skip_if.map(|f| f.read()).as_deref())?;
        if skip {
            return Ok(());
        }
        // Bias corrections count only the steps taken.
        let step = AdamStep {
            step: step.step - skipped,
            ..*step
        };
        let grad = grad.read();
        optim::adam_step(
            &mut param.write(),
            &grad,
            &mut m.write(),
            &mut v.write(),
            &step,
        )
    }

    fn sgd_step(
        &self,
        param: &CpuStorage,
        grad: &CpuStorage,
        velocity: Option<&CpuStorage>,
        step: &SgdStep,
        skip_if: Option<&CpuStorage>,
    ) -> Result<()> {
        let state: Vec<_> = [Some(param), velocity].into_iter().flatten().collect();
        distinct_from_gradient("sgd_step", grad, &state)?;
        if loss_scale::gate(skip_if.map(|f| f.read()).as_deref())?.0 {
            return Ok(());
        }
        let grad = grad.read();
        let mut velocity = velocity.map(|v| v.write());
        optim::sgd_step(&mut param.write(), &grad, velocity.as_deref_mut(), step)
    }

    fn adaptive_step(
        &self,
        param: &CpuStorage,
        grad: &CpuStorage,
        accumulator: &CpuStorage,
        step: &AdaptiveStep,
        skip_if: Option<&CpuStorage>,
    ) -> Result<()> {
        distinct_from_gradient("adaptive_step", grad, &[param, accumulator])?;
        if loss_scale::gate(skip_if.map(|f| f.read()).as_deref())?.0 {
            return Ok(());
        }
        let grad = grad.read();
        optim::adaptive_step(&mut param.write(), &grad, &mut accumulator.write(), step)
    }

    fn unscale_gradient(
        &self,
        grad: &CpuStorage,
        scale: &CpuStorage,
        flags: &CpuStorage,
    ) -> Result<()> {
        distinct_from_gradient("unscale_gradient", scale, &[grad, flags])?;
        loss_scale::unscale_gradient(&mut grad.write(), &scale.read(), &mut flags.write())
    }

    fn update_loss_scale(
        &self,
        scale: &CpuStorage,
        flags: &CpuStorage,
        rule: &LossScaleRule,
    ) -> Result<()> {
        distinct_from_gradient("update_loss_scale", scale, &[flags])?;
        loss_scale::update_loss_scale(&mut scale.write(), &mut flags.write(), rule)
    }
}

impl DataOps for CpuBackend {
    fn gather_u8_affine(
        &self,
        chunks: &[(&CpuStorage, usize)],
        features: usize,
        indices: &CpuStorage,
        scale: &CpuStorage,
        shift: &CpuStorage,
    ) -> Result<CpuStorage> {
        let guards: Vec<_> = chunks.iter().map(|(s, first)| (s.read(), *first)).collect();
        let views: Vec<(&HostData, usize)> = guards.iter().map(|(g, f)| (&**g, *f)).collect();
        Ok(CpuStorage::new(data::gather_u8_affine(
            &views,
            features,
            &indices.read(),
            &scale.read(),
            &shift.read(),
        )?))
    }

    fn warp_images(
        &self,
        images: &CpuStorage,
        shape: ImageBatch,
        matrices: &CpuStorage,
        warp: Warp,
    ) -> Result<CpuStorage> {
        Ok(CpuStorage::new(augment::warp_images(
            &images.read(),
            shape,
            &matrices.read(),
            warp,
        )?))
    }

    fn jitter_images(
        &self,
        images: &CpuStorage,
        shape: ImageBatch,
        factors: &CpuStorage,
    ) -> Result<CpuStorage> {
        Ok(CpuStorage::new(augment::jitter_images(
            &images.read(),
            shape,
            &factors.read(),
        )?))
    }

    fn cutmix_images(
        &self,
        images: &CpuStorage,
        shape: ImageBatch,
        boxes: &CpuStorage,
    ) -> Result<CpuStorage> {
        Ok(CpuStorage::new(augment::cutmix_images(
            &images.read(),
            shape,
            &boxes.read(),
        )?))
    }
}

/// In-place updates lock the state for writing and the gradient for reading: they must be
/// different storages (and the state tensors different from each other).
fn distinct_from_gradient(
    op: &'static str,
    grad: &CpuStorage,
    state: &[&CpuStorage],
) -> Result<()> {
    for (i, a) in state.iter().enumerate() {
        if std::ptr::eq(grad, *a) || state[..i].iter().any(|b| std::ptr::eq(*a, *b)) {
            return Err(KilnError::InvalidArgument {
                op,
                message: "the gradient and the updated tensors must be distinct storages".into(),
            });
        }
    }
    Ok(())
}

/// The targets' data, and whether they are soft targets (else u32 labels).
fn targets_guard<'a>(
    targets: &XentTargets<'a, CpuStorage>,
) -> (RwLockReadGuard<'a, HostData>, bool) {
    match targets {
        XentTargets::Labels(t) => (t.read(), false),
        XentTargets::Soft(t) => (t.read(), true),
    }
}
