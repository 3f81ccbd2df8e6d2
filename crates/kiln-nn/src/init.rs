//! Weight initialisers, deterministic from a seed through the backends' counter-based streams.

use kiln_tensor::{Backend, DType, Result, RngState, Shape, Tensor};

/// Which fan a variance-scaling initialiser uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fan {
    In,
    Out,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Every weight equal: symmetry is never broken (a warning says so for weights).
    Constant(f32),
    /// N(0, std²), e.g. the classic small random N(0, 0.01²).
    Normal { std: f32 },
    /// Glorot/Xavier uniform: U(−a, a), a = √(6 / (fan_in + fan_out)).
    XavierUniform,
    /// Glorot/Xavier normal: std = √(2 / (fan_in + fan_out)).
    XavierNormal,
    /// He/Kaiming uniform for ReLU: U(−a, a), a = √(6 / fan).
    HeUniform(Fan),
    /// He/Kaiming normal for ReLU: std = √(2 / fan).
    HeNormal(Fan),
}

impl Init {
    /// A [fan_in, fan_out] (or any shape, with the fans given) tensor drawn from this initialiser.
    pub fn tensor<B: Backend>(
        self,
        shape: impl Into<Shape>,
        fan_in: usize,
        fan_out: usize,
        seed: u64,
        backend: &B,
    ) -> Result<Tensor<B>> {
        let shape = shape.into();
        let rng = RngState { seed, offset: 0 };
        let (fi, fo) = (fan_in.max(1) as f32, fan_out.max(1) as f32);
        let fan = |f: Fan| if f == Fan::In { fi } else { fo };
        match self {
            Init::Constant(c) => Tensor::full(shape, c as f64, DType::F32, backend),
            Init::Normal { std } => Tensor::rand_normal(shape, 0.0, std, rng, backend),
            Init::XavierUniform => {
                let a = (6.0 / (fi + fo)).sqrt();
                Tensor::rand_uniform(shape, -a, a, rng, backend)
            }
            Init::XavierNormal => {
                Tensor::rand_normal(shape, 0.0, (2.0 / (fi + fo)).sqrt(), rng, backend)
            }
            Init::HeUniform(f) => {
                let a = (6.0 / fan(f)).sqrt();
                Tensor::rand_uniform(shape, -a, a, rng, backend)
            }
            Init::HeNormal(f) => {
                Tensor::rand_normal(shape, 0.0, (2.0 / fan(f)).sqrt(), rng, backend)
            }
        }
    }

    /// True when every weight it draws is equal, so units of a layer stay identical.
    pub fn breaks_symmetry(self) -> bool {
        !matches!(self, Init::Constant(_))
    }
}
