//! Needs no adapter: every WGSL file (with the prelude) parses and validates with naga, every
//! kernel's entry point exists in its file, and every entry point in shaders/ is used.

use kiln::tensor::wgpu::{Kernel, ShaderFile};
use std::collections::HashSet;

fn module(file: ShaderFile) -> naga::Module {
    let source = file.source();
    let module = naga::front::wgsl::parse_str(&source)
        .unwrap_or_else(|e| panic!("{}: {}", file.file_name(), e.emit_to_string(&source)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{}: {}", file.file_name(), e.emit_to_string(&source)));
    module
}

#[test]
fn every_shader_file_validates() {
    for file in ShaderFile::ALL {
        module(file);
    }
}

#[test]
fn kernels_and_entry_points_correspond_one_to_one() {
    let mut used = HashSet::new();
    for kernel in Kernel::ALL {
        let m = module(kernel.file());
        assert!(
            m.entry_points
                .iter()
                .any(|e| e.name == kernel.entry_point()),
            "{kernel:?}: no entry point {} in {}",
            kernel.entry_point(),
            kernel.file().file_name()
        );
        // The variant name is the entry point in CamelCase.
        let camel: String = kernel
            .entry_point()
            .split('_')
            .map(|w| w[..1].to_uppercase() + &w[1..])
            .collect();
        assert_eq!(format!("{kernel:?}"), camel);
        used.insert((kernel.file(), kernel.entry_point().to_string()));
    }
    for file in ShaderFile::ALL {
        for entry in module(file).entry_points {
            assert!(
                used.contains(&(file, entry.name.clone())),
                "{}::{} is not used by any Kernel",
                file.file_name(),
                entry.name
            );
        }
    }
}

#[test]
fn every_file_in_shaders_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let registered: HashSet<&str> = ShaderFile::ALL.iter().map(|f| f.file_name()).collect();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            name == "common.wgsl" || registered.contains(name.as_str()),
            "shaders/{name} is not in ShaderFile"
        );
    }
}
