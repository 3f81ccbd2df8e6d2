//! The registry of WGSL sources and kernels. Each kernel names its file, its entry point
//! (`<family>_<variant>`) and how many storage buffers it reads and writes; a CPU-only test
//! checks every entry point exists and every entry point in `shaders/` is used.

/// A WGSL file in `shaders/`, compiled into the crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShaderFile {
    Elementwise,
    Activation,
    Reduce,
    Matmul,
    MatmulSubgroup,
    MatmulTexture,
    MatmulF16,
    SoftmaxXent,
    BatchNorm,
    Optim,
    LossScale,
    Data,
    Random,
    Gather,
    Cast,
    Augment,
    Conv,
    ConvTexture,
    Pool,
}

const COMMON: &str = include_str!("../../../../shaders/common.wgsl");

impl ShaderFile {
    pub const ALL: [ShaderFile; 19] = [
        ShaderFile::Elementwise,
        ShaderFile::Activation,
        ShaderFile::Reduce,
        ShaderFile::Matmul,
        ShaderFile::MatmulSubgroup,
        ShaderFile::MatmulTexture,
        ShaderFile::MatmulF16,
        ShaderFile::SoftmaxXent,
        ShaderFile::BatchNorm,
        ShaderFile::Optim,
        ShaderFile::LossScale,
        ShaderFile::Data,
        ShaderFile::Random,
        ShaderFile::Gather,
        ShaderFile::Cast,
        ShaderFile::Augment,
        ShaderFile::Conv,
        ShaderFile::ConvTexture,
        ShaderFile::Pool,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            ShaderFile::Elementwise => "elementwise.wgsl",
            ShaderFile::Activation => "activation.wgsl",
            ShaderFile::Reduce => "reduce.wgsl",
            ShaderFile::Matmul => "matmul.wgsl",
            ShaderFile::MatmulSubgroup => "matmul_subgroup.wgsl",
            ShaderFile::MatmulTexture => "matmul_texture.wgsl",
            ShaderFile::MatmulF16 => "matmul_f16.wgsl",
            ShaderFile::SoftmaxXent => "softmax_xent.wgsl",
            ShaderFile::BatchNorm => "batch_norm.wgsl",
            ShaderFile::Optim => "optim.wgsl",
            ShaderFile::LossScale => "loss_scale.wgsl",
            ShaderFile::Data => "data.wgsl",
            ShaderFile::Random => "random.wgsl",
            ShaderFile::Gather => "gather.wgsl",
            ShaderFile::Cast => "cast.wgsl",
            ShaderFile::Augment => "augment.wgsl",
            ShaderFile::Conv => "conv.wgsl",
            ShaderFile::ConvTexture => "conv_texture.wgsl",
            ShaderFile::Pool => "pool.wgsl",
        }
    }

    fn body(self) -> &'static str {
        match self {
            ShaderFile::Elementwise => include_str!("../../../../shaders/elementwise.wgsl"),
            ShaderFile::Activation => include_str!("../../../../shaders/activation.wgsl"),
            ShaderFile::Reduce => include_str!("../../../../shaders/reduce.wgsl"),
            ShaderFile::Matmul => include_str!("../../../../shaders/matmul.wgsl"),
            ShaderFile::MatmulSubgroup => include_str!("../../../../shaders/matmul_subgroup.wgsl"),
            ShaderFile::MatmulTexture => include_str!("../../../../shaders/matmul_texture.wgsl"),
            ShaderFile::MatmulF16 => include_str!("../../../../shaders/matmul_f16.wgsl"),
            ShaderFile::SoftmaxXent => include_str!("../../../../shaders/softmax_xent.wgsl"),
            ShaderFile::BatchNorm => include_str!("../../../../shaders/batch_norm.wgsl"),
            ShaderFile::Optim => include_str!("../../../../shaders/optim.wgsl"),
            ShaderFile::LossScale => include_str!("../../../../shaders/loss_scale.wgsl"),
            ShaderFile::Data => include_str!("../../../../shaders/data.wgsl"),
            ShaderFile::Random => include_str!("../../../../shaders/random.wgsl"),
            ShaderFile::Gather => include_str!("../../../../shaders/gather.wgsl"),
            ShaderFile::Cast => include_str!("../../../../shaders/cast.wgsl"),
            ShaderFile::Augment => include_str!("../../../../shaders/augment.wgsl"),
            ShaderFile::Conv => include_str!("../../../../shaders/conv.wgsl"),
            ShaderFile::ConvTexture => include_str!("../../../../shaders/conv_texture.wgsl"),
            ShaderFile::Pool => include_str!("../../../../shaders/pool.wgsl"),
        }
    }

    /// The full module source: the file's `enable` directives, then common.wgsl, then the rest.
    pub fn source(self) -> String {
        let body = self.body();
        let (enables, rest): (Vec<&str>, Vec<&str>) =
            body.lines().partition(|l| l.starts_with("enable "));
        let mut source = String::with_capacity(COMMON.len() + body.len() + 64);
        for line in enables {
            source.push_str(line);
            source.push('\n');
        }
        source.push_str(COMMON);
        source.push('\n');
        for line in rest {
            source.push_str(line);
            source.push('\n');
        }
        source
    }
}

/// Every compute kernel Kiln dispatches. The variant name is the entry point in CamelCase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    ElementwiseUnary,
    ElementwiseBinary,
    ElementwiseBinaryScalar,
    ElementwiseUnaryVec4,
    ElementwiseBinaryVec4,
    ElementwiseBinaryScalarVec4,
    ElementwiseSelect,
    ElementwiseCopy,
    ElementwiseFill,
    ActivationBackward,
    ActivationBackwardVec4,
    ActivationPrelu,
    ActivationPreluBackward,
    ActivationPreluAlphaGrad,
    ReduceRows,
    ReduceRowsNarrow,
    ReduceColumns,
    ReduceSumPartial,
    MatmulTiled,
    MatmulTiledVec4,
    MatmulSubgroup,
    MatmulSubgroupVec4,
    MatmulTexturePack,
    MatmulTexture,
    MatmulF16Tiled,
    MatmulF16TiledToF16,
    MatmulF16TexturePack,
    SoftmaxXentSoftmax,
    SoftmaxXentLabelsForward,
    SoftmaxXentSoftForward,
    SoftmaxXentLabelsBackward,
    SoftmaxXentSoftBackward,
    SoftmaxXentSoftmaxNarrow,
    SoftmaxXentLabelsForwardNarrow,
    SoftmaxXentSoftForwardNarrow,
    SoftmaxXentLabelsBackwardNarrow,
    SoftmaxXentSoftBackwardNarrow,
    BatchNormStats,
    BatchNormForward,
    BatchNormForwardVec4,
    BatchNormBackwardReduce,
    BatchNormBackwardInput,
    BatchNormBackwardInputVec4,
    OptimAdamStep,
    OptimAdamStepVec4,
    OptimSgdStep,
    OptimSgdMomentumStep,
    OptimAdaptiveStep,
    LossScaleUnscale,
    LossScaleUpdate,
    RandomUniform,
    RandomNormal,
    RandomDropout,
    GatherRows,
    DataGatherU8Affine,
    DataGatherU8AffineVec4,
    CastF32ToF16,
    CastF16ToF32,
    CastU8ToF32,
    CastU32ToF32,
    CastF32ToU32,
    AugmentWarp,
    AugmentJitter,
    AugmentCutmix,
    ConvForward,
    ConvBackwardInput,
    ConvBackwardWeight,
    ConvTexturePackPatches,
    ConvTexturePackGradPatches,
    ConvTexturePackWeightsT,
    ConvTexturePackGradRows,
    ConvTexturePackPatchRows,
    ConvTextureRowsToPlanes,
    ConvGroupedForward,
    ConvGroupedBackwardInput,
    ConvGroupedBackwardWeight,
    PoolMax,
    PoolMaxBackward,
    PoolAvg,
    PoolAvgBackward,
}

impl Kernel {
    pub const ALL: [Kernel; 80] = [
        Kernel::ElementwiseUnary,
        Kernel::ElementwiseBinary,
        Kernel::ElementwiseBinaryScalar,
        Kernel::ElementwiseUnaryVec4,
        Kernel::ElementwiseBinaryVec4,
        Kernel::ElementwiseBinaryScalarVec4,
        Kernel::ElementwiseSelect,
        Kernel::ElementwiseCopy,
        Kernel::ElementwiseFill,
        Kernel::ActivationBackward,
        Kernel::ActivationBackwardVec4,
        Kernel::ActivationPrelu,
        Kernel::ActivationPreluBackward,
        Kernel::ActivationPreluAlphaGrad,
        Kernel::ReduceRows,
        Kernel::ReduceRowsNarrow,
        Kernel::ReduceColumns,
        Kernel::ReduceSumPartial,
        Kernel::MatmulTiled,
        Kernel::MatmulTiledVec4,
        Kernel::MatmulSubgroup,
        Kernel::MatmulSubgroupVec4,
        Kernel::MatmulTexturePack,
        Kernel::MatmulTexture,
        Kernel::MatmulF16Tiled,
        Kernel::MatmulF16TiledToF16,
        Kernel::MatmulF16TexturePack,
        Kernel::SoftmaxXentSoftmax,
        Kernel::SoftmaxXentLabelsForward,
        Kernel::SoftmaxXentSoftForward,
        Kernel::SoftmaxXentLabelsBackward,
        Kernel::SoftmaxXentSoftBackward,
        Kernel::SoftmaxXentSoftmaxNarrow,
        Kernel::SoftmaxXentLabelsForwardNarrow,
        Kernel::SoftmaxXentSoftForwardNarrow,
        Kernel::SoftmaxXentLabelsBackwardNarrow,
        Kernel::SoftmaxXentSoftBackwardNarrow,
        Kernel::BatchNormStats,
        Kernel::BatchNormForward,
        Kernel::BatchNormForwardVec4,
        Kernel::BatchNormBackwardReduce,
        Kernel::BatchNormBackwardInput,
        Kernel::BatchNormBackwardInputVec4,
        Kernel::OptimAdamStep,
        Kernel::OptimAdamStepVec4,
        Kernel::OptimSgdStep,
        Kernel::OptimSgdMomentumStep,
        Kernel::OptimAdaptiveStep,
        Kernel::LossScaleUnscale,
        Kernel::LossScaleUpdate,
        Kernel::RandomUniform,
        Kernel::RandomNormal,
        Kernel::RandomDropout,
        Kernel::GatherRows,
        Kernel::DataGatherU8Affine,
        Kernel::DataGatherU8AffineVec4,
        Kernel::CastF32ToF16,
        Kernel::CastF16ToF32,
        Kernel::CastU8ToF32,
        Kernel::CastU32ToF32,
        Kernel::CastF32ToU32,
        Kernel::AugmentWarp,
        Kernel::AugmentJitter,
        Kernel::AugmentCutmix,
        Kernel::ConvForward,
        Kernel::ConvBackwardInput,
        Kernel::ConvBackwardWeight,
        Kernel::ConvTexturePackPatches,
        Kernel::ConvTexturePackGradPatches,
        Kernel::ConvTexturePackWeightsT,
        Kernel::ConvTexturePackGradRows,
        Kernel::ConvTexturePackPatchRows,
        Kernel::ConvTextureRowsToPlanes,
        Kernel::ConvGroupedForward,
        Kernel::ConvGroupedBackwardInput,
        Kernel::ConvGroupedBackwardWeight,
        Kernel::PoolMax,
        Kernel::PoolMaxBackward,
        Kernel::PoolAvg,
        Kernel::PoolAvgBackward,
    ];

    /// (file, entry point, storage buffers read, storage buffers written). Binding 0 is the
    /// parameter uniform; then the sampled textures (see `textures`), the buffers read, the
    /// buffers written, and the storage textures written.
    pub fn spec(self) -> (ShaderFile, &'static str, u32, u32) {
        use Kernel::*;
        use ShaderFile as F;
        match self {
            ElementwiseUnary => (F::Elementwise, "elementwise_unary", 1, 1),
            ElementwiseBinary => (F::Elementwise, "elementwise_binary", 2, 1),
            ElementwiseBinaryScalar => (F::Elementwise, "elementwise_binary_scalar", 1, 1),
            ElementwiseUnaryVec4 => (F::Elementwise, "elementwise_unary_vec4", 1, 1),
            ElementwiseBinaryVec4 => (F::Elementwise, "elementwise_binary_vec4", 2, 1),
            ElementwiseBinaryScalarVec4 => (F::Elementwise, "elementwise_binary_scalar_vec4", 1, 1),
            ElementwiseSelect => (F::Elementwise, "elementwise_select", 3, 1),
            ElementwiseCopy => (F::Elementwise, "elementwise_copy", 1, 1),
            ElementwiseFill => (F::Elementwise, "elementwise_fill", 0, 1),
            ActivationBackward => (F::Activation, "activation_backward", 2, 1),
            ActivationBackwardVec4 => (F::Activation, "activation_backward_vec4", 2, 1),
            ActivationPrelu => (F::Activation, "activation_prelu", 2, 1),
            ActivationPreluBackward => (F::Activation, "activation_prelu_backward", 3, 1),
            ActivationPreluAlphaGrad => (F::Activation, "activation_prelu_alpha_grad", 2, 1),
            ReduceRows => (F::Reduce, "reduce_rows", 1, 1),
            ReduceRowsNarrow => (F::Reduce, "reduce_rows_narrow", 1, 1),
            ReduceColumns => (F::Reduce, "reduce_columns", 1, 1),
            ReduceSumPartial => (F::Reduce, "reduce_sum_partial", 1, 1),
            MatmulTiled => (F::Matmul, "matmul_tiled", 3, 1),
            MatmulTiledVec4 => (F::Matmul, "matmul_tiled_vec4", 3, 1),
            MatmulSubgroup => (F::MatmulSubgroup, "matmul_subgroup", 3, 1),
            MatmulSubgroupVec4 => (F::MatmulSubgroup, "matmul_subgroup_vec4", 3, 1),
            MatmulTexturePack => (F::MatmulTexture, "matmul_texture_pack", 1, 0),
            MatmulTexture => (F::MatmulTexture, "matmul_texture", 1, 1),
            MatmulF16Tiled => (F::MatmulF16, "matmul_f16_tiled", 3, 1),
            MatmulF16TiledToF16 => (F::MatmulF16, "matmul_f16_tiled_to_f16", 3, 1),
            MatmulF16TexturePack => (F::MatmulF16, "matmul_f16_texture_pack", 1, 0),
            SoftmaxXentSoftmax => (F::SoftmaxXent, "softmax_xent_softmax", 1, 1),
            SoftmaxXentLabelsForward => (F::SoftmaxXent, "softmax_xent_labels_forward", 2, 1),
            SoftmaxXentSoftForward => (F::SoftmaxXent, "softmax_xent_soft_forward", 2, 1),
            SoftmaxXentLabelsBackward => (F::SoftmaxXent, "softmax_xent_labels_backward", 3, 1),
            SoftmaxXentSoftBackward => (F::SoftmaxXent, "softmax_xent_soft_backward", 3, 1),
            SoftmaxXentSoftmaxNarrow => (F::SoftmaxXent, "softmax_xent_softmax_narrow", 1, 1),
            SoftmaxXentLabelsForwardNarrow => {
                (F::SoftmaxXent, "softmax_xent_labels_forward_narrow", 2, 1)
            }
            SoftmaxXentSoftForwardNarrow => {
                (F::SoftmaxXent, "softmax_xent_soft_forward_narrow", 2, 1)
            }
            SoftmaxXentLabelsBackwardNarrow => {
                (F::SoftmaxXent, "softmax_xent_labels_backward_narrow", 3, 1)
            }
            SoftmaxXentSoftBackwardNarrow => {
                (F::SoftmaxXent, "softmax_xent_soft_backward_narrow", 3, 1)
            }
            BatchNormStats => (F::BatchNorm, "batch_norm_stats", 1, 2),
            BatchNormForward => (F::BatchNorm, "batch_norm_forward", 5, 1),
            BatchNormForwardVec4 => (F::BatchNorm, "batch_norm_forward_vec4", 5, 1),
            BatchNormBackwardReduce => (F::BatchNorm, "batch_norm_backward_reduce", 4, 2),
            BatchNormBackwardInput => (F::BatchNorm, "batch_norm_backward_input", 7, 1),
            BatchNormBackwardInputVec4 => (F::BatchNorm, "batch_norm_backward_input_vec4", 7, 1),
            OptimAdamStep => (F::Optim, "optim_adam_step", 2, 3),
            OptimAdamStepVec4 => (F::Optim, "optim_adam_step_vec4", 2, 3),
            OptimSgdStep => (F::Optim, "optim_sgd_step", 2, 1),
            OptimSgdMomentumStep => (F::Optim, "optim_sgd_momentum_step", 2, 2),
            OptimAdaptiveStep => (F::Optim, "optim_adaptive_step", 2, 2),
            LossScaleUnscale => (F::LossScale, "loss_scale_unscale", 1, 2),
            LossScaleUpdate => (F::LossScale, "loss_scale_update", 0, 2),
            RandomUniform => (F::Random, "random_uniform", 0, 1),
            RandomNormal => (F::Random, "random_normal", 0, 1),
            RandomDropout => (F::Random, "random_dropout", 1, 2),
            GatherRows => (F::Gather, "gather_rows", 2, 1),
            DataGatherU8Affine => (F::Data, "data_gather_u8_affine", 4, 1),
            DataGatherU8AffineVec4 => (F::Data, "data_gather_u8_affine_vec4", 4, 1),
            CastF32ToF16 => (F::Cast, "cast_f32_to_f16", 1, 1),
            CastF16ToF32 => (F::Cast, "cast_f16_to_f32", 1, 1),
            CastU8ToF32 => (F::Cast, "cast_u8_to_f32", 1, 1),
            CastU32ToF32 => (F::Cast, "cast_u32_to_f32", 1, 1),
            CastF32ToU32 => (F::Cast, "cast_f32_to_u32", 1, 1),
            AugmentWarp => (F::Augment, "augment_warp", 2, 1),
            AugmentJitter => (F::Augment, "augment_jitter", 2, 1),
            AugmentCutmix => (F::Augment, "augment_cutmix", 2, 1),
            ConvForward => (F::Conv, "conv_forward", 3, 1),
            ConvBackwardInput => (F::Conv, "conv_backward_input", 2, 1),
            ConvBackwardWeight => (F::Conv, "conv_backward_weight", 2, 1),
            ConvTexturePackPatches => (F::ConvTexture, "conv_texture_pack_patches", 1, 0),
            ConvTexturePackGradPatches => (F::ConvTexture, "conv_texture_pack_grad_patches", 1, 0),
            ConvTexturePackWeightsT => (F::ConvTexture, "conv_texture_pack_weights_t", 1, 0),
            ConvTexturePackGradRows => (F::ConvTexture, "conv_texture_pack_grad_rows", 1, 0),
            ConvTexturePackPatchRows => (F::ConvTexture, "conv_texture_pack_patch_rows", 1, 0),
            ConvTextureRowsToPlanes => (F::ConvTexture, "conv_texture_rows_to_planes", 1, 1),
            ConvGroupedForward => (F::Conv, "conv_grouped_forward", 3, 1),
            ConvGroupedBackwardInput => (F::Conv, "conv_grouped_backward_input", 2, 1),
            ConvGroupedBackwardWeight => (F::Conv, "conv_grouped_backward_weight", 2, 1),
            PoolMax => (F::Pool, "pool_max", 1, 2),
            PoolMaxBackward => (F::Pool, "pool_max_backward", 2, 1),
            PoolAvg => (F::Pool, "pool_avg", 1, 1),
            PoolAvgBackward => (F::Pool, "pool_avg_backward", 1, 1),
        }
    }

    /// (sampled textures read, storage textures written); (0, 0) for all but the texture matmul and its packs.
    pub fn textures(self) -> (u32, u32) {
        match self {
            Kernel::MatmulTexturePack
            | Kernel::MatmulF16TexturePack
            | Kernel::ConvTexturePackPatches
            | Kernel::ConvTexturePackGradPatches
            | Kernel::ConvTexturePackWeightsT
            | Kernel::ConvTexturePackGradRows
            | Kernel::ConvTexturePackPatchRows => (0, 1),
            Kernel::MatmulTexture => (2, 0),
            _ => (0, 0),
        }
    }

    pub fn entry_point(self) -> &'static str {
        self.spec().1
    }

    pub fn file(self) -> ShaderFile {
        self.spec().0
    }
}
