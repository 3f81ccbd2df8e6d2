//! Errors of a training run. Each says what was wrong and where (the flag and its allowed
//! values, the file, the mismatched tensors).

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, TrainError>;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{flag} = {value} is not allowed: {allowed}")]
    Flag {
        flag: &'static str,
        value: String,
        allowed: String,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error(
        "training diverged at epoch {epoch}, step {step}: the loss is {loss} (initial loss \
         {initial:.4}); lower the learning rate (now {lr})"
    )]
    Diverged {
        epoch: usize,
        step: u64,
        loss: f64,
        initial: f64,
        lr: f32,
    },
    #[error(transparent)]
    Data(#[from] kiln_data::DataError),
    #[error(transparent)]
    Tensor(#[from] kiln_tensor::KilnError),
}

impl TrainError {
    pub(crate) fn file(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        TrainError::File {
            path: path.into(),
            message: message.to_string(),
        }
    }

    pub(crate) fn flag(flag: &'static str, value: impl std::fmt::Display, allowed: &str) -> Self {
        TrainError::Flag {
            flag,
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// a reader never sees a partial file and a failure leaves the old one.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = std::fs::write(&temp, bytes).and_then(|_| std::fs::rename(&temp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(TrainError::file(path, format!("cannot write: {e}")));
    }
    Ok(())
}
