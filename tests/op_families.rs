//! One op family, one name, in every layer: each shader family (shaders/<family>.wgsl, its
//! variants `_f16`, `_subgroup`, `_texture` included) has a host file of the same name in the
//! wgpu backend and in the CPU backend, and a parity test; each CPU or wgpu family file has its
//! shader; each differentiable family's backward rule is rules/<family>.rs. Needs no adapter.

use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The file stems of `dir` with extension `ext`.
fn stems(dir: &str, ext: &str) -> BTreeSet<String> {
    std::fs::read_dir(root().join(dir))
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            (path.extension()? == ext).then(|| path.file_stem()?.to_str().map(String::from))?
        })
        .collect()
}

/// The shader families: file stems without the variant suffixes, the prelude left out.
fn families() -> BTreeSet<String> {
    stems("shaders", "wgsl")
        .into_iter()
        .map(|s| {
            ["_f16", "_subgroup", "_texture"]
                .iter()
                .fold(s, |s, suffix| {
                    s.strip_suffix(suffix).map_or(s.clone(), String::from)
                })
        })
        .filter(|s| s != "common")
        .collect()
}

/// Host files that are not op families: the backends' infrastructure.
const WGPU_INFRASTRUCTURE: [&str; 13] = [
    "mod",
    "adapter",
    "buffer_pool",
    "context",
    "kernel_profile",
    "memory",
    "matmul_tuning",
    "param_layout",
    "pipeline_cache",
    "readback",
    "shaders",
    "storage",
    "timer",
];
const CPU_INFRASTRUCTURE: [&str; 3] = ["lib", "memory", "real"];

#[test]
fn every_family_has_a_file_of_its_name_in_both_backends_and_a_parity_test() {
    let wgpu = stems("crates/kiln-tensor/src/wgpu", "rs");
    let cpu = stems("crates/kiln-cpu/src", "rs");
    let tests = stems("tests", "rs");
    for family in families() {
        assert!(
            wgpu.contains(&family),
            "no crates/kiln-tensor/src/wgpu/{family}.rs"
        );
        assert!(cpu.contains(&family), "no crates/kiln-cpu/src/{family}.rs");
        assert!(
            tests.contains(&format!("parity_{family}")),
            "no tests/parity_{family}.rs"
        );
    }
}

#[test]
fn every_family_file_in_either_backend_has_its_shader() {
    let families = families();
    let variants = stems("shaders", "wgsl");
    for (dir, infrastructure) in [
        ("crates/kiln-tensor/src/wgpu", &WGPU_INFRASTRUCTURE[..]),
        ("crates/kiln-cpu/src", &CPU_INFRASTRUCTURE[..]),
    ] {
        for stem in stems(dir, "rs") {
            if infrastructure.contains(&stem.as_str()) {
                continue;
            }
            assert!(
                families.contains(&stem) || variants.contains(&stem),
                "{dir}/{stem}.rs names no shader family (shaders/{stem}.wgsl); a family lives \
                 in both backends under one name"
            );
        }
    }
}

#[test]
fn backward_rules_are_named_after_their_families() {
    let families = families();
    for rule in stems("crates/kiln-autograd/src/rules", "rs") {
        if rule == "mod" || rule == "shape" {
            continue; // the dispatcher, and views (no kernel of their own)
        }
        assert!(
            families.contains(&rule),
            "rules/{rule}.rs names no op family"
        );
    }
}
