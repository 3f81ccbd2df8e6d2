//! A tensor's buffer on the GPU. Dropping it returns the buffer to the pool.

use super::context::{Binding, Context};
use crate::backend::BackendStorage;
use crate::error::{KilnError, Result};
use crate::DType;
use std::fmt;
use std::sync::Arc;

pub struct WgpuStorage {
    buffer: Option<wgpu::Buffer>,
    bytes: u64,
    len: usize,
    dtype: DType,
    ctx: Arc<Context>,
}

impl WgpuStorage {
    pub(crate) fn new(
        ctx: &Arc<Context>,
        buffer: wgpu::Buffer,
        bytes: u64,
        len: usize,
        dtype: DType,
    ) -> Self {
        WgpuStorage {
            buffer: Some(buffer),
            bytes,
            len,
            dtype,
            ctx: ctx.clone(),
        }
    }

    /// A new uninitialised storage for a kernel to write.
    pub(crate) fn output(
        ctx: &Arc<Context>,
        len: usize,
        dtype: DType,
        what: &str,
    ) -> crate::Result<Self> {
        let (buffer, bytes) = ctx.acquire(len, dtype, false, what)?;
        Ok(WgpuStorage::new(ctx, buffer, bytes, len, dtype))
    }

    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }

    pub(crate) fn binding(&self) -> Binding<'_> {
        Binding {
            buffer: self.buffer(),
            bytes: self.bytes,
        }
    }
}

impl BackendStorage for WgpuStorage {
    fn dtype(&self) -> DType {
        self.dtype
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl fmt::Debug for WgpuStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WgpuStorage({} × {}, {} bytes)",
            self.len, self.dtype, self.bytes
        )
    }
}

impl Drop for WgpuStorage {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            self.ctx.release(buffer);
        }
    }
}

pub(crate) fn require_f32(s: &WgpuStorage, op: &'static str) -> Result<()> {
    if s.dtype() == DType::F32 {
        Ok(())
    } else {
        Err(KilnError::UnsupportedDType {
            op,
            dtype: s.dtype(),
            backend: "wgpu".into(),
            supported: "f32".into(),
        })
    }
}
