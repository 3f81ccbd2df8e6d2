//! Loading a checkpoint's weights into any module by parameter name, as PyTorch's
//! `load_state_dict` does: a user's own module gets its trained weights back without the
//! trainer knowing its architecture. `param.<name>` tensors go to the parameters of the same
//! name, `buffer.<name>` tensors to the module's buffers (batch-norm statistics).

use crate::checkpoint::Checkpoint;
use crate::error::{Result, TrainError};
use kiln_nn::Module;
use kiln_tensor::Backend;
use std::path::Path;

/// What `load_weights` found. With `strict`, any entry in the last three is an error instead.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Parameters and buffers loaded, by name.
    pub loaded: Vec<String>,
    /// The module's parameters the checkpoint has no tensor for.
    pub missing: Vec<String>,
    /// The checkpoint's parameters the module does not have.
    pub unexpected: Vec<String>,
    /// Name, the checkpoint's shape, the module's shape.
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl LoadReport {
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }

    /// One line per problem.
    pub fn problems(&self) -> Vec<String> {
        let missing = self
            .missing
            .iter()
            .map(|n| format!("{n}: in the module, not in the checkpoint"));
        let unexpected = self
            .unexpected
            .iter()
            .map(|n| format!("{n}: in the checkpoint, not in the module"));
        let mismatched = self.mismatched.iter().map(|(n, saved, module)| {
            format!("{n}: shape {saved:?} in the checkpoint, {module:?} in the module")
        });
        missing.chain(unexpected).chain(mismatched).collect()
    }
}

/// Loads the weights of the checkpoint at `path` into `module` by parameter name. With
/// `strict`, a missing name, an unexpected name or a shape mismatch is an error listing every
/// one of them and the file, and nothing is loaded; without, what matches is loaded and the
/// rest reported.
pub fn load_weights<B: Backend, M: Module<B> + ?Sized>(
    path: &Path,
    module: &mut M,
    strict: bool,
) -> Result<LoadReport> {
    let checkpoint = Checkpoint::load(path)?;
    let mut report = LoadReport::default();
    let params = module.parameters();
    for p in &params {
        let shape = p.value().dims().to_vec();
        match checkpoint.tensors.get(&format!("param.{}", p.name())) {
            None => report.missing.push(p.name().to_string()),
            Some((saved, _)) if *saved != shape => {
                report
                    .mismatched
                    .push((p.name().to_string(), saved.clone(), shape))
            }
            Some(_) => {}
        }
    }
    for name in checkpoint.names_with("param.") {
        if !params.iter().any(|p| p.name() == name) {
            report.unexpected.push(name);
        }
    }
    let buffers = module.buffers();
    for name in checkpoint.names_with("buffer.") {
        match buffers.iter().find(|(n, _)| *n == name) {
            None => report.unexpected.push(format!("buffer.{name}")),
            Some((_, t)) => {
                let saved = &checkpoint.tensors[&format!("buffer.{name}")].0;
                if saved.as_slice() != t.dims() {
                    let shape = t.dims().to_vec();
                    report
                        .mismatched
                        .push((format!("buffer.{name}"), saved.clone(), shape));
                }
            }
        }
    }
    if strict && !report.is_complete() {
        return Err(TrainError::Checkpoint {
            path: path.into(),
            message: format!(
                "its weights do not fit this module:\n  {}",
                report.problems().join("\n  ")
            ),
        });
    }
    let skipped = |name: &str| {
        report.missing.iter().any(|n| n == name)
            || report.unexpected.iter().any(|n| n == name)
            || report.mismatched.iter().any(|(n, ..)| n == name)
    };
    let mut loaded = Vec::new();
    for p in &params {
        if !skipped(p.name()) {
            let backend = p.value().backend().clone();
            p.set(checkpoint.tensor(path, &format!("param.{}", p.name()), &backend)?);
            loaded.push(p.name().to_string());
        }
    }
    for (name, current) in &buffers {
        let key = format!("buffer.{name}");
        if checkpoint.tensors.contains_key(&key) && !skipped(&key) {
            let t = checkpoint.tensor(path, &key, current.backend())?;
            module.set_buffer(name, &t)?;
            loaded.push(key);
        }
    }
    report.loaded = loaded;
    Ok(report)
}
