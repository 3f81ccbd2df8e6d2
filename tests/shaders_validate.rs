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

/// The named op codes of common.wgsl (`const UNARY_RELU: u32 = 11u;`), by name.
fn wgsl_constants(prefix: &str) -> std::collections::HashMap<String, u32> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders/common.wgsl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("const ")?.strip_prefix(prefix)?;
            let (name, value) = rest.split_once(": u32 = ")?;
            let value = value.strip_suffix("u;")?.parse().ok()?;
            Some((name.to_string(), value))
        })
        .collect()
}

#[test]
fn op_codes_have_the_same_names_and_values_on_both_sides() {
    use kiln::tensor::{BinaryOp, ReduceOp, UnaryOp};
    let checks: [(&str, Vec<(&str, u32)>); 3] = [
        (
            "UNARY_",
            UnaryOp::ALL.iter().map(|o| (o.name(), o.code())).collect(),
        ),
        (
            "BINARY_",
            BinaryOp::ALL.iter().map(|o| (o.name(), o.code())).collect(),
        ),
        (
            "REDUCE_",
            ReduceOp::ALL.iter().map(|o| (o.name(), o.code())).collect(),
        ),
    ];
    for (prefix, ops) in checks {
        let wgsl = wgsl_constants(prefix);
        assert_eq!(wgsl.len(), ops.len(), "{prefix}* constants: {wgsl:?}");
        for (name, code) in ops {
            let constant = format!("{prefix}{}", name.to_uppercase());
            assert_eq!(
                wgsl.get(&name.to_uppercase()),
                Some(&code),
                "{constant} in common.wgsl against the Rust op code"
            );
        }
    }
    // Every op switch uses the names: a bare `case 11u` would escape the check above.
    for file in ShaderFile::ALL {
        let source = file.source();
        for (n, line) in source.lines().enumerate() {
            let t = line.trim_start();
            let bare = t.starts_with("case ") && t[5..].starts_with(|c: char| c.is_ascii_digit());
            // random.wgsl's quadrant switch is not an op code.
            assert!(
                !bare || file.file_name() == "random.wgsl",
                "{}:{}: `{t}` switches on a bare number; name the op code",
                file.file_name(),
                n + 1
            );
        }
    }
}

#[test]
fn parameter_structs_have_the_size_and_offsets_of_their_wgsl_twins() {
    for layout in kiln::tensor::wgpu::param_layouts() {
        let m = module(layout.file);
        let what = format!(
            "{} against {} in {}",
            layout.rust_struct,
            layout.wgsl_struct,
            layout.file.file_name()
        );
        let (members, span) = m
            .types
            .iter()
            .find_map(|(_, ty)| match (&ty.name, &ty.inner) {
                (Some(name), naga::TypeInner::Struct { members, span })
                    if name == layout.wgsl_struct =>
                {
                    Some((members.clone(), *span))
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{what}: no such WGSL struct"));
        assert_eq!(span as usize, layout.size, "{what}: size");
        let member = |name: &str| members.iter().find(|m| m.name.as_deref() == Some(name));
        for f in &layout.fields {
            let m = member(f.wgsl).unwrap_or_else(|| {
                panic!("{what}: field {} has no WGSL member {}", f.rust, f.wgsl)
            });
            assert_eq!(m.offset as usize, f.offset, "{what}: offset of {}", f.rust);
        }
        // Every WGSL member that is not padding lies inside a Rust field.
        for m in &members {
            let name = m.name.clone().unwrap_or_default();
            if name.starts_with('_') {
                continue;
            }
            let offset = m.offset as usize;
            assert!(
                layout
                    .fields
                    .iter()
                    .any(|f| f.offset <= offset && offset < f.offset + f.size),
                "{what}: WGSL member {name} at byte {offset} has no Rust field"
            );
        }
    }
}
