//! Readback: copies tensors into staging buffers with one submit, then maps them. The core
//! is a future (`map_async` completes it); `WgpuBackend::download` blocks on it.

use super::context::Context;
use crate::error::{KilnError, Result};
use crate::{DType, HostData};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

/// Where one tensor's elements sit in its staging buffer.
pub(crate) struct Piece {
    pub dtype: DType,
    pub len: usize,
    /// Bytes to skip at the start (the copy was widened to 4-byte alignment).
    pub skip: usize,
}

pub struct Readback {
    ctx: Arc<Context>,
    staging: Vec<(wgpu::Buffer, u64)>,
    pieces: Vec<Piece>,
    mapped: Arc<AtomicUsize>,
    failed: Arc<AtomicBool>,
}

impl Readback {
    pub(crate) fn start(
        ctx: Arc<Context>,
        staging: Vec<(wgpu::Buffer, u64)>,
        pieces: Vec<Piece>,
    ) -> Self {
        let mapped = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        for (buffer, size) in &staging {
            let (mapped, failed) = (mapped.clone(), failed.clone());
            if *size == 0 {
                mapped.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            buffer
                .slice(0..*size)
                .map_async(wgpu::MapMode::Read, move |result| {
                    if result.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    mapped.fetch_add(1, Ordering::SeqCst);
                });
        }
        Readback {
            ctx,
            staging,
            pieces,
            mapped,
            failed,
        }
    }

    fn finish(&mut self) -> Result<Vec<HostData>> {
        self.ctx.check_errors()?;
        if self.failed.load(Ordering::SeqCst) {
            return Err(KilnError::Device("mapping a readback buffer failed".into()));
        }
        let mut out = Vec::with_capacity(self.pieces.len());
        for ((buffer, size), piece) in self.staging.drain(..).zip(&self.pieces) {
            if size == 0 {
                out.push(HostData::from_bytes(piece.dtype, &[], 0));
            } else {
                let view = buffer
                    .get_mapped_range(0..size)
                    .map_err(|e| KilnError::Device(format!("reading a mapped buffer: {e}")))?;
                out.push(HostData::from_bytes(
                    piece.dtype,
                    &view[piece.skip..],
                    piece.len,
                ));
                drop(view);
                buffer.unmap();
            }
            self.ctx.return_staging(buffer);
        }
        Ok(out)
    }
}

impl Future for Readback {
    type Output = Result<Vec<HostData>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        if let Err(e) = self.ctx.device.poll(wgpu::PollType::Poll) {
            return Poll::Ready(Err(KilnError::Device(e.to_string())));
        }
        if self.mapped.load(Ordering::SeqCst) == self.staging.len() {
            return Poll::Ready(self.finish());
        }
        if let Err(e) = self.ctx.check_errors() {
            return Poll::Ready(Err(e));
        }
        // wgpu completes maps only when polled; ask to be polled again.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
