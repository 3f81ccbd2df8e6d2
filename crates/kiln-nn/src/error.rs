//! Construction-time checks: a bad hyper-parameter names itself and its allowed range.

use kiln_tensor::KilnError;

/// An error for a hyper-parameter outside its allowed range.
pub fn invalid(
    what: &'static str,
    name: &str,
    value: impl std::fmt::Display,
    allowed: &str,
) -> KilnError {
    KilnError::InvalidArgument {
        op: what,
        message: format!("{name} = {value} is outside the allowed range {allowed}"),
    }
}

pub(crate) fn check_range(
    what: &'static str,
    name: &str,
    value: f64,
    ok: bool,
    allowed: &str,
) -> Result<(), KilnError> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(invalid(what, name, value, allowed))
    }
}

/// A shape error inside a layer, with the layer's name and the shape it was given (the fix is
/// usually in the layer before it); other errors (a lost device, an anomaly) pass through
/// unchanged, and an error that already names the layer is not named twice.
pub(crate) fn at_layer(
    e: kiln_tensor::KilnError,
    layer: &str,
    input: &kiln_tensor::Shape,
) -> kiln_tensor::KilnError {
    use kiln_tensor::KilnError;
    let named = format!("layer `{layer}`");
    match e {
        KilnError::ShapeMismatch { .. } | KilnError::InvalidArgument { .. }
            if !e.to_string().contains(&named) =>
        {
            KilnError::invalid(
                "forward",
                format!("{named} given input of shape {input}: {e}"),
            )
        }
        other => other,
    }
}
