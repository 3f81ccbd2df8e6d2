//! Compiles each shader file once into a module and each (kernel, specialisation) once into a
//! pipeline. Bind-group layouts are shared by every kernel with the same (reads, writes).

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
    layouts: HashMap<(u32, u32), (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: HashMap<PipelineKey, wgpu::ComputePipeline>,
    pub pipelines_built: u64,
    pub hits: u64,
}

impl PipelineCache {
    /// The bind-group layout for kernels reading `reads` and writing `writes` storage buffers:
    /// binding 0 is a uniform with a dynamic offset into the parameter arena.
    pub fn bind_group_layout(
        &mut self,
        device: &wgpu::Device,
        reads: u32,
        writes: u32,
    ) -> &wgpu::BindGroupLayout {
        &self.layout(device, reads, writes).0
    }

    fn layout(
        &mut self,
        device: &wgpu::Device,
        reads: u32,
        writes: u32,
    ) -> &(wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        self.layouts.entry((reads, writes)).or_insert_with(|| {
            let mut entries = vec![wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: true,
                    min_binding_size: None,
                },
                count: None,
            }];
            for i in 0..reads + writes {
                entries.push(wgpu::BindGroupLayoutEntry {
                    binding: 1 + i,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage {
                            read_only: i < reads,
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                });
            }
            let label = format!("kiln bindings r{reads} w{writes}");
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
        let (file, entry_point, reads, writes) = key.kernel.spec();
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
        let layout = self.layout(device, reads, writes).1.clone();
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
