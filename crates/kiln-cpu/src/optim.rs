//! The fused optimiser steps on the CPU (Adam/AdamW, SGD with or without momentum,
//! AdaGrad/RMSProp): one pass over each parameter and its state, in parallel when large.
//! The formulas are the ones documented on `AdamStep`, `SgdStep` and `AdaptiveStep`.

use crate::real::Real;
use crate::PARALLEL_THRESHOLD;
use kiln_tensor::{AdamStep, AdaptiveStep, HostData, KilnError, Result, SgdStep};
use rayon::prelude::*;

/// Elements per parallel task: large enough for the inner loop to vectorise and amortise
/// the scheduling, small enough to balance two to a few dozen cores.
const CHUNK: usize = 16 * 1024;

fn adam_typed<T: Real>(param: &mut [T], grad: &[T], m: &mut [T], v: &mut [T], s: &AdamStep) {
    let (bc1, bc2) = s.bias_corrections();
    let [lr, b1, b2, eps, wd, bc1, bc2] =
        [s.lr, s.beta1, s.beta2, s.eps, s.weight_decay, bc1, bc2].map(|x| T::from_f64(x as f64));
    let update = |(((w, &g), m), v): (((&mut T, &T), &mut T), &mut T)| {
        let mut g = g;
        if s.decoupled {
            *w = *w * (T::ONE - lr * wd);
        } else {
            g = g + wd * *w;
        }
        *m = b1 * *m + (T::ONE - b1) * g;
        *v = b2 * *v + (T::ONE - b2) * g * g;
        *w = *w - lr * (*m / bc1) / ((*v / bc2).sqrt() + eps);
    };
    if param.len() >= PARALLEL_THRESHOLD {
        param
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((w, g), m), v)| {
                w.iter_mut()
                    .zip(g)
                    .zip(m.iter_mut())
                    .zip(v.iter_mut())
                    .for_each(update)
            });
    } else {
        param
            .iter_mut()
            .zip(grad.iter())
            .zip(m.iter_mut())
            .zip(v.iter_mut())
            .for_each(update);
    }
}

pub fn adam_step(
    param: &mut HostData,
    grad: &HostData,
    m: &mut HostData,
    v: &mut HostData,
    step: &AdamStep,
) -> Result<()> {
    match (param, grad, m, v) {
        (HostData::F32(p), HostData::F32(g), HostData::F32(m), HostData::F32(v)) => {
            adam_typed(p, g, m, v, step)
        }
        (HostData::F64(p), HostData::F64(g), HostData::F64(m), HostData::F64(v)) => {
            adam_typed(p, g, m, v, step)
        }
        (p, g, _, _) => {
            return Err(KilnError::DTypeMismatch {
                op: "adam_step",
                lhs: p.dtype(),
                rhs: g.dtype(),
            })
        }
    }
    Ok(())
}

fn sgd_typed<T: Real>(param: &mut [T], grad: &[T], velocity: Option<&mut [T]>, s: &SgdStep) {
    let [lr, mu, wd] = [s.lr, s.momentum, s.weight_decay].map(|x| T::from_f64(x as f64));
    let nesterov = s.nesterov;
    match velocity {
        None => {
            let update = |(w, &g): (&mut T, &T)| *w = *w - lr * (g + wd * *w);
            if param.len() >= PARALLEL_THRESHOLD {
                param
                    .par_chunks_mut(CHUNK)
                    .zip(grad.par_chunks(CHUNK))
                    .for_each(|(w, g)| w.iter_mut().zip(g).for_each(update));
            } else {
                param.iter_mut().zip(grad.iter()).for_each(update);
            }
        }
        Some(velocity) => {
            let update = |((w, &g), v): ((&mut T, &T), &mut T)| {
                let g = g + wd * *w;
                *v = mu * *v + g;
                let step = if nesterov { g + mu * *v } else { *v };
                *w = *w - lr * step;
            };
            if param.len() >= PARALLEL_THRESHOLD {
                param
                    .par_chunks_mut(CHUNK)
                    .zip(grad.par_chunks(CHUNK))
                    .zip(velocity.par_chunks_mut(CHUNK))
                    .for_each(|((w, g), v)| w.iter_mut().zip(g).zip(v.iter_mut()).for_each(update));
            } else {
                param
                    .iter_mut()
                    .zip(grad.iter())
                    .zip(velocity.iter_mut())
                    .for_each(update);
            }
        }
    }
}

fn adaptive_typed<T: Real>(param: &mut [T], grad: &[T], acc: &mut [T], s: &AdaptiveStep) {
    let [lr, eps, wd, decay, gain] =
        [s.lr, s.eps, s.weight_decay, s.decay, s.gain].map(|x| T::from_f64(x as f64));
    let update = |((w, &g), acc): ((&mut T, &T), &mut T)| {
        let g = g + wd * *w;
        *acc = decay * *acc + gain * g * g;
        *w = *w - lr * g / (acc.sqrt() + eps);
    };
    if param.len() >= PARALLEL_THRESHOLD {
        param
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(acc.par_chunks_mut(CHUNK))
            .for_each(|((w, g), a)| w.iter_mut().zip(g).zip(a.iter_mut()).for_each(update));
    } else {
        param
            .iter_mut()
            .zip(grad.iter())
            .zip(acc.iter_mut())
            .for_each(update);
    }
}

fn mismatch(op: &'static str, p: &HostData, g: &HostData) -> KilnError {
    KilnError::DTypeMismatch {
        op,
        lhs: p.dtype(),
        rhs: g.dtype(),
    }
}

pub fn sgd_step(
    param: &mut HostData,
    grad: &HostData,
    velocity: Option<&mut HostData>,
    step: &SgdStep,
) -> Result<()> {
    match (param, grad, velocity) {
        (HostData::F32(p), HostData::F32(g), None) => sgd_typed(p, g, None, step),
        (HostData::F32(p), HostData::F32(g), Some(HostData::F32(v))) => {
            sgd_typed(p, g, Some(v), step)
        }
        (HostData::F64(p), HostData::F64(g), None) => sgd_typed(p, g, None, step),
        (HostData::F64(p), HostData::F64(g), Some(HostData::F64(v))) => {
            sgd_typed(p, g, Some(v), step)
        }
        (p, g, _) => return Err(mismatch("sgd_step", p, g)),
    }
    Ok(())
}

pub fn adaptive_step(
    param: &mut HostData,
    grad: &HostData,
    accumulator: &mut HostData,
    step: &AdaptiveStep,
) -> Result<()> {
    match (param, grad, accumulator) {
        (HostData::F32(p), HostData::F32(g), HostData::F32(a)) => adaptive_typed(p, g, a, step),
        (HostData::F64(p), HostData::F64(g), HostData::F64(a)) => adaptive_typed(p, g, a, step),
        (p, g, _) => return Err(mismatch("adaptive_step", p, g)),
    }
    Ok(())
}
