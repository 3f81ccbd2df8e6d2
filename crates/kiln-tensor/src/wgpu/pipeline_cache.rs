//! Compiles each shader file once into a module and each (kernel, specialisation) once into a
//! pipeline. Bind-group layouts are shared by every kernel binding the same resources.

use super::shaders::{Kernel, ShaderFile};
use std::collections::HashMap;
use std::fmt;

/// `override` constants of one pipeline, by name. Values are whole numbers or booleans.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Specialisation(pub Vec<(&'static str, u32)>);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    pub kernel: Kernel,
    pub constants: Specialisation,
}

impl fmt::Display for PipelineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kernel.entry_point())?;
        for (name, value) in &self.constants.0 {
            write!(f, " {name}={value}")?;
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct PipelineCache {
    modules: HashMap<ShaderFile, wgpu::ShaderModule>,
    layouts: HashMap<LayoutKey, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: HashMap<PipelineKey, wgpu::ComputePipeline>,
    pub pipelines_built: u64,
    pub hits: u64,
}

/// The resources a kernel binds after the parameter uniform, in binding order: sampled
/// textures, storage buffers read, storage buffers written, storage textures written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LayoutKey {
    pub textures: u32,
    pub reads: u32,
    pub writes: u32,
    pub storage_textures: u32,
}

impl LayoutKey {
    pub fn of(kernel: Kernel) -> Self {
        let (_, _, reads, writes) = kernel.spec();
        let (textures, storage_textures) = kernel.textures();
        LayoutKey {
            textures,
            reads,
            writes,
            storage_textures,
        }
    }
}

impl PipelineCache {
    /// The bind-group layout for kernels binding `key`'s resources: binding 0 is a uniform
    /// with a dynamic offset into the parameter arena.
    pub fn bind_group_layout(
        &mut self,
        device: &wgpu::Device,
        key: LayoutKey,
    ) -> &wgpu::BindGroupLayout {
        &self.layout(device, key).0
    }

    fn layout(
        &mut self,
        device: &wgpu::Device,
        key: LayoutKey,
    ) -> &(wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        self.layouts.entry(key).or_insert_with(|| {
            let mut types = vec![wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: None,
            }];
            for _ in 0..key.textures {
                types.push(wgpu::BindingType::Texture {
                    sample_type: wgpu::TextureSampleType::Float { filterable: false },
                    view_dimension: wgpu::TextureViewDimension::D2,
                    multisampled: false,
                });
            }
            for i in 0..key.reads + key.writes {
                types.push(wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: i < key.reads,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                });
            }
            for _ in 0..key.storage_textures {
                types.push(wgpu::BindingType::StorageTexture {
                    access: wgpu::StorageTextureAccess::WriteOnly,
                    format: wgpu::TextureFormat::Rgba32Float,
                    view_dimension: wgpu::TextureViewDimension::D2,
                });
            }
            let entries: Vec<wgpu::BindGroupLayoutEntry> = types
                .into_iter()
                .enumerate()
                .map(|(binding, ty)| wgpu::BindGroupLayoutEntry {
                    binding: binding as u32,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty,
                    count: None,
                })
                .collect();
            let label = format!(
                "kiln bindings t{} r{} w{} s{}",
                key.textures, key.reads, key.writes, key.storage_textures
            );
            let bind_group_layout =
                device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(&label),
                    entries: &entries,
                });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&label),
                bind_group_layouts: &[Some(&bind_group_layout)],
                immediate_size: 0,
            });
            (bind_group_layout, pipeline_layout)
        })
    }

    pub fn pipeline(&mut self, device: &wgpu::Device, key: &PipelineKey) -> wgpu::ComputePipeline {
        if let Some(pipeline) = self.pipelines.get(key) {
            self.hits += 1;
            return pipeline.clone();
        }
        let (file, entry_point, _, _) = key.kernel.spec();
        let module = self
            .modules
            .entry(file)
            .or_insert_with(|| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(file.file_name()),
                    source: wgpu::ShaderSource::Wgsl(file.source().into()),
                })
            })
            .clone();
        let constants: Vec<(&str, f64)> = key
            .constants
            .0
            .iter()
            .map(|&(n, v)| (n, v as f64))
            .collect();
        let label = key.to_string();
        let layout = self.layout(device, LayoutKey::of(key.kernel)).1.clone();
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&layout),
            module: &module,
            entry_point: Some(entry_point),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        self.pipelines_built += 1;
        self.pipelines.insert(key.clone(), pipeline.clone());
        pipeline
    }
}
