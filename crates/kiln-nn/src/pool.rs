//! Pooling layers over NCHW images: max and average pooling by a square window, and global
//! average pooling (each channel's mean, [N, C, H, W] → [N, C]).

use crate::module::{Module, Parameter};
use kiln_autograd::Var;
use kiln_tensor::{Backend, KilnError, Result};

/// Which reduction a pooling window does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolKind {
    Max,
    Avg,
}

/// Max or average pooling by a `kernel`×`kernel` window.
pub struct Pool2d {
    pub kind: PoolKind,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Pool2d {
    /// Max pooling, stride = kernel (non-overlapping windows), no padding.
    pub fn max(kernel: usize) -> Self {
        Pool2d {
            kind: PoolKind::Max,
            kernel,
            stride: kernel,
            padding: 0,
        }
    }

    /// Average pooling, stride = kernel, no padding.
    pub fn avg(kernel: usize) -> Self {
        Pool2d {
            kind: PoolKind::Avg,
            kernel,
            stride: kernel,
            padding: 0,
        }
    }

    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }
}

impl<B: Backend> Module<B> for Pool2d {
    fn forward(&self, x: &Var<B>) -> Result<Var<B>> {
        let pooled = match self.kind {
            PoolKind::Max => x.max_pool2d(self.kernel, self.stride, self.padding),
            PoolKind::Avg => x.avg_pool2d(self.kernel, self.stride, self.padding),
        };
        pooled.map_err(|e| crate::error::at_layer(e, &<Self as Module<B>>::name(self), x.shape()))
    }

    fn parameters(&self) -> Vec<Parameter<B>> {
        Vec::new()
    }

    fn name(&self) -> String {
        match self.kind {
            PoolKind::Max => "max_pool".into(),
            PoolKind::Avg => "avg_pool".into(),
        }
    }

    fn spec(&self) -> Option<crate::LayerSpec> {
        Some(crate::LayerSpec::Pool2d {
            kind: self.kind,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
        })
    }
}

/// Global average pooling: [N, C, H, W] → [N, C], each channel's mean over its pixels.
pub struct GlobalAvgPool;

impl<B: Backend> Module<B> for GlobalAvgPool {
    fn forward(&self, x: &Var<B>) -> Result<Var<B>> {
        let d = x.shape().dims().to_vec();
        if d.len() != 4 {
            return Err(KilnError::invalid(
                "GlobalAvgPool::forward",
                format!("global average pooling takes [N, C, H, W] images, got shape {d:?}"),
            ));
        }
        x.reshape([d[0], d[1], d[2] * d[3]])?.mean(2)
    }

    fn parameters(&self) -> Vec<Parameter<B>> {
        Vec::new()
    }

    fn name(&self) -> String {
        "global_avg_pool".into()
    }

    fn spec(&self) -> Option<crate::LayerSpec> {
        Some(crate::LayerSpec::GlobalAvgPool)
    }
}

/// [N, d1, d2, ...] → [N, d1·d2·...]: images to rows of features for a linear layer.
pub struct Flatten;

impl<B: Backend> Module<B> for Flatten {
    fn forward(&self, x: &Var<B>) -> Result<Var<B>> {
        let d = x.shape().dims().to_vec();
        let n = d.first().copied().unwrap_or(1);
        x.reshape([n, d.iter().skip(1).product::<usize>()])
    }

    fn parameters(&self) -> Vec<Parameter<B>> {
        Vec::new()
    }

    fn name(&self) -> String {
        "flatten".into()
    }

    fn spec(&self) -> Option<crate::LayerSpec> {
        Some(crate::LayerSpec::Flatten)
    }
}
