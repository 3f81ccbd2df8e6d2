//! The CNN programs on generated data in the real formats: cifar10_cnn on CIFAR-10 binary
//! batches, fashion_mnist_cnn on IDX files; each trains, writes its outputs, evaluates its
//! checkpoint from the file alone and resumes. And the layers' bad input: shapes a network
//! cannot take are errors naming the layer and the shapes; grouped and depthwise layers in
//! the model description.

mod common;
use common::*;
use kiln::nn::{Conv2d, Conv2dConfig, Flatten, Pool2d};
use kiln::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An example program, which `cargo test` builds beside this test binary.
fn program(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--profile", "test", "--example", name])
            .status()
            .unwrap();
        assert!(status.success(), "building {name}");
    }
    path
}

/// Runs `name` on the CPU; (exit code, stdout, stderr).
fn run(name: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(program(name))
        .args(["--device", "cpu"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "{name} {args:?} panicked:\n{stderr}"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

fn summary(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// CIFAR-10 binary batches: `records` per file, the label's colour in one quadrant.
fn write_cifar(dir: &Path, records: usize) {
    let batches = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&batches).unwrap();
    let file = |seed: usize| -> Vec<u8> {
        let noise = random_vec(seed as u64, records * 3072, 0.0, 60.0);
        let mut out = Vec::new();
        for r in 0..records {
            let label = (r * 7 + seed) % 10;
            out.push(label as u8);
            for p in 0..3072 {
                let (c, y, x) = (p / 1024, (p % 1024) / 32, p % 32);
                let lit = (y < 16) == label.is_multiple_of(2)
                    && (x < 16) == (label / 2).is_multiple_of(2);
                let base = if lit && c == label % 3 { 180.0 } else { 20.0 };
                out.push((base + noise[r * 3072 + p]) as u8);
            }
        }
        out
    };
    for i in 1..=5 {
        std::fs::write(batches.join(format!("data_batch_{i}.bin")), file(i)).unwrap();
    }
    std::fs::write(batches.join("test_batch.bin"), file(0)).unwrap();
}

#[test]
fn cifar10_cnn_trains_evaluates_and_resumes_on_generated_batches() {
    let dir = temp_dir("cifar-cnn");
    write_cifar(&dir, 40);
    let (d, out) = (dir.to_str().unwrap(), dir.join("run"));
    let o = out.to_str().unwrap();
    let small = [
        "--epochs",
        "1",
        "--validation",
        "40",
        "--batch-size",
        "40",
        "--dropout",
        "0",
    ];
    let (code, stdout, stderr) = run(
        "cifar10_cnn",
        &[&["--data", d, "--out", o][..], &small].concat(),
    );
    assert_eq!(code, 0, "{stderr}");
    let first = summary(&stdout);
    assert_eq!(first["epochs"], 1);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"], "deep-cnn");
    assert_eq!(config["layout"], "images");
    // The checkpoint alone rebuilds the network and reproduces the accuracy.
    let checkpoint = out.join("checkpoint.safetensors");
    let (code, stdout, stderr) = run(
        "cifar10_cnn",
        &["--data", d, "--evaluate", checkpoint.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary(&stdout)["test_accuracy"], first["test_accuracy"]);
    // With test-time flips: each prediction averaged with its mirror image's.
    let (code, stdout, stderr) = run(
        "cifar10_cnn",
        &[
            "--data",
            d,
            "--evaluate",
            checkpoint.to_str().unwrap(),
            "--tta",
            "flip",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let flipped = summary(&stdout);
    assert_eq!(flipped["tta"], "flip");
    assert!(flipped["test_accuracy"].as_f64().is_some(), "{flipped}");
    // Resumed with its own settings and model.
    let (code, stdout, stderr) = run(
        "cifar10_cnn",
        &["--data", d, "--resume", o, "--out", o, "--epochs", "2"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary(&stdout)["epochs"], 2);
}

#[test]
fn layers_name_themselves_and_the_shapes_they_cannot_take() {
    let conv = Conv2d::new(
        "conv0",
        Conv2dConfig::new(3, 8, 3),
        Init::XavierNormal,
        1,
        &cpu(),
    )
    .unwrap();
    let gray = Var::constant(Tensor::zeros([2, 1, 8, 8], DType::F32, &cpu()).unwrap());
    let e = conv.forward(&gray).unwrap_err().to_string();
    assert!(
        e.contains("conv0") && e.contains("[2, 1, 8, 8]") && e.contains("3"),
        "{e}"
    );
    // A kernel larger than the padded image.
    let big = Conv2d::new(
        "wide",
        Conv2dConfig::new(1, 2, 5),
        Init::XavierNormal,
        1,
        &cpu(),
    )
    .unwrap();
    let tiny = Var::constant(Tensor::zeros([1, 1, 3, 3], DType::F32, &cpu()).unwrap());
    let e = big.forward(&tiny).unwrap_err().to_string();
    assert!(
        e.contains("wide") && e.contains("5×5 kernel") && e.contains("3×3 image"),
        "{e}"
    );
    // A flatten that does not match the next linear layer.
    let model = Sequential::new()
        .push(Pool2d::max(2))
        .push(Flatten)
        .push(Linear::new("fc", 10, 4, Init::XavierNormal, None, 1, &cpu()).unwrap());
    let x = Var::constant(Tensor::zeros([2, 3, 8, 8], DType::F32, &cpu()).unwrap());
    let e = model.forward(&x).unwrap_err().to_string();
    assert!(e.contains("layer `fc`") && e.contains("[2, 48]"), "{e}");
}

/// A grouped and a depthwise Conv2d: PyTorch's weight shapes and fans, the description a
/// checkpoint stores (older descriptions, without groups, read as one group), and the error
/// for groups that do not divide the channels.
#[test]
fn grouped_and_depthwise_layers_describe_themselves() {
    use kiln::nn::LayerSpec;
    let model = Sequential::new()
        .push(
            Conv2d::new(
                "grouped",
                Conv2dConfig::new(4, 6, 3).groups(2).padding(1),
                Init::HeNormal(Fan::In),
                1,
                &cpu(),
            )
            .unwrap(),
        )
        .push(
            Conv2d::new(
                "depthwise",
                Conv2dConfig::new(6, 6, 3).groups(6).bias(false),
                Init::HeNormal(Fan::In),
                2,
                &cpu(),
            )
            .unwrap(),
        );
    let shapes: Vec<Vec<usize>> = model
        .parameters()
        .iter()
        .map(|p| p.value().dims().to_vec())
        .collect();
    assert_eq!(shapes, [vec![6, 2, 3, 3], vec![6], vec![6, 1, 3, 3]]);
    // He normal with fan-in (in / groups)·k² = 9 for the depthwise layer: std √(2/9).
    let w = model.parameters()[2].value().to_vec::<f32>().unwrap();
    let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
    assert!((0.25..0.7).contains(&std), "depthwise weights' std {std}");
    let x = Var::constant(Tensor::zeros([2, 4, 7, 5], DType::F32, &cpu()).unwrap());
    assert_eq!(model.forward(&x).unwrap().shape().dims(), [2, 6, 5, 3]);
    let spec = model.spec().unwrap();
    let json = serde_json::to_string(&spec).unwrap();
    assert!(json.contains("\"groups\":6"), "{json}");
    let back: LayerSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back.build(&cpu()).unwrap().spec(), Some(spec));
    let old = json
        .replace(",\"groups\":2", "")
        .replace(",\"groups\":6", "");
    assert!(!old.contains("groups"), "{old}");
    let ungrouped = serde_json::from_str::<LayerSpec>(&old)
        .unwrap()
        .build(&cpu())
        .unwrap();
    assert_eq!(ungrouped.parameters()[0].value().dims(), [6, 4, 3, 3]);
    let e = Conv2d::new(
        "odd",
        Conv2dConfig::new(4, 6, 3).groups(4),
        Init::XavierNormal,
        1,
        &cpu(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("odd groups = 4") && e.contains("4 input and 6 output"),
        "{e}"
    );
}
