//! Choosing an adapter: the best high-performance one by default, or one named by the API or
//! by the `KILN_ADAPTER` environment variable (a case-insensitive substring of its name).

use super::context::Context;
use super::matmul::MatmulChoice;
use super::matmul_tuning::{default_tuning_dir, Tuner};
use super::timer::TIMESTAMP_FEATURES;
use crate::error::{KilnError, Result};
use std::path::PathBuf;
use std::sync::Arc;

/// How to open the wgpu backend.
#[derive(Clone, Debug)]
pub struct WgpuOptions {
    /// A substring of the adapter's name; `None` reads `KILN_ADAPTER`, then picks the best.
    pub adapter: Option<String>,
    /// Use native f16 in shaders when the adapter has `shader-f16` (else the packed fallback).
    pub use_shader_f16: bool,
    pub backends: wgpu::Backends,
    /// Which matmul kernel to use.
    pub matmul: MatmulKernel,
    /// Where `MatmulKernel::Tuned` keeps its measurements between runs; `None` is the default
    /// location: `$KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln`, else `$HOME/.cache/kiln`.
    pub tuning_dir: Option<PathBuf>,
    /// Caps the storage-binding limit below the adapter's (bytes): the largest tensor the
    /// device makes, as on a smaller GPU. Training splits a batch whose activations pass it
    /// into micro-batches; tests use it to reach the limit with small tensors.
    pub max_binding_bytes: Option<u64>,
}

/// The matmul kernels; `Auto` picks per adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MatmulKernel {
    /// `Texture` on CPU-type adapters (software drivers) with a fixed subgroup size,
    /// `Tuned` everywhere else.
    #[default]
    Auto,
    /// Measures the candidates (the three tiled shapes, and `Subgroup` where the adapter has
    /// a fixed subgroup size) on the first product of each shape class, keeps the fastest, and
    /// remembers it on disk per adapter and driver (matmul_tuning.rs). Tuning a new class is a
    /// sync point; later products of the class are not.
    Tuned,
    /// Register tiles staged through workgroup memory (matmul.wgsl): 64×64 outputs per
    /// workgroup of 16×16 invocations.
    Tiled,
    /// The tiled kernel with 32×32 outputs per workgroup of 8×8 invocations: four times the
    /// workgroups of `Tiled`, for outputs too small to fill a GPU's cores.
    Tiled32,
    /// The tiled kernel with 128×128 outputs per workgroup of 16×16 invocations, each owning
    /// an 8×8 block: half the operand traffic of `Tiled`, for large products.
    Tiled128,
    /// Rows shared between lanes with subgroup shuffles (matmul_subgroup.wgsl); needs the
    /// `subgroup` feature and a fixed subgroup size.
    Subgroup,
    /// Operands packed into textures, then rows shared between lanes with subgroup shuffles
    /// (matmul_texture.wgsl); needs what `Subgroup` needs. Batched products and operands
    /// beyond the adapter's texture size run the `Subgroup` kernel.
    Texture,
}

impl MatmulKernel {
    /// Every kernel that runs as itself (not `Auto` or `Tuned`, which pick among these): what
    /// the parity tests and the doctor check one by one.
    pub const EXPLICIT: [MatmulKernel; 5] = [
        MatmulKernel::Tiled,
        MatmulKernel::Tiled32,
        MatmulKernel::Tiled128,
        MatmulKernel::Subgroup,
        MatmulKernel::Texture,
    ];
}

impl Default for WgpuOptions {
    fn default() -> Self {
        WgpuOptions {
            adapter: None,
            use_shader_f16: true,
            backends: wgpu::Backends::PRIMARY,
            matmul: MatmulKernel::Auto,
            tuning_dir: None,
            max_binding_bytes: None,
        }
    }
}

/// What `WgpuBackend::adapters()` reports about each adapter found.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

fn preference(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

pub(crate) fn enumerate(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance(backends).enumerate_adapters(backends));
    adapters.sort_by_key(|a| preference(a.get_info().device_type));
    adapters
}

pub(crate) fn summaries(backends: wgpu::Backends) -> Vec<AdapterSummary> {
    enumerate(backends)
        .iter()
        .map(|a| {
            let info = a.get_info();
            AdapterSummary {
                name: info.name,
                backend: format!("{:?}", info.backend),
                device_type: format!("{:?}", info.device_type),
                driver: format!("{} {}", info.driver, info.driver_info)
                    .trim()
                    .to_string(),
            }
        })
        .collect()
}

pub(crate) fn open(options: &WgpuOptions) -> Result<Arc<Context>> {
    let wanted = options
        .adapter
        .clone()
        .or_else(|| std::env::var("KILN_ADAPTER").ok().filter(|s| !s.is_empty()));
    let adapters = enumerate(options.backends);
    let tried = format!("{:?}", options.backends);
    if adapters.is_empty() {
        return Err(KilnError::NoAdapter {
            tried,
            hint: "; install a Vulkan, Metal or DX12 driver (on Debian, mesa-vulkan-drivers provides a software Vulkan driver), or use the CPU backend".into(),
        });
    }
    let adapter = match &wanted {
        None => adapters.into_iter().next().expect("non-empty"),
        Some(name) => {
            let needle = name.to_lowercase();
            let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
            match adapters
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&needle))
            {
                Some(adapter) => adapter,
                None => {
                    return Err(KilnError::NoAdapter {
                        tried,
                        hint: format!(
                        "; none matches {name:?} (KILN_ADAPTER or the requested name); found: {}",
                        names.join(", ")
                    ),
                    })
                }
            }
        }
    };
    let info = adapter.get_info();
    let native_f16 =
        options.use_shader_f16 && adapter.features().contains(wgpu::Features::SHADER_F16);
    let fixed_subgroup =
        info.subgroup_min_size == info.subgroup_max_size && 64 % info.subgroup_min_size == 0;
    let subgroups = adapter.features().contains(wgpu::Features::SUBGROUP) && fixed_subgroup;
    let chosen = match options.matmul {
        MatmulKernel::Auto if subgroups && info.device_type == wgpu::DeviceType::Cpu => {
            MatmulKernel::Texture
        }
        MatmulKernel::Auto => MatmulKernel::Tuned,
        MatmulKernel::Subgroup | MatmulKernel::Texture if !subgroups => {
            return Err(KilnError::Device(format!(
                "{} cannot run the {:?} matmul: it needs the `subgroup` feature and a fixed subgroup size dividing 64 (has {}..{})",
                info.name, options.matmul, info.subgroup_min_size, info.subgroup_max_size
            )))
        }
        other => other,
    };
    // The subgroup kernel runs when chosen, as the texture kernel's fallback, or as a candidate
    // of the tuner.
    let subgroup_matmul = subgroups
        && matches!(
            chosen,
            MatmulKernel::Subgroup | MatmulKernel::Texture | MatmulKernel::Tuned
        );
    let mut required_features = wgpu::Features::empty();
    if native_f16 {
        required_features |= wgpu::Features::SHADER_F16;
    }
    if subgroup_matmul {
        required_features |= wgpu::Features::SUBGROUP;
    }
    if adapter.features().contains(TIMESTAMP_FEATURES) {
        required_features |= TIMESTAMP_FEATURES;
    }
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("kiln"),
        required_features,
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .map_err(|e| KilnError::Device(format!("could not open {}: {e}", info.name)))?;
    let subgroup_size = subgroup_matmul.then_some(info.subgroup_min_size);
    let tuner = (chosen == MatmulKernel::Tuned).then(|| {
        let dir = options.tuning_dir.clone().or_else(default_tuning_dir);
        Tuner::open(dir, &info, subgroup_size.is_some())
    });
    Ok(Context::new(
        device,
        queue,
        info,
        native_f16,
        MatmulChoice {
            kernel: chosen,
            subgroup_size,
            tuner,
        },
        options.max_binding_bytes,
    ))
}
