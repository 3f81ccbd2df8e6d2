//! Convolution and pooling on NCHW tensors: the shape checks (every error names the shapes and
//! what would fit) and the calls into the backend's conv and pool families.

use crate::backend::{Backend, Epilogue};
use crate::error::{KilnError, Result};
use crate::ops::{Conv2dShape, MatmulShape, Pool2dShape, UnaryOp};
use crate::Tensor;

/// How a convolution slides: stride, zero padding and dilation, the same along both axes; and
/// the channel groups (1: every output channel reads every input channel; the input channel
/// count: depthwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dOptions {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

impl<B: Backend> Tensor<B> {
    /// The convolution of `self` ([N, C, H, W]) with `weight` ([O, C / groups, KH, KW]).
    pub fn conv2d_shape(&self, weight: &Tensor<B>, o: Conv2dOptions) -> Result<Conv2dShape> {
        let op = "conv2d";
        let (x, w) = (self.dims(), weight.dims());
        if x.len() != 4 || w.len() != 4 {
            return Err(KilnError::ShapeMismatch {
                op,
                lhs: self.shape().clone(),
                rhs: weight.shape().clone(),
                reason: "the input is [N, C, H, W] and the weight [O, C / groups, KH, KW]".into(),
            });
        }
        let g = o.groups;
        if g == 0 || x[1] % g != 0 || w[0] % g != 0 {
            return Err(KilnError::invalid(
                op,
                format!(
                    "groups {g} must be ≥ 1 and divide both the input channels ({}) and the \
                     output channels ({})",
                    x[1], w[0]
                ),
            ));
        }
        if x[1] != w[1] * g {
            return Err(KilnError::ShapeMismatch {
                op,
                lhs: self.shape().clone(),
                rhs: weight.shape().clone(),
                reason: if g == 1 {
                    format!(
                        "the weight is [O, {}, KH, KW] for {} input channels",
                        x[1], x[1]
                    )
                } else {
                    format!(
                        "with groups {g} the weight is [O, {} / {g} = {}, KH, KW] for {} input \
                         channels",
                        x[1],
                        x[1] / g,
                        x[1]
                    )
                },
            });
        }
        if o.stride == 0 || o.dilation == 0 {
            return Err(KilnError::invalid(
                op,
                format!(
                    "stride {} and dilation {} must both be ≥ 1",
                    o.stride, o.dilation
                ),
            ));
        }
        let s = Conv2dShape {
            batch: x[0],
            in_channels: x[1],
            height: x[2],
            width: x[3],
            out_channels: w[0],
            kernel_h: w[2],
            kernel_w: w[3],
            stride: o.stride,
            padding: o.padding,
            dilation: o.dilation,
            groups: g,
        };
        if s.out_height() == 0 || s.out_width() == 0 || w[2] == 0 || w[3] == 0 {
            return Err(KilnError::invalid(
                op,
                format!(
                    "a {}×{} kernel (dilation {}) does not fit a {}×{} image padded by {}: \
                     pad more, or use a smaller kernel or dilation",
                    w[2], w[3], o.dilation, x[2], x[3], o.padding
                ),
            ));
        }
        Ok(s)
    }

    /// y = act(conv(self, weight) + bias) with `self` [N, C, H, W], `weight` [O, C / groups,
    /// KH, KW], `bias` [O]: y [N, O, OH, OW]. A 1×1 convolution with stride 1, no padding and
    /// one group is the plain batched matmul W · x[n].
    pub fn conv2d(
        &self,
        weight: &Tensor<B>,
        bias: Option<&Tensor<B>>,
        activation: Option<UnaryOp>,
        options: Conv2dOptions,
    ) -> Result<Self> {
        self.require_float("conv2d")?;
        let s = self.conv2d_shape(weight, options)?;
        if let Some(b) = bias {
            if b.dims() != [s.out_channels] {
                return Err(KilnError::ShapeMismatch {
                    op: "conv2d",
                    lhs: b.shape().clone(),
                    rhs: weight.shape().clone(),
                    reason: format!("the bias is [{}], one per output channel", s.out_channels),
                });
            }
        }
        let out_dims = [s.batch, s.out_channels, s.out_height(), s.out_width()];
        let (x, w) = (self.contiguous()?, weight.contiguous()?);
        if s.kernel_h == 1 && s.kernel_w == 1 && s.stride == 1 && s.padding == 0 && s.groups == 1 {
            let pixels = s.height * s.width;
            let shape = MatmulShape {
                batch: s.batch,
                m: s.out_channels,
                n: pixels,
                k: s.in_channels,
                trans_a: false,
                trans_b: false,
                batch_stride_a: 0,
                batch_stride_b: s.in_channels * pixels,
            };
            let y = self
                .backend
                .matmul(&w.storage, &x.storage, &shape, Epilogue::none())?;
            let mut y = self.wrap(y, out_dims);
            if let Some(b) = bias {
                y = (&y + &b.reshape([1, s.out_channels, 1, 1])?)?;
            }
            return match activation {
                Some(op) => y.unary(op),
                None => Ok(y),
            };
        }
        let b = bias.map(|b| b.contiguous()).transpose()?;
        let y = self.backend.conv2d(
            &x.storage,
            &w.storage,
            b.as_ref().map(|b| &*b.storage),
            activation,
            &s,
        )?;
        Ok(self.wrap(y, out_dims))
    }

    /// dx of a convolution: `self` is dy [N, O, OH, OW].
    pub fn conv2d_backward_input(&self, weight: &Tensor<B>, s: &Conv2dShape) -> Result<Self> {
        self.check_dims(
            "conv2d_backward_input",
            &[s.batch, s.out_channels, s.out_height(), s.out_width()],
        )?;
        let (dy, w) = (self.contiguous()?, weight.contiguous()?);
        let dx = self
            .backend
            .conv2d_backward_input(&dy.storage, &w.storage, s)?;
        Ok(self.wrap(dx, [s.batch, s.in_channels, s.height, s.width]))
    }

    /// dw of a convolution: `self` is x [N, C, H, W], `dy` [N, O, OH, OW].
    pub fn conv2d_backward_weight(&self, dy: &Tensor<B>, s: &Conv2dShape) -> Result<Self> {
        dy.check_dims(
            "conv2d_backward_weight",
            &[s.batch, s.out_channels, s.out_height(), s.out_width()],
        )?;
        let (x, dy) = (self.contiguous()?, dy.contiguous()?);
        let dw = self
            .backend
            .conv2d_backward_weight(&x.storage, &dy.storage, s)?;
        Ok(self.wrap(dw, [s.out_channels, s.group_in(), s.kernel_h, s.kernel_w]))
    }

    /// The pooling of `self` ([N, C, H, W]) by a `kernel`×`kernel` window.
    pub fn pool2d_shape(
        &self,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Pool2dShape> {
        let op = "pool2d";
        let x = self.dims();
        if x.len() != 4 {
            return Err(KilnError::invalid(
                op,
                format!(
                    "pooling takes [N, C, H, W] images, got shape {}",
                    self.shape()
                ),
            ));
        }
        if kernel == 0 || stride == 0 || 2 * padding > kernel {
            return Err(KilnError::invalid(
                op,
                format!(
                    "kernel {kernel}, stride {stride}, padding {padding}: kernel and stride \
                     ≥ 1, padding at most half the kernel"
                ),
            ));
        }
        let s = Pool2dShape {
            batch: x[0],
            channels: x[1],
            height: x[2],
            width: x[3],
            kernel,
            stride,
            padding,
        };
        if s.out_height() == 0 || s.out_width() == 0 {
            return Err(KilnError::invalid(
                op,
                format!(
                    "a {kernel}×{kernel} window does not fit a {}×{} image padded by {padding}",
                    x[2], x[3]
                ),
            ));
        }
        Ok(s)
    }

    /// Max pooling: (y [N, C, OH, OW], each window's arg-max as a u32 index into its plane).
    pub fn max_pool2d(&self, kernel: usize, stride: usize, padding: usize) -> Result<(Self, Self)> {
        self.require_float("max_pool2d")?;
        let s = self.pool2d_shape(kernel, stride, padding)?;
        let x = self.contiguous()?;
        let (y, indices) = self.backend.max_pool2d(&x.storage, &s)?;
        let dims = [s.batch, s.channels, s.out_height(), s.out_width()];
        Ok((self.wrap(y, dims), self.wrap(indices, dims)))
    }

    /// dx of max pooling: `self` is dy.
    pub fn max_pool2d_backward(&self, indices: &Tensor<B>, s: &Pool2dShape) -> Result<Self> {
        let dims = [s.batch, s.channels, s.out_height(), s.out_width()];
        self.check_dims("max_pool2d_backward", &dims)?;
        let (dy, i) = (self.contiguous()?, indices.contiguous()?);
        let dx = self
            .backend
            .max_pool2d_backward(&dy.storage, &i.storage, s)?;
        Ok(self.wrap(dx, [s.batch, s.channels, s.height, s.width]))
    }

    /// Average pooling (zero padding counts in the average, as PyTorch's default).
    pub fn avg_pool2d(&self, kernel: usize, stride: usize, padding: usize) -> Result<Self> {
        self.require_float("avg_pool2d")?;
        let s = self.pool2d_shape(kernel, stride, padding)?;
        let x = self.contiguous()?;
        let y = self.backend.avg_pool2d(&x.storage, &s)?;
        Ok(self.wrap(y, [s.batch, s.channels, s.out_height(), s.out_width()]))
    }

    /// dx of average pooling: `self` is dy.
    pub fn avg_pool2d_backward(&self, s: &Pool2dShape) -> Result<Self> {
        self.check_dims(
            "avg_pool2d_backward",
            &[s.batch, s.channels, s.out_height(), s.out_width()],
        )?;
        let dy = self.contiguous()?;
        let dx = self.backend.avg_pool2d_backward(&dy.storage, s)?;
        Ok(self.wrap(dx, [s.batch, s.channels, s.height, s.width]))
    }

    fn check_dims(&self, op: &'static str, dims: &[usize]) -> Result<()> {
        if self.dims() != dims {
            return Err(KilnError::invalid(
                op,
                format!("expected shape {dims:?}, got {}", self.shape()),
            ));
        }
        Ok(())
    }
}
