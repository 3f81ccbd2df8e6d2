//! Reuses freed GPU buffers by size class instead of creating one per op.
//!
//! A buffer released while recorded-but-unsubmitted commands may still read it goes to
//! `released_in_batch`: kernels may reuse it at once (commands in one encoder run in order),
//! but an upload, which `queue.write_buffer` performs *before* the pending commands, may not.
//! At each submit those buffers join the free lists.

use std::collections::HashMap;

/// Sizes round up to one of four classes per power of two (at most 25% waste), minimum 256 B.
pub fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(256);
    let top = 63 - bytes.leading_zeros() as u64;
    let step = 1u64 << top.saturating_sub(2);
    bytes.div_ceil(step) * step
}

#[derive(Default)]
pub struct BufferPool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    released_in_batch: HashMap<u64, Vec<wgpu::Buffer>>,
    pub buffers_allocated: u64,
    pub buffers_reused: u64,
    /// Bytes of buffers handed out and not yet released.
    pub live_bytes: u64,
    pub peak_live_bytes: u64,
    /// Bytes of every buffer the pool owns (live or free).
    pub total_bytes: u64,
}

impl BufferPool {
    /// A buffer of at least `bytes` (its size class). `for_upload` excludes buffers that
    /// pending commands may still read.
    pub fn acquire(&mut self, device: &wgpu::Device, bytes: u64, for_upload: bool) -> wgpu::Buffer {
        let class = size_class(bytes);
        let reused = self.free.get_mut(&class).and_then(Vec::pop).or_else(|| {
            if for_upload {
                None
            } else {
                self.released_in_batch.get_mut(&class).and_then(Vec::pop)
            }
        });
        let buffer = match reused {
            Some(buffer) => {
                self.buffers_reused += 1;
                buffer
            }
            None => {
                self.buffers_allocated += 1;
                self.total_bytes += class;
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("kiln tensor"),
                    size: class,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            }
        };
        self.live_bytes += class;
        self.peak_live_bytes = self.peak_live_bytes.max(self.live_bytes);
        buffer
    }

    pub fn release(&mut self, buffer: wgpu::Buffer) {
        let class = buffer.size();
        self.live_bytes -= class;
        self.released_in_batch
            .entry(class)
            .or_default()
            .push(buffer);
    }

    /// Called after a submit: everything released so far is safe for uploads too.
    pub fn on_submit(&mut self) {
        for (class, buffers) in self.released_in_batch.drain() {
            self.free.entry(class).or_default().extend(buffers);
        }
    }

    /// Drops every free buffer (memory goes back to the driver).
    pub fn trim(&mut self) {
        self.on_submit();
        for buffers in self.free.values() {
            for b in buffers {
                self.total_bytes -= b.size();
            }
        }
        self.free.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_round_up_by_at_most_a_quarter() {
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(256), 256);
        assert_eq!(size_class(257), 320);
        assert_eq!(size_class(1000), 1024);
        assert_eq!(size_class(1025), 1280);
        for bytes in [300u64, 4097, 123_457, 40_000_000] {
            let class = size_class(bytes);
            assert!(
                class >= bytes && class <= bytes + bytes / 4 + 1,
                "{bytes} -> {class}"
            );
        }
    }
}
