//! Row gathers on the CPU (gather.wgsl's family).

use crate::elementwise::fill_indexed;
use crate::memory::fill;
use kiln_tensor::{HostData, KilnError, Result, Rows};

pub fn gather_rows(src: &HostData, shape: Rows, indices: &HostData) -> Result<HostData> {
    let HostData::U32(indices) = indices else {
        return Err(KilnError::InvalidArgument {
            op: "gather_rows",
            message: format!("indices must be u32, got {}", indices.dtype()),
        });
    };
    if let Some((pos, &bad)) = indices
        .iter()
        .enumerate()
        .find(|(_, &i)| i as usize >= shape.rows)
    {
        return Err(KilnError::InvalidArgument {
            op: "gather_rows",
            message: format!(
                "index {bad} at position {pos} is out of range for {} rows",
                shape.rows
            ),
        });
    }
    fn go<T: Copy + Default + Send + Sync>(src: &[T], cols: usize, indices: &[u32]) -> Vec<T> {
        let mut out = vec![T::default(); indices.len() * cols];
        fill_indexed(&mut out, |i| {
            src[indices[i / cols] as usize * cols + i % cols]
        });
        out
    }
    if shape.cols == 0 {
        return Ok(fill(0, src.dtype(), 0.0));
    }
    let cols = shape.cols;
    Ok(match src {
        HostData::F32(v) => HostData::F32(go(v, cols, indices)),
        HostData::F16(v) => HostData::F16(go(v, cols, indices)),
        HostData::U8(v) => HostData::U8(go(v, cols, indices)),
        HostData::U32(v) => HostData::U32(go(v, cols, indices)),
        HostData::F64(v) => HostData::F64(go(v, cols, indices)),
    })
}
