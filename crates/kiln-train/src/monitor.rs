//! Per-layer monitoring every K steps: update:weight ratio, gradient norm, weight norm and
//! activation mean/std/dead fraction. Everything is reduced to scalars on the device and read
//! back in one flush per interval; between intervals nothing is read.

use crate::history::LayerStats;
use kiln_nn::{LayerOutput, Parameter};
use kiln_tensor::{Backend, DType, Result, Tensor, UnaryOp};

/// (mean, mean of squares, dead fraction for ReLU) of one layer's activations.
type ActivationScalars<B> = (Tensor<B>, Tensor<B>, Option<Tensor<B>>);

/// Device scalars of one monitored step, read together by [`Pending::read`].
pub struct Pending<B: Backend> {
    layers: Vec<String>,
    /// Per layer: Σ g², Σ W² (after), Σ ΔW².
    norms: Vec<[Tensor<B>; 3]>,
    /// Per layer: (mean, mean of squares, dead fraction if ReLU) of its activations.
    activations: Vec<Option<ActivationScalars<B>>>,
    pub loss: Tensor<B>,
}

/// The weight parameters (`<layer>.weight`) with their layer names.
pub fn weights<B: Backend>(params: &[Parameter<B>]) -> Vec<(String, Parameter<B>)> {
    params
        .iter()
        .filter_map(|p| {
            p.name()
                .strip_suffix(".weight")
                .map(|layer| (layer.to_string(), p.clone()))
        })
        .collect()
}

/// Copies of the weights before the step (the update is measured against them).
pub fn before_step<B: Backend>(weights: &[(String, Parameter<B>)]) -> Result<Vec<Tensor<B>>> {
    weights.iter().map(|(_, p)| p.value().deep_copy()).collect()
}

fn sum_sq<B: Backend>(t: &Tensor<B>) -> Result<Tensor<B>> {
    t.square()?.sum_all()
}

/// Activation statistics of one layer output.
fn activation_stats<B: Backend>(h: &Tensor<B>, op: UnaryOp) -> Result<ActivationScalars<B>> {
    let mean = h.mean_all()?;
    let mean_sq = h.square()?.mean_all()?;
    let dead = if op == UnaryOp::Relu {
        let zero = Tensor::zeros([1], h.dtype(), h.backend())?;
        let alive = h.gt(&zero)?.cast(DType::F32)?.max(0)?.mean_all()?;
        Some((1.0 - &alive)?)
    } else {
        None
    };
    Ok((mean, mean_sq, dead))
}

/// Builds the device scalars after the optimiser step. `outputs` are the layer outputs of
/// the monitored forward pass (from `Sequential::forward_each`).
pub fn after_step<B: Backend>(
    weights: &[(String, Parameter<B>)],
    grads: &[Option<Tensor<B>>],
    before: &[Tensor<B>],
    outputs: &[LayerOutput<B>],
    loss: &Tensor<B>,
) -> Result<Pending<B>> {
    let mut norms = Vec::with_capacity(weights.len());
    for (((_, p), g), w0) in weights.iter().zip(grads).zip(before) {
        let w = p.value();
        let g2 = match g {
            Some(g) => sum_sq(g)?,
            None => Tensor::zeros([], w.dtype(), w.backend())?,
        };
        norms.push([g2, sum_sq(&w)?, sum_sq(&(&w - w0)?)?]);
    }
    // The activation feeding the next layer: the last activated output seen for each layer.
    let mut activations: Vec<Option<_>> = vec![None; weights.len()];
    let mut current: Option<usize> = None;
    for LayerOutput {
        layer,
        activation,
        value,
    } in outputs
    {
        let base = layer.split('.').next().unwrap_or(layer);
        if let Some(i) = weights.iter().position(|(l, _)| l == base) {
            current = Some(i);
        }
        if let (Some(i), Some(op)) = (current, activation) {
            activations[i] = Some(activation_stats(value.value(), *op)?);
        }
    }
    Ok(Pending {
        layers: weights.iter().map(|(l, _)| l.clone()).collect(),
        norms,
        activations,
        loss: loss.clone(),
    })
}

impl<B: Backend> Pending<B> {
    /// One read-back of every scalar; returns (the monitored step's loss, layer statistics).
    pub fn read(self) -> Result<(f64, Vec<LayerStats>)> {
        let mut tensors: Vec<&Tensor<B>> = vec![&self.loss];
        for n in &self.norms {
            tensors.extend(n.iter());
        }
        for (m, m2, dead) in self.activations.iter().flatten() {
            tensors.push(m);
            tensors.push(m2);
            if let Some(d) = dead {
                tensors.push(d);
            }
        }
        let values: Vec<f64> = Tensor::read_many(&tensors)?
            .iter()
            .map(|h| h.to_f64_vec().first().copied().unwrap_or(f64::NAN))
            .collect();
        let mut next = values.into_iter();
        let loss = next.next().unwrap_or(f64::NAN);
        let mut stats: Vec<LayerStats> = self
            .layers
            .iter()
            .map(|layer| {
                let [g2, w2, d2] = [(); 3].map(|_| next.next().unwrap_or(f64::NAN));
                LayerStats {
                    layer: layer.clone(),
                    update_ratio: d2.sqrt() / w2.sqrt().max(1e-30),
                    grad_norm: g2.sqrt(),
                    weight_norm: w2.sqrt(),
                    activation_mean: None,
                    activation_std: None,
                    dead_fraction: None,
                }
            })
            .collect();
        for (s, a) in stats.iter_mut().zip(&self.activations) {
            if let Some((_, _, dead)) = a {
                let mean = next.next().unwrap_or(f64::NAN);
                let mean_sq = next.next().unwrap_or(f64::NAN);
                s.activation_mean = Some(mean);
                s.activation_std = Some((mean_sq - mean * mean).max(0.0).sqrt());
                if dead.is_some() {
                    s.dead_fraction = next.next();
                }
            }
        }
        Ok((loss, stats))
    }
}
