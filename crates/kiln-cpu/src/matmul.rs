//! Matrix products on the CPU through the `gemm` crate (packed, vectorised, multithreaded),
//! reading transposed operands through strides instead of copying them.

use crate::cast::{narrow_to_f16, widen_f16};
use crate::elementwise::fill_indexed;
use crate::real::{unary_eval, Real};
use kiln_tensor::{f16, DType, HostData, KilnError, MatmulShape, Result, UnaryOp};

/// Products smaller than this many multiply-adds run on one thread.
const PARALLEL_FLOPS: usize = 64 * 64 * 64;

fn gemm_typed<T: Real>(
    a: &[T],
    b: &[T],
    s: &MatmulShape,
    bias: Option<&[T]>,
    activation: Option<UnaryOp>,
) -> Vec<T> {
    let (m, n, k) = (s.m, s.n, s.k);
    let mut out = vec![T::ZERO; s.batch * m * n];
    // Row and column strides of op(A) (m × k) and op(B) (k × n) as stored.
    let (a_rs, a_cs) = if s.trans_a {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (b_rs, b_cs) = if s.trans_b {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    let parallelism = if m * n * k >= PARALLEL_FLOPS {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    for batch in 0..s.batch {
        let c = &mut out[batch * m * n..(batch + 1) * m * n];
        if m == 0 || n == 0 {
            continue;
        }
        let a_base = &a[batch * s.batch_stride_a..];
        let b_base = &b[batch * s.batch_stride_b..];
        // SAFETY: the pointers and strides describe m×k, k×n and m×n matrices that lie inside
        // `a_base`, `b_base` and `c` (the Tensor layer checked the shapes and lengths), and
        // `c` does not alias the inputs.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a_base.as_ptr(),
                a_cs,
                a_rs,
                b_base.as_ptr(),
                b_cs,
                b_rs,
                T::ZERO,
                T::ONE,
                false,
                false,
                false,
                parallelism,
            );
        }
    }
    if bias.is_some() || activation.is_some() {
        let product = std::mem::take(&mut out);
        out = vec![T::ZERO; product.len()];
        fill_indexed(&mut out, |i| {
            let mut v = product[i];
            if let Some(bias) = bias {
                v = v + bias[i % n];
            }
            activation.map_or(v, |op| unary_eval(op, v))
        });
    }
    out
}

fn check_len(name: &str, have: usize, need: usize) -> Result<()> {
    if have < need {
        return Err(KilnError::InvalidArgument {
            op: "matmul",
            message: format!("operand {name} holds {have} elements, the shape needs {need}"),
        });
    }
    Ok(())
}

/// C = act(op(A) · op(B) + bias). f16 operands are widened, multiplied in f32 and C is
/// rounded once to `output` (f16 unless f32 is asked for); the bias has C's dtype.
pub fn matmul(
    a: &HostData,
    b: &HostData,
    s: &MatmulShape,
    bias: Option<&HostData>,
    activation: Option<UnaryOp>,
    output: Option<DType>,
) -> Result<HostData> {
    if let (HostData::F16(a), HostData::F16(b)) = (a, b) {
        let widen = |v: &[f16]| HostData::F32(widen_f16(v));
        let bias = bias.map(|bias| match bias {
            HostData::F16(v) => widen(v),
            other => other.clone(),
        });
        let product = matmul(&widen(a), &widen(b), s, bias.as_ref(), activation, None)?;
        return Ok(match (product, output) {
            (HostData::F32(c), Some(DType::F32)) => HostData::F32(c),
            (HostData::F32(c), _) => HostData::F16(narrow_to_f16(&c)),
            (other, _) => other,
        });
    }
    let last = s.batch.saturating_sub(1);
    check_len("A", a.len(), last * s.batch_stride_a + s.m * s.k)?;
    check_len("B", b.len(), last * s.batch_stride_b + s.k * s.n)?;
    Ok(match (a, b, bias) {
        (HostData::F32(a), HostData::F32(b), None) => {
            HostData::F32(gemm_typed(a, b, s, None, activation))
        }
        (HostData::F32(a), HostData::F32(b), Some(HostData::F32(bias))) => {
            HostData::F32(gemm_typed(a, b, s, Some(bias), activation))
        }
        (HostData::F64(a), HostData::F64(b), None) => {
            HostData::F64(gemm_typed(a, b, s, None, activation))
        }
        (HostData::F64(a), HostData::F64(b), Some(HostData::F64(bias))) => {
            HostData::F64(gemm_typed(a, b, s, Some(bias), activation))
        }
        _ => {
            let dtype = if a.dtype() != DType::F32 && a.dtype() != DType::F64 {
                a.dtype()
            } else {
                b.dtype()
            };
            return Err(crate::unsupported("matmul", dtype));
        }
    })
}
