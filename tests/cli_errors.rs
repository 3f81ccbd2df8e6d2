//! The example programs on bad input: every case exits non-zero with a clear message naming
//! the file, offset, flag or tensors, never panics, and leaves existing outputs intact. Also
//! a tiny successful run (its last stdout line is the JSON summary), --overfit-tiny, and
//! --profile-kernels on the GPU.

mod common;

use flate2::write::GzEncoder;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The fashion_mnist_mlp example, which `cargo test` builds beside this test binary (when
/// only this test is selected, it is built here first).
fn program() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let dir = exe.parent().unwrap().parent().unwrap();
            let path = dir
                .join("examples")
                .join(format!("fashion_mnist_mlp{}", std::env::consts::EXE_SUFFIX));
            if !path.exists() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let status = Command::new(cargo)
                    .args([
                        "build",
                        "--profile",
                        "test",
                        "--example",
                        "fashion_mnist_mlp",
                    ])
                    .status()
                    .unwrap();
                assert!(status.success(), "building the example failed");
            }
            path
        })
        .clone()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// A small Fashion-MNIST-format directory: class c is a bright band at rows 2c..2c+3.
fn write_data(dir: &Path, train: usize, test: usize) {
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let mut images = Vec::with_capacity(n * 784);
        for (i, &l) in labels.iter().enumerate() {
            for p in 0..784 {
                let row = p / 28;
                let band = row >= 2 * l as usize && row < 2 * l as usize + 3;
                images.push(if band {
                    200
                } else {
                    ((p * 13 + i * 7) % 40) as u8
                });
            }
        }
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&idx(&[n as u32, 28, 28], &images)).unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            gz.finish().unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            idx(&[n as u32], &labels),
        )
        .unwrap();
    }
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(program())
        .args(["--device", "cpu"])
        .args(args)
        .output()
        .expect("the example program is built by cargo test");
    let o = Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !o.stderr.contains("panicked") && !o.stdout.contains("panicked"),
        "{args:?} panicked:\n{}",
        o.stderr
    );
    o
}

fn fails_with(args: &[&str], needles: &[&str]) {
    let o = run(args);
    assert_ne!(o.code, 0, "{args:?} should fail:\n{}", o.stdout);
    for n in needles {
        assert!(
            o.stderr.contains(n),
            "{args:?}: {n:?} missing from:\n{}",
            o.stderr
        );
    }
}

const SMALL: [&str; 8] = [
    "--epochs",
    "1",
    "--hidden",
    "16",
    "--validation",
    "50",
    "--batch-size",
    "50",
];

#[test]
fn bad_data_is_a_clear_error_naming_file_and_offset() {
    let dir = temp_dir("data");
    let d = dir.to_str().unwrap();
    fails_with(
        &["--data", &format!("{d}/missing")],
        &["no data directory", "dataset-fashion-mnist"],
    );
    write_data(&dir, 200, 50);
    // Truncated labels: the header says 50, the file holds 40.
    let labels = dir.join("t10k-labels-idx1-ubyte");
    let full = std::fs::read(&labels).unwrap();
    std::fs::write(&labels, &full[..full.len() - 10]).unwrap();
    fails_with(
        &["--data", d],
        &["t10k-labels-idx1-ubyte", "byte 48", "truncated"],
    );
    // A wrong magic number.
    let mut bad = full.clone();
    bad[1] = 7;
    std::fs::write(&labels, &bad).unwrap();
    fails_with(
        &["--data", d],
        &["t10k-labels-idx1-ubyte", "byte 0", "magic"],
    );
    // A label out of range.
    let mut bad = full;
    bad[8 + 3] = 10;
    std::fs::write(&labels, &bad).unwrap();
    fails_with(&["--data", d], &["byte 11", "label 10"]);
}

#[test]
fn out_of_range_flags_name_the_flag_and_the_allowed_values() {
    let dir = temp_dir("flags");
    write_data(&dir, 200, 50);
    let d = dir.to_str().unwrap();
    fails_with(&["--data", d, "--dropout", "1.5"], &["--dropout", "[0, 1)"]);
    fails_with(
        &["--data", d, "--precision", "bf16"],
        &["--precision", "f32, mixed"],
    );
    fails_with(
        &["--data", d, "--optimizer", "adamax"],
        &["--optimizer", "adamw"],
    );
    fails_with(&["--data", d, "--lr=-1"], &["--lr", "> 0"]);
    fails_with(&["--data", d, "--hidden", "64,0"], &["--hidden", "≥ 1"]);
    fails_with(&["--data", d, "--epochs", "0"], &["--epochs"]);
    fails_with(
        &["--data", d, "--validation", "500"],
        &["500 validation samples"],
    );
    fails_with(
        &["--data", d, "--augment", "flip,rotate"],
        &["rotate", "--augment", "flip, crop, jitter, cutmix, affine"],
    );
    fails_with(
        &["--data", d, "--augment", "flip", "--flip-p", "1.5"],
        &["--flip-p", "[0, 1]"],
    );
    fails_with(&["--data", d, "--cutmix-p=-0.2"], &["--cutmix-p", "[0, 1]"]);
    fails_with(
        &[
            "--data",
            d,
            "--augment",
            "crop",
            "--crop-padding-mode",
            "wrap",
        ],
        &["--crop-padding-mode", "zero, reflect"],
    );
    fails_with(&["--data", d, "--ensemble", "0"], &["--ensemble", "≥ 1"]);
    fails_with(&["--data", d, "--folds", "1"], &["--folds", "from 2"]);
    fails_with(
        &["--data", d, "--folds", "3", "--ensemble", "2"],
        &[
            "--folds with --ensemble",
            "one of --evaluate, --folds, --ensemble and --overfit-tiny",
        ],
    );
    fails_with(&["--data", d, "--ema", "1.2"], &["--ema", "[0, 1)"]);
    fails_with(
        &["--data", d, "--micro-batches", "0"],
        &["--micro-batches", "from 1 to the batch size (128)"],
    );
    fails_with(
        &["--data", d, "--validation", "0"],
        &["--validation", "≥ 1", "--validation 1000"],
    );
    fails_with(
        &["--data", d, "--save-augmented", "0"],
        &["--save-augmented", "≥ 1"],
    );
    fails_with(&["--data", d, "--l1=-0.1"], &["--l1", "≥ 0"]);
    fails_with(&["--data", d, "--max-norm", "0"], &["--max-norm", "> 0"]);
    fails_with(
        &["--data", d, "--clip-grad-norm", "NaN"],
        &["--clip-grad-norm", "> 0"],
    );
    fails_with(
        &["--data", d, "--clip-grad-value=-1"],
        &["--clip-grad-value", "> 0"],
    );
    fails_with(
        &["--data", d, "--loss", "hinge", "--augment", "cutmix"],
        &["--loss", "hard labels"],
    );
    fails_with(
        &["--data", d, "--loss", "l2"],
        &["--loss", "cross-entropy", "mse", "hinge"],
    );
    fails_with(
        &["--data", d, "--schedule", "plateaux"],
        &["--schedule", "inverse-time, plateau"],
    );
    // clap rejects unknown values of --device itself.
    let o = run(&["--device", "tpu"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("--device"), "{}", o.stderr);
}

#[test]
fn unwritable_out_and_bad_checkpoints_fail_and_keep_existing_files() {
    let dir = temp_dir("outputs");
    write_data(&dir, 200, 50);
    let d = dir.to_str().unwrap();
    let blocker = dir.join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let under_file = blocker.join("out");
    fails_with(
        &["--data", d, "--out", under_file.to_str().unwrap()],
        &["cannot create the output directory"],
    );

    // A good run, then attempts that must fail without touching its files.
    let out = dir.join("run");
    let o = run(&[&["--data", d, "--out", out.to_str().unwrap()], &SMALL[..]].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    let summary: serde_json::Value =
        serde_json::from_str(o.stdout.lines().last().unwrap()).unwrap();
    for key in [
        "dataset",
        "device",
        "adapter",
        "epochs",
        "train_samples",
        "test_accuracy",
        "best_val_accuracy",
        "train_seconds",
        "epoch_seconds",
        "samples_per_second",
    ] {
        assert!(summary.get(key).is_some(), "summary lacks {key}: {summary}");
    }
    let snapshot = |p: &Path| -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = snapshot(&out);
    // A resumed run keeps its model: a flag asking for another names both.
    let o_str = out.to_str().unwrap();
    fails_with(
        &[
            "--data",
            d,
            "--epochs",
            "2",
            "--hidden",
            "8",
            "--validation",
            "50",
            "--resume",
            o_str,
            "--out",
            o_str,
        ],
        &[
            "--hidden = [8]",
            "[16], the value of the run in",
            "keeps its model",
        ],
    );
    assert_eq!(
        snapshot(&out),
        before,
        "a failed resume changed the outputs"
    );
    // A truncated checkpoint.
    let broken = dir.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    let bytes = std::fs::read(out.join("checkpoint.safetensors")).unwrap();
    std::fs::write(
        broken.join("checkpoint.safetensors"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    fails_with(
        &[
            &["--data", d, "--resume", broken.to_str().unwrap()],
            &SMALL[..],
        ]
        .concat(),
        &["checkpoint", "truncated or corrupt"],
    );
    fails_with(
        &[
            "--data",
            d,
            "--evaluate",
            broken.join("checkpoint.safetensors").to_str().unwrap(),
        ],
        &["truncated or corrupt"],
    );
    // Evaluating the good checkpoint alone reproduces the reported test accuracy.
    let o = run(&[
        "--data",
        d,
        "--evaluate",
        out.join("checkpoint.safetensors").to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let eval: serde_json::Value = serde_json::from_str(o.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(eval["test_accuracy"], summary["test_accuracy"]);
}

#[test]
fn a_resumed_run_rebuilds_its_model_and_settings_from_the_checkpoint() {
    let dir = temp_dir("resume-model");
    write_data(&dir, 200, 50);
    let d = dir.to_str().unwrap();
    let out = dir.join("run");
    let o_str = out.to_str().unwrap();
    let model = [
        "--hidden",
        "12,8",
        "--activation",
        "tanh",
        "--batch-norm",
        "--dropout",
        "0.1",
    ];
    let settings = ["--epochs", "1", "--validation", "50", "--batch-size", "50"];
    let o = run(&[&["--data", d, "--out", o_str], &settings[..], &model[..]].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    // No model flags: the tanh 12-8 network with batch norm and dropout comes from the
    // checkpoint, and its settings (--validation 50, --batch-size 50) with it.
    let o = run(&[
        "--data", d, "--resume", o_str, "--out", o_str, "--epochs", "2",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let summary: serde_json::Value =
        serde_json::from_str(o.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["epochs"], 2, "{summary}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["hidden"], serde_json::json!([12, 8]));
    assert_eq!(config["activation"], "tanh");
    assert_eq!(config["validation"], 50);
    let o = run(&[
        "--data",
        d,
        "--evaluate",
        out.join("checkpoint.safetensors").to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
}

#[test]
fn lbfgs_trains_full_batch_and_refuses_minibatches() {
    let dir = temp_dir("lbfgs");
    write_data(&dir, 200, 50);
    let d = dir.to_str().unwrap();
    let full = [
        "--optimizer",
        "lbfgs",
        "--limit-train",
        "100",
        "--batch-size",
        "100",
        "--validation",
        "50",
        "--hidden",
        "16",
        "--epochs",
        "3",
        "--dropout",
        "0",
    ];
    let o = run(&[&["--data", d][..], &full[..]].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    let summary: serde_json::Value =
        serde_json::from_str(o.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["epochs"], 3, "{summary}");
    fails_with(
        &[
            "--data",
            d,
            "--optimizer",
            "lbfgs",
            "--limit-train",
            "100",
            "--batch-size",
            "50",
            "--validation",
            "50",
        ],
        &[
            "--optimizer = lbfgs",
            "full-batch",
            "--batch-size 50 for 100 training samples",
            "adam",
        ],
    );
    fails_with(
        &[&["--data", d, "--micro-batches", "2"][..], &full[..]].concat(),
        &["--optimizer = lbfgs", "--micro-batches 1", "line search"],
    );
    fails_with(
        &["--data", d, "--optimizer", "lbfgs", "--validation", "50"],
        &[
            "--optimizer = lbfgs",
            "full-batch",
            "--batch-size 128 for 150 training samples",
        ],
    );
}

#[test]
fn overfit_tiny_reaches_zero_loss() {
    let dir = temp_dir("tiny");
    write_data(&dir, 200, 50);
    let o = run(&[
        "--data",
        dir.to_str().unwrap(),
        "--overfit-tiny",
        "20",
        "--hidden",
        "32",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("reached ~0"), "{}", o.stdout);
}

#[test]
fn augmented_preview_ensemble_and_folds_run() {
    let dir = temp_dir("extras");
    write_data(&dir, 200, 50);
    let d = dir.to_str().unwrap();
    let out = dir.join("out");
    let o = run(&[
        &["--data", d, "--out", out.to_str().unwrap()][..],
        &SMALL,
        &[
            "--augment",
            "flip,crop,affine,cutmix",
            "--save-augmented",
            "9",
            "--ensemble",
            "2",
        ],
    ]
    .concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    let png = std::fs::read(out.join("augmented.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(out.join("member-2/checkpoint.safetensors").exists());
    assert!(
        o.stdout.contains("ensemble of 2: test accuracy"),
        "{}",
        o.stdout
    );
    let summary: serde_json::Value =
        serde_json::from_str(o.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["member_test_accuracy"].as_array().unwrap().len(), 2);
    // The saved members evaluated again as an ensemble of checkpoints give the same figures.
    let members: Vec<String> = (1..=2)
        .map(|k| {
            out.join(format!("member-{k}/checkpoint.safetensors"))
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let o = run(&["--data", d, "--evaluate", &members.join(",")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let again: serde_json::Value = serde_json::from_str(o.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        again["member_test_accuracy"],
        summary["member_test_accuracy"]
    );
    assert_eq!(again["test_accuracy"], summary["test_accuracy"]);
    let o = run(&[&["--data", d, "--folds", "3"][..], &SMALL].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("3-fold cross-validation"), "{}", o.stdout);
}

#[test]
fn profile_kernels_prints_the_device_time_per_kernel_of_a_gpu_run() {
    let Some(gpu) = common::gpu() else { return };
    let dir = temp_dir("profile");
    write_data(&dir, 300, 60);
    let adapter = gpu.adapter_info().name.clone();
    let first_word = adapter.split_whitespace().next().unwrap_or("").to_string();
    let out = Command::new(program())
        .env("KILN_ADAPTER", &first_word)
        .args(["--device", "gpu", "--profile-kernels", "--data"])
        .arg(&dir)
        .args(SMALL)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("device time per kernel over the whole run"),
        "{stdout}"
    );
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.contains("ms/run"))
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(table.iter().any(|l| l.contains("matmul")), "{stdout}");
    assert!(
        table.iter().any(|l| l.contains("optim_adam_step")),
        "{stdout}"
    );
    assert!(table.last().unwrap().ends_with("all kernels"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap()).expect("the summary stays last");
    assert_eq!(summary["device"], "gpu");
    // On the CPU backend there is nothing to time: a warning, and the run goes on.
    let d = dir.to_str().unwrap();
    let o = run(&[&["--profile-kernels", "--data", d][..], &SMALL].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("--profile-kernels times GPU kernels"),
        "{}",
        o.stderr
    );
}

#[test]
fn regularisation_flags_train_and_detect_anomaly_names_the_op() {
    let dir = temp_dir("regularisation");
    write_data(&dir, 200, 50);
    let d = dir.to_str().unwrap();
    let flags = [
        "--l1",
        "1e-5",
        "--weight-decay",
        "1e-4",
        "--max-norm",
        "3",
        "--clip-grad-norm",
        "1",
        "--clip-grad-value",
        "0.5",
        "--schedule",
        "plateau",
    ];
    let o = run(&[&["--data", d], &SMALL[..], &flags[..]].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.lines().last().unwrap().starts_with('{'));
    let o = run(&[&["--data", d, "--schedule", "inverse-time"], &SMALL[..]].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    // A learning rate that sends the weights to infinity: with --detect-anomaly the run stops
    // at the first op whose output is not finite, and names it.
    let o = run(&[
        &[
            "--data",
            d,
            "--optimizer",
            "sgd",
            "--lr",
            "1e38",
            "--detect-anomaly",
        ],
        &SMALL[..],
    ]
    .concat());
    assert_ne!(o.code, 0, "{}", o.stdout);
    assert!(o.stderr.contains("anomaly detection"), "{}", o.stderr);
    assert!(o.stderr.contains("produced"), "{}", o.stderr);
}
