//! Minibatch rows of a u8 dataset mapped to f32 on the CPU (data.wgsl's family).

use kiln_tensor::{HostData, KilnError, Result};

/// out[i, c] = data[indices[i], c] · scale[c] + shift[c] over u8 chunks of whole rows.
pub fn gather_u8_affine(
    chunks: &[(&HostData, usize)],
    features: usize,
    indices: &HostData,
    scale: &HostData,
    shift: &HostData,
) -> Result<HostData> {
    let invalid = |message: String| KilnError::InvalidArgument {
        op: "gather_u8_affine",
        message,
    };
    let HostData::U32(indices) = indices else {
        return Err(invalid(format!(
            "indices must be u32, got {}",
            indices.dtype()
        )));
    };
    let (HostData::F32(scale), HostData::F32(shift)) = (scale, shift) else {
        return Err(invalid("scale and shift must be f32".into()));
    };
    let mut rows: Vec<(&[u8], usize)> = Vec::with_capacity(chunks.len());
    for (data, first) in chunks {
        let HostData::U8(bytes) = data else {
            return Err(invalid(format!(
                "dataset chunks must be u8, got {}",
                data.dtype()
            )));
        };
        rows.push((bytes, *first));
    }
    let row = |index: u32| -> Option<&[u8]> {
        let index = index as usize;
        rows.iter().find_map(|(bytes, first)| {
            let local = index.checked_sub(*first)?;
            bytes.get(local * features..(local + 1) * features)
        })
    };
    if let Some((pos, bad)) = indices.iter().enumerate().find(|(_, &i)| row(i).is_none()) {
        return Err(invalid(format!(
            "index {bad} at position {pos} is in no chunk of the dataset"
        )));
    }
    let mut out = vec![0.0f32; indices.len() * features];
    if features > 0 {
        // Each output row finds its source row once, then maps it feature by feature.
        let map_row = |(out_row, &index): (&mut [f32], &u32)| {
            let src = row(index).unwrap_or(&[]);
            for (((o, &b), &s), &t) in out_row.iter_mut().zip(src).zip(scale).zip(shift) {
                *o = b as f32 * s + t;
            }
        };
        if out.len() >= crate::PARALLEL_THRESHOLD {
            use rayon::prelude::*;
            out.par_chunks_mut(features)
                .zip(indices.par_iter())
                .for_each(map_row);
        } else {
            out.chunks_mut(features)
                .zip(indices.iter())
                .for_each(map_row);
        }
    }
    Ok(HostData::F32(out))
}
