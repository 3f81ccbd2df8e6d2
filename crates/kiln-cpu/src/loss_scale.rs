//! Dynamic loss scaling on the CPU backend: the same state and rule as loss_scale.wgsl
//! (`scale`: one f32; `flags`: u32 [found non-finite, steps skipped, finite steps since the
//! scale changed]).

use kiln_tensor::{HostData, KilnError, LossScaleRule, Result};

/// The largest scale the rule grows to (2²⁴), as on the GPU.
const MAX_SCALE: f32 = 16_777_216.0;

fn flags_of<'a>(op: &'static str, flags: &'a mut HostData) -> Result<&'a mut [u32]> {
    let (len, dtype) = (flags.len(), flags.dtype());
    match flags {
        HostData::U32(v) if len >= 3 => Ok(v),
        _ => Err(KilnError::invalid(
            op,
            format!("the loss scaler's flags are 3 u32 values, got {len} {dtype}"),
        )),
    }
}

fn scale_of<'a>(op: &'static str, scale: &'a mut HostData) -> Result<&'a mut f32> {
    let (len, dtype) = (scale.len(), scale.dtype());
    match scale {
        HostData::F32(v) if len >= 1 => Ok(&mut v[0]),
        _ => Err(KilnError::invalid(
            op,
            format!("the loss scale is one f32, got {len} {dtype}"),
        )),
    }
}

pub fn unscale_gradient(grad: &mut HostData, scale: &HostData, flags: &mut HostData) -> Result<()> {
    let op = "unscale_gradient";
    let inverse = match scale {
        HostData::F32(v) if !v.is_empty() => 1.0 / v[0],
        other => {
            return Err(KilnError::invalid(
                op,
                format!(
                    "the loss scale is one f32, got {} {}",
                    other.len(),
                    other.dtype()
                ),
            ))
        }
    };
    let flags = flags_of(op, flags)?;
    let HostData::F32(grad) = grad else {
        return Err(KilnError::invalid(
            op,
            format!("gradients are f32, got {}", grad.dtype()),
        ));
    };
    let mut finite = true;
    for g in grad.iter_mut() {
        finite &= g.is_finite();
        *g *= inverse;
    }
    if !finite {
        flags[0] = 1;
    }
    Ok(())
}

pub fn update_loss_scale(
    scale: &mut HostData,
    flags: &mut HostData,
    rule: &LossScaleRule,
) -> Result<()> {
    let op = "update_loss_scale";
    let scale = scale_of(op, scale)?;
    let flags = flags_of(op, flags)?;
    if flags[0] != 0 {
        *scale *= rule.backoff;
        flags[1] += 1;
        flags[2] = 0;
    } else {
        flags[2] += 1;
        if flags[2] >= rule.interval {
            *scale = (*scale * rule.growth).min(MAX_SCALE);
            flags[2] = 0;
        }
    }
    flags[0] = 0;
    Ok(())
}

/// (skip the step, steps skipped so far) from an optimiser's `skip_if` flags.
pub fn gate(skip_if: Option<&HostData>) -> Result<(bool, u32)> {
    match skip_if {
        None => Ok((false, 0)),
        Some(HostData::U32(v)) if v.len() >= 3 => Ok((v[0] != 0, v[1])),
        Some(other) => Err(KilnError::invalid(
            "optimiser step",
            format!(
                "skip_if takes the loss scaler's 3 u32 flags, got {} {}",
                other.len(),
                other.dtype()
            ),
        )),
    }
}
