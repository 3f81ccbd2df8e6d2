//! The arithmetic a model's matrix products use.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// `F32`: everything in f32. `Mixed`: parameters, gradients and everything else stay f32
/// ("master weights"); each linear layer casts its input and weight to f16 and multiplies them
/// with f32 accumulation into an f32 result, and its backward products read f16 too. Train with
/// a [`crate::LossScaler`] so small gradients survive f16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    #[default]
    F32,
    Mixed,
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "mixed" => Ok(Precision::Mixed),
            other => Err(format!("unknown precision {other:?}: use f32 or mixed")),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Mixed => "mixed",
        })
    }
}
