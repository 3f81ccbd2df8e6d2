//! One GPU device: queue, pipeline cache, buffer pool, and the pending batch of commands.
//!
//! Ops record dispatches into one open compute pass of one pending command encoder. Nothing is
//! submitted until a sync point: a readback, an explicit `sync()`, or a full batch (the
//! parameter arena holds `MAX_DISPATCHES_PER_BATCH` parameter blocks). Each dispatch's small
//! parameters are appended to a host vector and uploaded to the arena with one
//! `write_buffer` just before the submit; kernels read them through a dynamic uniform offset.

use super::buffer_pool::{size_class, BufferPool};
use super::kernel_profile::{KernelProfiler, KernelTime};
use super::matmul::MatmulChoice;
use super::pipeline_cache::{LayoutKey, PipelineCache, PipelineKey, Specialisation};
use super::shaders::Kernel;
use super::timer::Timestamps;
use crate::error::{KilnError, Result};
use crate::DType;
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes reserved per dispatch in the parameter arena (the largest `min_uniform_buffer_offset_alignment`).
pub const PARAM_SLOT: u64 = 256;
/// Dispatches recorded before a batch is submitted on its own.
pub const MAX_DISPATCHES_PER_BATCH: u64 = 4096;

/// What the backend has done so far; tests read these to check caching, pooling and batching.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub pipelines_built: u64,
    pub pipeline_cache_hits: u64,
    pub buffers_allocated: u64,
    pub buffers_reused: u64,
    pub submits: u64,
    pub dispatches: u64,
    /// Copies recorded: buffer to texture (packed matmul operands already in packed layout)
    /// and buffer to buffer (`WgpuBackend::copy_into`).
    pub copies: u64,
    pub readbacks: u64,
    /// Bytes of tensor buffers currently in use, and the most ever in use at once.
    pub live_bytes: u64,
    pub peak_live_bytes: u64,
    /// Bytes of every tensor buffer the pool owns, in use or free.
    pub pool_bytes: u64,
    /// Shape classes the matmul tuner measured in this process (each one a sync point, with
    /// its submits counted in `submits`); classes found in the tuning file are not measured.
    pub matmul_classes_tuned: u64,
}

pub(crate) struct Batch {
    pool: BufferPool,
    textures: HashMap<TextureKey, (wgpu::Texture, wgpu::TextureView)>,
    staging: HashMap<u64, Vec<wgpu::Buffer>>,
    pipelines: PipelineCache,
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    params: Vec<u8>,
    /// Per-dispatch timestamps, while kernel profiling is on.
    profiler: Option<KernelProfiler>,
    submits: u64,
    dispatches: u64,
    copies: u64,
    readbacks: u64,
}

pub struct Context {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    pub(crate) native_f16: bool,
    /// Which matmul kernel runs, and what it needs.
    pub(crate) matmul: MatmulChoice,
    /// Timestamp queries for device timing, when the adapter has them.
    pub(crate) timestamps: Option<Timestamps>,
    param_arena: wgpu::Buffer,
    batch: Mutex<Batch>,
    error: Arc<Mutex<Option<String>>>,
    lost: Arc<Mutex<Option<String>>>,
}

/// Packed textures kept for reuse, at most this many (then the cache starts again).
const MAX_CACHED_TEXTURES: usize = 32;

/// Which packed operand (0: A, 1: B) of which size, in texels.
type TextureKey = (u8, u32, u32);

/// A packed operand texture checked out of the context's cache; back in the cache on drop.
pub(crate) struct PackedTexture<'c> {
    ctx: &'c Context,
    key: TextureKey,
    texture: Option<(wgpu::Texture, wgpu::TextureView)>,
}

impl PackedTexture<'_> {
    pub(crate) fn texture(&self) -> &wgpu::Texture {
        &self.texture.as_ref().expect("held until dropped").0
    }

    pub(crate) fn view(&self) -> &wgpu::TextureView {
        &self.texture.as_ref().expect("held until dropped").1
    }
}

impl Drop for PackedTexture<'_> {
    fn drop(&mut self) {
        let Some(texture) = self.texture.take() else {
            return;
        };
        let mut b = self.ctx.lock();
        if !b.textures.contains_key(&self.key) && b.textures.len() >= MAX_CACHED_TEXTURES {
            b.textures.clear();
        }
        // A concurrent matmul may have returned one of the same size first: keep that one.
        b.textures.entry(self.key).or_insert(texture);
    }
}

/// Textures a kernel binds beside its buffers: sampled ones first, storage ones last.
#[derive(Default)]
pub(crate) struct TextureBindings<'a> {
    pub sampled: &'a [&'a wgpu::TextureView],
    pub storage: &'a [&'a wgpu::TextureView],
}

/// A storage buffer and the number of bytes a kernel may see of it.
pub(crate) struct Binding<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub bytes: u64,
}

impl Context {
    pub(crate) fn new(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        native_f16: bool,
        matmul: MatmulChoice,
        max_binding_bytes: Option<u64>,
    ) -> Arc<Self> {
        let error = Arc::new(Mutex::new(None));
        let lost = Arc::new(Mutex::new(None));
        {
            let error = error.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let mut slot = error.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert_with(|| e.to_string());
            }));
            let lost = lost.clone();
            device.set_device_lost_callback(move |reason, message| {
                let mut slot = lost.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert_with(|| format!("{reason:?}: {message}"));
            });
        }
        let param_arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln parameter arena"),
            size: PARAM_SLOT * MAX_DISPATCHES_PER_BATCH,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut limits = device.limits();
        if let Some(cap) = max_binding_bytes {
            limits.max_storage_buffer_binding_size =
                limits.max_storage_buffer_binding_size.min(cap);
        }
        let timestamps = Timestamps::new(&device, &queue);
        Arc::new(Context {
            timestamps,
            device,
            queue,
            info,
            limits,
            native_f16,
            matmul,
            param_arena,
            batch: Mutex::new(Batch {
                pool: BufferPool::default(),
                textures: HashMap::new(),
                staging: HashMap::new(),
                pipelines: PipelineCache::default(),
                encoder: None,
                pass: None,
                params: Vec::with_capacity((PARAM_SLOT * 64) as usize),
                profiler: None,
                submits: 0,
                dispatches: 0,
                copies: 0,
                readbacks: 0,
            }),
            error,
            lost,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn adapter_description(&self) -> String {
        format!("{} ({:?})", self.info.name, self.info.backend)
    }

    pub fn counters(&self) -> Counters {
        let b = self.lock();
        Counters {
            pipelines_built: b.pipelines.pipelines_built,
            pipeline_cache_hits: b.pipelines.hits,
            buffers_allocated: b.pool.buffers_allocated,
            buffers_reused: b.pool.buffers_reused,
            submits: b.submits,
            dispatches: b.dispatches,
            copies: b.copies,
            readbacks: b.readbacks,
            live_bytes: b.pool.live_bytes,
            peak_live_bytes: b.pool.peak_live_bytes,
            pool_bytes: b.pool.total_bytes,
            matmul_classes_tuned: self.matmul.tuner.as_ref().map_or(0, |t| t.measured()),
        }
    }

    pub(crate) fn reset_peak(&self) {
        let mut b = self.lock();
        b.pool.peak_live_bytes = b.pool.live_bytes;
    }

    pub(crate) fn trim_pool(&self) {
        self.lock().pool.trim();
    }

    /// A buffer for `len` elements of `dtype`, or an error if it exceeds the binding limit.
    pub(crate) fn acquire(
        &self,
        len: usize,
        dtype: DType,
        for_upload: bool,
        what: &str,
    ) -> Result<(wgpu::Buffer, u64)> {
        let bytes = binding_bytes(len, dtype);
        let limit = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        if size_class(bytes) > self.limits.max_buffer_size || bytes > limit {
            return Err(KilnError::TooLarge {
                what: format!("{what} ({len} × {dtype})"),
                bytes,
                limit,
                adapter: self.adapter_description(),
            });
        }
        let buffer = self.lock().pool.acquire(&self.device, bytes, for_upload);
        Ok((buffer, bytes))
    }

    pub(crate) fn release(&self, buffer: wgpu::Buffer) {
        self.lock().pool.release(buffer);
    }

    /// An rgba32float texture of `width` × `height` texels for packed operand `role`, checked
    /// out of the cache for one matmul and returned to it when the guard drops (after the
    /// multiply that samples it is recorded). Reuse by later matmuls, even within one batch, is
    /// safe: commands run in recorded order, and wgpu places the barriers between a dispatch
    /// that writes a texture and one that samples it. The checkout keeps concurrent matmuls
    /// (other threads sharing this device) from packing into a texture between another's pack
    /// and multiply: such a matmul gets a texture of its own.
    pub(crate) fn packed_texture(&self, role: u8, width: u32, height: u32) -> PackedTexture<'_> {
        let key = (role, width, height);
        let cached = self.lock().textures.remove(&key);
        let (texture, view) = cached.unwrap_or_else(|| {
            let texture = self.device.create_texture(&wgpu::TextureDescriptor {
                label: Some("kiln packed operand"),
                size: wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba32Float,
                usage: wgpu::TextureUsages::TEXTURE_BINDING
                    | wgpu::TextureUsages::STORAGE_BINDING
                    | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            });
            let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
            (texture, view)
        });
        PackedTexture {
            ctx: self,
            key,
            texture: Some((texture, view)),
        }
    }

    /// Records a copy of the first `height` rows of `bytes_per_row` bytes of `buffer` into
    /// `texture`, `width` texels per row. Ends the open compute pass (copies are encoder
    /// commands); the next dispatch opens a new one.
    pub(crate) fn copy_to_texture(
        &self,
        buffer: &wgpu::Buffer,
        texture: &wgpu::Texture,
        bytes_per_row: u32,
        width: u32,
        height: u32,
    ) {
        let mut b = self.lock();
        b.pass.take();
        self.encoder(&mut b).copy_buffer_to_texture(
            wgpu::TexelCopyBufferInfo {
                buffer,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(bytes_per_row),
                    rows_per_image: Some(height),
                },
            },
            wgpu::TexelCopyTextureInfo {
                texture,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
        );
        b.copies += 1;
    }

    /// Surfaces a device loss or an error wgpu reported since the last check.
    pub(crate) fn check_errors(&self) -> Result<()> {
        if let Some(message) = self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(KilnError::DeviceLost(message));
        }
        if let Some(message) = self.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(KilnError::Device(message));
        }
        Ok(())
    }

    /// Records one dispatch. `bindings` lists the kernel's reads, then its writes.
    pub(crate) fn dispatch(
        &self,
        kernel: Kernel,
        constants: Specialisation,
        params: &[u8],
        bindings: &[Binding<'_>],
        workgroups: [u32; 3],
    ) -> Result<()> {
        self.dispatch_with_textures(
            kernel,
            constants,
            params,
            TextureBindings::default(),
            bindings,
            workgroups,
        )
    }

    /// Records one dispatch of a kernel that also binds textures.
    pub(crate) fn dispatch_with_textures(
        &self,
        kernel: Kernel,
        constants: Specialisation,
        params: &[u8],
        textures: TextureBindings<'_>,
        bindings: &[Binding<'_>],
        workgroups: [u32; 3],
    ) -> Result<()> {
        let layout_key = LayoutKey::of(kernel);
        debug_assert_eq!(
            bindings.len() as u32,
            layout_key.reads + layout_key.writes,
            "{kernel:?} binding count"
        );
        debug_assert_eq!(textures.sampled.len() as u32, layout_key.textures);
        debug_assert_eq!(textures.storage.len() as u32, layout_key.storage_textures);
        debug_assert!(params.len() as u64 <= PARAM_SLOT);
        if workgroups.contains(&0) {
            return Ok(());
        }
        let mut b = self.lock();
        if b.dispatches_in_batch() >= MAX_DISPATCHES_PER_BATCH
            || b.profiler.as_ref().is_some_and(KernelProfiler::is_full)
        {
            self.submit_locked(&mut b);
        }
        let key = PipelineKey { kernel, constants };
        let pipeline = b.pipelines.pipeline(&self.device, &key);
        let layout = b
            .pipelines
            .bind_group_layout(&self.device, layout_key)
            .clone();
        let offset = b.params.len() as u64;
        b.params.extend_from_slice(params);
        b.params.resize((offset + PARAM_SLOT) as usize, 0);

        let mut resources = Vec::with_capacity(bindings.len() + 3);
        resources.push(wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.param_arena,
            offset: 0,
            size: NonZeroU64::new(PARAM_SLOT),
        }));
        resources.extend(
            textures
                .sampled
                .iter()
                .map(|view| wgpu::BindingResource::TextureView(view)),
        );
        resources.extend(bindings.iter().map(|binding| {
            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: binding.buffer,
                offset: 0,
                size: NonZeroU64::new(binding.bytes),
            })
        }));
        resources.extend(
            textures
                .storage
                .iter()
                .map(|view| wgpu::BindingResource::TextureView(view)),
        );
        let entries: Vec<wgpu::BindGroupEntry> = resources
            .into_iter()
            .enumerate()
            .map(|(i, resource)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource,
            })
            .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &entries,
        });
        // A profiled dispatch runs alone in a pass whose beginning and end are stamped.
        let profiled = b
            .profiler
            .as_mut()
            .map(|p| (p.query_set.clone(), p.next_dispatch(key)));
        if profiled.is_some() {
            b.pass.take();
        }
        if b.pass.is_none() {
            let timestamp_writes = profiled.as_ref().map(|(query_set, (start, end))| {
                wgpu::ComputePassTimestampWrites {
                    query_set,
                    beginning_of_pass_write_index: Some(*start),
                    end_of_pass_write_index: Some(*end),
                }
            });
            let pass = self
                .encoder(&mut b)
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("kiln ops"),
                    timestamp_writes,
                })
                .forget_lifetime();
            b.pass = Some(pass);
        }
        let pass = b.pass.as_mut().expect("pass exists");
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[offset as u32]);
        pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        if profiled.is_some() {
            b.pass.take();
        }
        b.dispatches += 1;
        Ok(())
    }

    /// The batch's pending command encoder, created when there is none.
    fn encoder<'b>(&self, b: &'b mut Batch) -> &'b mut wgpu::CommandEncoder {
        b.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("kiln batch"),
                })
        })
    }

    /// Ends the open compute pass and submits the batch, with its parameters uploaded first.
    fn submit_locked(&self, b: &mut Batch) {
        b.pass.take();
        if let Some(mut encoder) = b.encoder.take() {
            if !b.params.is_empty() {
                self.queue.write_buffer(&self.param_arena, 0, &b.params);
            }
            let profiled = b.profiler.as_ref().is_some_and(|p| p.resolve(&mut encoder));
            self.queue.submit([encoder.finish()]);
            b.submits += 1;
            if profiled {
                if let Some(profiler) = b.profiler.as_mut() {
                    profiler.collect(&self.device);
                }
            }
        }
        b.params.clear();
        b.pool.on_submit();
    }

    /// Starts (true) or stops timing every dispatch; work pending before the switch is
    /// submitted first, so a profile holds only dispatches recorded while it was on.
    pub(crate) fn set_kernel_profiling(&self, on: bool) -> Result<()> {
        if on
            && !self
                .device
                .features()
                .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            return Err(KilnError::InvalidArgument {
                op: "kernel profiling",
                message: format!(
                    "{} has no timestamp queries, so kernels cannot be timed on it",
                    self.adapter_description()
                ),
            });
        }
        let mut b = self.lock();
        self.submit_locked(&mut b);
        match (on, b.profiler.is_some()) {
            (true, false) => b.profiler = Some(KernelProfiler::new(&self.device, &self.queue)),
            (false, true) => b.profiler = None,
            _ => {}
        }
        drop(b);
        self.check_errors()
    }

    /// Submits pending work and returns the device time per pipeline since profiling
    /// started or since the last call, slowest first. Empty when profiling is off.
    pub(crate) fn kernel_profile(&self) -> Result<Vec<KernelTime>> {
        let mut b = self.lock();
        self.submit_locked(&mut b);
        let Some(profiler) = b.profiler.as_mut() else {
            return Ok(Vec::new());
        };
        if let Some(problem) = profiler.problem.take() {
            return Err(KilnError::Device(problem));
        }
        let times = profiler.take();
        drop(b);
        self.check_errors()?;
        Ok(times)
    }

    /// Records a copy of the first `bytes` of `src` into `dst`, between passes.
    pub(crate) fn copy_buffer(&self, src: &wgpu::Buffer, dst: &wgpu::Buffer, bytes: u64) {
        let mut b = self.lock();
        b.pass.take();
        self.encoder(&mut b)
            .copy_buffer_to_buffer(src, 0, dst, 0, bytes);
        b.copies += 1;
    }

    /// Writes timestamp `index` (0: start, 1: end) into the pending encoder, between passes.
    pub(crate) fn write_timestamp(&self, index: u32) {
        if let Some(t) = &self.timestamps {
            let mut b = self.lock();
            b.pass.take();
            self.encoder(&mut b).write_timestamp(&t.query_set, index);
        }
    }

    /// Resolves the two timestamps into the mappable buffer and submits the batch.
    pub(crate) fn resolve_timestamps(&self) {
        if let Some(t) = &self.timestamps {
            let mut b = self.lock();
            b.pass.take();
            let encoder = self.encoder(&mut b);
            encoder.resolve_query_set(&t.query_set, 0..2, &t.resolved, 0);
            encoder.copy_buffer_to_buffer(
                &t.resolved,
                0,
                &t.readable,
                0,
                super::timer::TIMESTAMP_BYTES,
            );
            self.submit_locked(&mut b);
        }
    }

    /// Submits pending work without waiting for it.
    pub(crate) fn flush(&self) -> Result<()> {
        let mut b = self.lock();
        self.submit_locked(&mut b);
        drop(b);
        self.check_errors()
    }

    /// Submits pending work and waits until the device has finished it.
    pub(crate) fn sync(&self) -> Result<()> {
        self.flush()?;
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| KilnError::Device(e.to_string()))?;
        self.check_errors()
    }

    /// Writes bytes into a fresh buffer (padded to 4 bytes). Safe with pending work: the pool
    /// hands uploads only buffers no recorded command can still read.
    pub(crate) fn upload(
        &self,
        bytes: &[u8],
        len: usize,
        dtype: DType,
    ) -> Result<(wgpu::Buffer, u64)> {
        let (buffer, size) = self.acquire(len, dtype, true, "upload")?;
        if !bytes.is_empty() {
            if bytes.len().is_multiple_of(4) {
                self.queue.write_buffer(&buffer, 0, bytes);
            } else {
                let mut padded = bytes.to_vec();
                padded.resize(bytes.len().next_multiple_of(4), 0);
                self.queue.write_buffer(&buffer, 0, &padded);
            }
        }
        Ok((buffer, size))
    }

    /// Copies byte ranges of several buffers into staging buffers, submits once, and returns
    /// the staging buffers to map. Ranges must be 4-byte aligned.
    pub(crate) fn record_readback(
        &self,
        ranges: &[(&wgpu::Buffer, u64, u64)],
    ) -> Vec<(wgpu::Buffer, u64)> {
        let mut b = self.lock();
        b.pass.take();
        // Always an encoder, so the submit below happens even when every range is empty.
        self.encoder(&mut b);
        let mut staging = Vec::with_capacity(ranges.len());
        for &(buffer, offset, size) in ranges {
            let class = size_class(size.max(4));
            let target = b
                .staging
                .get_mut(&class)
                .and_then(Vec::pop)
                .unwrap_or_else(|| {
                    self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("kiln staging"),
                        size: class,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    })
                });
            if size > 0 {
                self.encoder(&mut b)
                    .copy_buffer_to_buffer(buffer, offset, &target, 0, size);
            }
            staging.push((target, size));
        }
        b.readbacks += 1;
        self.submit_locked(&mut b);
        staging
    }

    pub(crate) fn return_staging(&self, buffer: wgpu::Buffer) {
        let class = buffer.size();
        self.lock().staging.entry(class).or_default().push(buffer);
    }
}

impl Batch {
    fn dispatches_in_batch(&self) -> u64 {
        self.params.len() as u64 / PARAM_SLOT
    }
}

/// Bytes a tensor of `len` elements of `dtype` occupies on the device (4-byte aligned, ≥ 4).
pub(crate) fn binding_bytes(len: usize, dtype: DType) -> u64 {
    ((len * dtype.size_in_bytes()) as u64)
        .next_multiple_of(4)
        .max(4)
}
