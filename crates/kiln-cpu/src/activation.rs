//! The activations' derivatives and PReLU on the CPU (activation.wgsl's family).

use crate::elementwise::{fill_indexed, map2, same_dtype};
use crate::real::{relu_derivative, unary_derivative, Real};
use kiln_tensor::{HostData, Layout, ReduceDims, Result, UnaryOp};

pub fn unary_backward(
    op: UnaryOp,
    x: &HostData,
    xl: &Layout,
    grad: &HostData,
    gl: &Layout,
) -> Result<HostData> {
    fn go<T: Real>(op: UnaryOp, x: &[T], xl: &Layout, g: &[T], gl: &Layout) -> Vec<T> {
        // ReLU gets a loop of its own, with no call per element.
        match op {
            UnaryOp::Relu => map2(x, xl, g, gl, |a, g| g * relu_derivative(a)),
            _ => map2(x, xl, g, gl, |a, g| g * unary_derivative(op, a)),
        }
    }
    same_dtype(op.name(), x, grad)?;
    Ok(match (x, grad) {
        (HostData::F32(x), HostData::F32(g)) => HostData::F32(go(op, x, xl, g, gl)),
        (HostData::F64(x), HostData::F64(g)) => HostData::F64(go(op, x, xl, g, gl)),
        _ => return Err(crate::unsupported(op.name(), x.dtype())),
    })
}

fn channel(i: usize, dims: ReduceDims) -> usize {
    (i / dims.inner.max(1)) % dims.len
}

pub fn prelu(x: &HostData, alpha: &HostData, dims: ReduceDims) -> Result<HostData> {
    fn go<T: Real>(x: &[T], alpha: &[T], dims: ReduceDims) -> Vec<T> {
        let mut out = vec![T::ZERO; x.len()];
        fill_indexed(&mut out, |i| {
            if x[i] > T::ZERO {
                x[i]
            } else {
                alpha[channel(i, dims)] * x[i]
            }
        });
        out
    }
    same_dtype("prelu", x, alpha)?;
    Ok(match (x, alpha) {
        (HostData::F32(x), HostData::F32(a)) => HostData::F32(go(x, a, dims)),
        (HostData::F64(x), HostData::F64(a)) => HostData::F64(go(x, a, dims)),
        _ => return Err(crate::unsupported("prelu", x.dtype())),
    })
}

pub fn prelu_backward(
    x: &HostData,
    alpha: &HostData,
    grad: &HostData,
    dims: ReduceDims,
) -> Result<(HostData, HostData)> {
    fn go<T: Real>(x: &[T], alpha: &[T], g: &[T], dims: ReduceDims) -> (Vec<T>, Vec<T>) {
        let mut dx = vec![T::ZERO; x.len()];
        fill_indexed(&mut dx, |i| {
            if x[i] > T::ZERO {
                g[i]
            } else {
                alpha[channel(i, dims)] * g[i]
            }
        });
        let mut dalpha = vec![0.0f64; dims.len];
        for i in 0..x.len() {
            if x[i] <= T::ZERO {
                dalpha[channel(i, dims)] += (x[i] * g[i]).to_f64();
            }
        }
        (dx, dalpha.into_iter().map(T::from_f64).collect())
    }
    same_dtype("prelu_backward", x, grad)?;
    Ok(match (x, alpha, grad) {
        (HostData::F32(x), HostData::F32(a), HostData::F32(g)) => {
            let (dx, da) = go(x, a, g, dims);
            (HostData::F32(dx), HostData::F32(da))
        }
        (HostData::F64(x), HostData::F64(a), HostData::F64(g)) => {
            let (dx, da) = go(x, a, g, dims);
            (HostData::F64(dx), HostData::F64(da))
        }
        _ => return Err(crate::unsupported("prelu_backward", x.dtype())),
    })
}
