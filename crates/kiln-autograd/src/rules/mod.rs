//! Backward rules, one file per op family. Each takes the op, its inputs' values, its output
//! and the gradient of the output, and returns one gradient per input (`None` where the input
//! gets none). Gradients of broadcast inputs are summed back to the input's shape.

mod activation;
mod batch_norm;
mod conv;
mod elementwise;
mod gather;
mod matmul;
mod pool;
mod random;
mod reduce;
mod shape;
mod softmax_xent;

use crate::ops::Op;
use kiln_tensor::{Backend, Result, Tensor};

/// One gradient per input of an op; `None` where an input gets no gradient.
pub(crate) type InputGrads<B> = Vec<Option<Tensor<B>>>;

/// `needs[i]` says whether input i wants a gradient; rules skip the work for those that don't.
pub(crate) fn backward<B: Backend>(
    op: &Op<B>,
    inputs: &[&Tensor<B>],
    output: &Tensor<B>,
    grad: &Tensor<B>,
    needs: &[bool],
) -> Result<InputGrads<B>> {
    match op {
        Op::Unary(op) => activation::unary(*op, inputs[0], grad),
        Op::Binary(op) => elementwise::binary(*op, inputs[0], inputs[1], output, grad, needs),
        Op::BinaryScalar {
            op,
            scalar,
            scalar_on_left,
        } => elementwise::binary_scalar(*op, *scalar, *scalar_on_left, inputs[0], output, grad),
        Op::Matmul => matmul::matmul(inputs[0], inputs[1], grad, needs),
        Op::MatmulBiasAct { activation } => {
            matmul::matmul_bias_act(*activation, inputs, output, grad, needs)
        }
        Op::Narrow { dim, start } => shape::narrow(inputs[0], *dim, *start, grad),
        Op::Sum { axis } => reduce::sum(inputs[0], *axis, grad, false),
        Op::Mean { axis } => reduce::sum(inputs[0], *axis, grad, true),
        Op::SumAll => reduce::sum_all(inputs[0], grad),
        Op::Reshape => shape::reshape(inputs[0], grad),
        Op::Cast => Ok(vec![Some(grad.cast(inputs[0].dtype())?)]),
        Op::Transpose { a, b } => shape::transpose(*a, *b, grad),
        Op::BroadcastTo => shape::broadcast_to(inputs[0], grad),
        Op::Max { axis } | Op::Min { axis } => reduce::extreme(inputs[0], *axis, output, grad),
        Op::SoftmaxXent { targets } => softmax_xent::softmax_xent(inputs[0], targets, grad),
        Op::Softmax { log } => softmax_xent::softmax(*log, output, grad),
        Op::Select => elementwise::select(inputs[0], inputs[1], inputs[2], grad),
        Op::Prelu => activation::prelu(inputs[0], inputs[1], grad),
        Op::Dropout { mask } => random::dropout(mask, grad),
        Op::GatherRows { indices } => gather::gather_rows(inputs[0], indices, grad),
        Op::Conv2d { shape, activation } => {
            conv::conv2d(shape, *activation, inputs, output, grad, needs)
        }
        Op::MaxPool2d { shape, indices } => pool::max_pool2d(shape, indices, grad),
        Op::AvgPool2d { shape } => pool::avg_pool2d(shape, grad),
        Op::BatchNorm {
            mean,
            var,
            eps,
            batch_stats,
        } => batch_norm::batch_norm(inputs, (mean, var), *eps, *batch_stats, grad),
    }
}
