//! Losses, each the mean over the batch: softmax cross-entropy (fused; optional label
//! smoothing; soft targets), mean squared error, multiclass hinge, and binary cross-entropy
//! with logits.

use crate::error::check_range;
use kiln_autograd::Var;
use kiln_tensor::{Backend, DType, Result, Tensor, UnaryOp};

/// One-hot rows [n, classes] of `dtype` for u32 labels, built on the device.
pub fn one_hot<B: Backend>(labels: &Tensor<B>, classes: usize, dtype: DType) -> Result<Tensor<B>> {
    let columns: Vec<f32> = (0..classes).map(|c| c as f32).collect();
    let columns = Tensor::from_vec(columns, [1, classes], labels.backend())?;
    labels
        .cast(DType::F32)?
        .reshape([labels.numel(), 1])?
        .eq(&columns)?
        .cast(dtype)
}

/// Softmax cross-entropy of logits [n, classes] against u32 labels [n]; `label_smoothing` ε
/// trains against (1 − ε)·one-hot + ε / classes.
pub fn softmax_cross_entropy<B: Backend>(
    logits: &Var<B>,
    labels: &Tensor<B>,
    label_smoothing: f32,
) -> Result<Var<B>> {
    check_range(
        "softmax_cross_entropy",
        "label_smoothing",
        label_smoothing as f64,
        (0.0..1.0).contains(&label_smoothing),
        "[0, 1)",
    )?;
    if label_smoothing == 0.0 {
        return logits.softmax_xent(labels)?.mean_all();
    }
    let classes = logits.shape().dims()[1];
    let targets = ((one_hot(labels, classes, logits.value().dtype())? * (1.0 - label_smoothing))?
        + label_smoothing / classes as f32)?;
    logits.softmax_xent(&targets)?.mean_all()
}

/// Mean over all elements of (prediction − target)².
pub fn mean_squared_error<B: Backend>(prediction: &Var<B>, target: &Tensor<B>) -> Result<Var<B>> {
    prediction
        .sub(&Var::constant(target.clone()))?
        .unary(UnaryOp::Square)?
        .mean_all()
}

/// Multiclass SVM loss: mean over rows of Σ_{j ≠ y} max(0, s_j − s_y + margin).
pub fn multiclass_hinge<B: Backend>(
    scores: &Var<B>,
    labels: &Tensor<B>,
    margin: f32,
) -> Result<Var<B>> {
    let (rows, classes) = (scores.shape().dims()[0], scores.shape().dims()[1]);
    let hot = one_hot(labels, classes, scores.value().dtype())?;
    let correct = scores
        .mul(&Var::constant(hot.clone()))?
        .sum(1)?
        .reshape([rows, 1])?;
    let margins = scores
        .sub(&correct)?
        .binary_scalar(kiln_tensor::BinaryOp::Add, margin as f64)?
        .relu()?;
    let others = (1.0 - &hot)?;
    margins
        .mul(&Var::constant(others))?
        .sum_all()?
        .binary_scalar(kiln_tensor::BinaryOp::Div, rows as f64)
}

/// Binary cross-entropy on logits: mean of softplus(x) − x·t (stable for any |x|).
pub fn binary_cross_entropy_with_logits<B: Backend>(
    logits: &Var<B>,
    targets: &Tensor<B>,
) -> Result<Var<B>> {
    logits
        .unary(UnaryOp::Softplus)?
        .sub(&logits.mul(&Var::constant(targets.clone()))?)?
        .mean_all()
}
