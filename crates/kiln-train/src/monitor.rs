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

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_cpu::CpuBackend;
    use kiln_nn::optim::{Optimizer, Sgd};
    use kiln_nn::{Init, Linear, Module, Sequential, Var};

    fn close(what: &str, actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() <= 1e-6 * expected.abs().max(1.0),
            "{what}: {actual} vs {expected} by hand"
        );
    }

    /// One ReLU layer, 2 → 3, W = [[1, −1, −1], [2, −3, −1]] ([in, out]), b = 0, on
    /// x = [[1, 1], [1, −1]]: x·W = [[3, −4, −2], [−1, 2, 0]], so the ReLU outputs are
    /// [[3, 0, 0], [0, 2, 0]]: mean 5/6, mean of squares 13/6, std √(53/36), and unit 2 is never
    /// positive (dead fraction 1/3). With loss = Σ outputs, ∂L/∂W = xᵀ·relu' =
    /// [[1, 1, 0], [1, −1, 0]] (norm 2); SGD with lr 0.1 moves W by 0.1·that (norm 0.2) to
    /// [[0.9, −1.1, −1], [1.9, −2.9, −1]] (norm √16.04), an update:weight ratio of 0.2/√16.04.
    #[test]
    fn layer_statistics_match_hand_computed_values() {
        let cpu = CpuBackend::new();
        let layer = Linear::new(
            "layer0",
            2,
            3,
            Init::XavierUniform,
            Some(UnaryOp::Relu),
            1,
            &cpu,
        )
        .unwrap();
        let model = Sequential::new().push(layer);
        let params = model.parameters();
        let w = Tensor::from_vec(vec![1.0f32, -1.0, -1.0, 2.0, -3.0, -1.0], [2, 3], &cpu).unwrap();
        params[0].set(w);
        let x = Tensor::from_vec(vec![1.0f32, 1.0, 1.0, -1.0], [2, 2], &cpu).unwrap();

        let monitored = weights(&params);
        let before = before_step(&monitored).unwrap();
        let outputs = model.forward_each(&Var::constant(x)).unwrap();
        let loss = outputs.last().unwrap().value.sum_all().unwrap();
        loss.backward().unwrap();
        let grads: Vec<_> = monitored.iter().map(|(_, p)| p.grad()).collect();
        Sgd::new(0.1).unwrap().step(&params).unwrap();
        let (l, stats) = after_step(&monitored, &grads, &before, &outputs, loss.value())
            .unwrap()
            .read()
            .unwrap();

        close("loss", l, 5.0);
        assert_eq!(stats.len(), 1);
        let s = &stats[0];
        assert_eq!(s.layer, "layer0");
        close("gradient norm", s.grad_norm, 2.0);
        close("weight norm", s.weight_norm, 16.04f64.sqrt());
        close("update ratio", s.update_ratio, 0.2 / 16.04f64.sqrt());
        close("activation mean", s.activation_mean.unwrap(), 5.0 / 6.0);
        close(
            "activation std",
            s.activation_std.unwrap(),
            (53.0f64 / 36.0).sqrt(),
        );
        close("dead fraction", s.dead_fraction.unwrap(), 1.0 / 3.0);
    }
}
