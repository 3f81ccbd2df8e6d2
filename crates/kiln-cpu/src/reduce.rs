//! Reductions on the CPU. Sums accumulate in f64 so the reference is more accurate than any
//! f32 kernel it checks; rows are reduced in parallel.

use crate::real::Real;
use crate::{float_dispatch, PARALLEL_THRESHOLD};
use kiln_tensor::{HostData, ReduceDims, ReduceOp, Result};
use rayon::prelude::*;

/// Reduces one (outer, inner) lane over `len`, returning (value, argmax index).
fn reduce_lane<T: Real>(op: ReduceOp, x: &[T], dims: ReduceDims, o: usize, i: usize) -> (T, usize) {
    let at = |j: usize| x[(o * dims.len + j) * dims.inner + i];
    match op {
        ReduceOp::Sum | ReduceOp::Mean => {
            let sum: f64 = (0..dims.len).map(|j| at(j).to_f64()).sum();
            let value = if op == ReduceOp::Mean {
                sum / dims.len as f64
            } else {
                sum
            };
            (T::from_f64(value), 0)
        }
        ReduceOp::Max | ReduceOp::Min | ReduceOp::ArgMax => {
            let mut best = at(0);
            let mut index = 0;
            for j in 1..dims.len {
                let v = at(j);
                let better = if op == ReduceOp::Min {
                    v < best
                } else {
                    v > best
                };
                if better {
                    best = v;
                    index = j;
                }
            }
            (best, index)
        }
    }
}

fn reduce_typed<T: Real>(op: ReduceOp, x: &[T], dims: ReduceDims) -> Vec<(T, usize)> {
    let lanes = dims.outer * dims.inner;
    let lane = |l: usize| reduce_lane(op, x, dims, l / dims.inner, l % dims.inner);
    if lanes * dims.len >= PARALLEL_THRESHOLD && lanes > 1 {
        (0..lanes).into_par_iter().map(lane).collect()
    } else {
        (0..lanes).map(lane).collect()
    }
}

pub fn reduce(op: ReduceOp, x: &HostData, dims: ReduceDims) -> Result<HostData> {
    if op == ReduceOp::ArgMax {
        let indices = match x {
            HostData::F32(v) => reduce_typed(op, v, dims)
                .into_iter()
                .map(|(_, i)| i as u32)
                .collect(),
            HostData::F64(v) => reduce_typed(op, v, dims)
                .into_iter()
                .map(|(_, i)| i as u32)
                .collect(),
            other => return Err(crate::unsupported("argmax", other.dtype())),
        };
        return Ok(HostData::U32(indices));
    }
    Ok(float_dispatch!(x, op.name(), |v| reduce_typed(op, v, dims)
        .into_iter()
        .map(|(value, _)| value)
        .collect()))
}

pub fn sum_all(x: &HostData) -> Result<HostData> {
    fn go<T: Real>(v: &[T]) -> Vec<T> {
        let sum: f64 = if v.len() >= PARALLEL_THRESHOLD {
            v.par_chunks(4096)
                .map(|c| c.iter().map(|x| x.to_f64()).sum::<f64>())
                .sum()
        } else {
            v.iter().map(|x| x.to_f64()).sum()
        };
        vec![T::from_f64(sum)]
    }
    Ok(float_dispatch!(x, "sum_all", |v| go(v)))
}
