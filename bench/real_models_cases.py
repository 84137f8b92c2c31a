"""The cases of ``bench/real_models.py``: model classes of the real legacy
corpus (``../shared/corpus/<folder>``), verified in module mode after the
tool upgraded their whole folder.

Data only. One :class:`Case` per model class: the corpus folder, the file
inside it, the class (or a module-level ``.partial`` of one), the legacy
``apply`` keyword arguments (JSON values: Linen gets the attributes as
constructor arguments and the rest as call arguments), and the input specs
(``SHAPE[:DTYPE]``, as ``verify --input``). ``roots``: folders inside the
corpus folder that go on ``sys.path`` (the package roots the file imports
from; the file's own folder always does). The bench reports what each case
shows, with the reason when it is not OK.
"""
from __future__ import annotations

from typing import Any, Dict, NamedTuple, Optional, Tuple

FOLDERS = (
    "google__flax", "google__init2winit", "google-research__long-range-arena",
    "google-research__rigl", "markusschmitt__vmc_jax", "mlcommons__training_results_v0.7",
    "mlcommons__training_results_v1.0",
)


# files the corpus left out (it holds only the files that use Flax) that a case's
# imports reach: path -> our own stand-in source, or None for a module whose
# every attribute is a stand-in (used only at run time, by code no case calls)
PLACEHOLDERS: Dict[str, Dict[str, Optional[str]]] = {
    "google__flax": {"examples/vae/utils.py": None},
    "google__init2winit": {"init2winit/model_lib/metrics.py": None, "init2winit/checkpoint.py": None},
    "markusschmitt__vmc_jax": {
        "jVMC/global_defs.py": "import numpy as np\ntReal = np.float64\ntCpx = np.complex128\n",
        "jVMC/mpi_wrapper.py": None, "jVMC/operator.py": None, "jVMC/stepper.py": None,
    },
}

# text the corpus's redaction left that does not compile (mlcommons): removed
# from both copies before the upgrade; and absl flags that the U-Net layers read
# at call time, which the program's main() parses: parsed with their defaults
FIXUPS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "mlcommons__training_results_v1.0": (("from __future__ import REDACTED\n", ""),
                                         ("\nFLAGS = flags.FLAGS\n", "\nFLAGS = flags.FLAGS\nFLAGS.mark_as_parsed()\n")),
    "mlcommons__training_results_v0.7": (("from __future__ import REDACTED\n", ""),),
}


class Case(NamedTuple):
    folder: str
    file: str
    module: str
    inputs: Tuple[str, ...]
    kwargs: Dict[str, Any] = {}
    roots: Tuple[str, ...] = (".",)
    kind: str = ""                  # what the model is (CNN, ResNet, attention, ...)

    @property
    def name(self) -> str:
        # the file's folder too: two model files of one corpus folder may share a name (models.py)
        path = "/".join(self.file[:-3].split("/")[-2:])
        return f"{self.folder.split('__')[-1]}:{path}.{self.module}"


FLAX = "google__flax"
I2W = "google__init2winit"
LRA = "google-research__long-range-arena"
RIGL = "google-research__rigl"
VMC = "markusschmitt__vmc_jax"
ML07 = "mlcommons__training_results_v0.7"
ML10 = "mlcommons__training_results_v1.0"
_ML07_RESNET = "Google/benchmarks/resnet/implementations/resnet-research-JAX-tpu-v3-8192/models.py"
_ML10_RESNET = "Google/benchmarks/resnet/implementations/resnet-research-JAX-Distributed-Shampoo-tpu-v4-256/models.py"
_ML07_SSD = "Google/benchmarks/ssd/implementations/ssd-research-JAX-tpu-v3-4096/resnet34/models.py"
_ML10_UNET = "Google/benchmarks/unet3d/implementations/unet3d-preview-JAX-tpu-v4-1024/models/layers.py"

_UNET = {"normalization": "instancenorm", "activation": "relu"}
_LRA_SMALL = {"emb_dim": 16, "num_heads": 2, "qkv_dim": 16, "mlp_dim": 32, "num_layers": 1,
              "max_len": 32}

CASES: Tuple[Case, ...] = (
    # google/flax examples
    Case(FLAX, "examples/mnist/mnist_lib.py", "CNN", ("2,28,28,1",), kind="CNN"),
    Case(FLAX, "examples/imagenet/resnet_v1.py", "ResNet18", ("2,32,32,3",),
         {"num_classes": 10, "num_filters": 8}, kind="ResNet, BatchNorm"),
    Case(FLAX, "examples/imagenet/resnet_v1.py", "ResNet50", ("2,32,32,3",),
         {"num_classes": 10, "num_filters": 4}, kind="ResNet, bottleneck, BatchNorm"),
    Case(FLAX, "examples/cifar10/models/wideresnet.py", "WideResnet", ("2,32,32,3",),
         {"blocks_per_group": 1, "channel_multiplier": 1, "num_outputs": 10, "dropout_rate": 0.3},
         kind="WideResNet, BatchNorm, dropout"),
    Case(FLAX, "examples/cifar10/models/wideresnet.py", "WideResnetBlock", ("2,8,8,4",),
         {"channels": 8, "dropout_rate": 0.3}, kind="WideResNet block, projection, BatchNorm, dropout"),
    Case(FLAX, "examples/cifar10/models/wideresnet.py", "WideResnetGroup", ("2,8,8,8",),
         {"blocks_per_group": 2, "channels": 8, "dropout_rate": 0.3}, kind="WideResNet group, BatchNorm, dropout"),
    Case(FLAX, "examples/cifar10/models/wideresnet_shakeshake.py", "WideResnetShakeShake",
         ("2,32,32,3",), {"blocks_per_group": 1, "channel_multiplier": 1, "num_outputs": 10},
         roots=("examples/cifar10",), kind="WideResNet, shake-shake (random)"),
    Case(FLAX, "examples/cifar10/models/pyramidnet.py", "PyramidNetShakeDrop", ("2,32,32,3",),
         {"num_outputs": 10, "pyramid_alpha": 8, "pyramid_depth": 11}, roots=("examples/cifar10",),
         kind="PyramidNet, shake-drop (random)"),
    Case(FLAX, "examples/vae/train.py", "VAE", ("2,784", "2:uint32"), {"latents": 4},
         kind="VAE (a PRNG key input), shared decoder"),
    Case(FLAX, "examples/vae/train.py", "Encoder", ("2,784",), {"latents": 4}, kind="VAE encoder"),
    Case(FLAX, "examples/vae/train.py", "Decoder", ("2,4",), kind="VAE decoder"),
    Case(FLAX, "examples/ppo/models.py", "ActorCritic", ("2,84,84,4",), {"num_outputs": 3},
         kind="CNN, two heads"),
    # a batch of 4: the deepest BatchNorm (1x1) sees 4 values, not 2 (whose two normalized
    # values are +-1 whatever the input, so the gradients behind it are rounding noise)
    Case(FLAX, "examples/wip/moco/model_resnet.py", "ResNet", ("4,32,32,3",),
         {"num_outputs": 10, "num_filters": 4, "block_sizes": [1, 1, 1, 1]}, kind="ResNet, BatchNorm"),
    Case(FLAX, "examples/wip/moco/model_resnet.py", "BottleneckBlock", ("4,8,8,8",), {"filters": 4},
         kind="ResNet bottleneck, projection, BatchNorm"),
    Case(FLAX, "examples/sst2/model.py", "Embedding", ("2,8:int32",), {"num_embeddings": 20, "features": 8},
         kind="embedding"),
    Case(FLAX, "examples/sst2/model.py", "MLP", ("2,8",),
         {"hidden_size": 16, "output_size": 3, "dropout": 0.5}, kind="MLP, dropout"),
    Case(FLAX, "examples/sst2/model.py", "LSTMClassifier", ("2,5,8", "2:int32"),
         {"hidden_size": 8, "output_size": 3, "dropout": 0.5, "emb_dropout": 0.5},
         kind="recurrent (LSTM)"),
    Case(FLAX, "examples/graph/models.py", "MLP", ("2,8",), {"features": 4}, kind="MLP (graph example)"),
    Case(FLAX, "examples/lm1b/models.py", "Embed", ("2,8:int32",), {"num_embeddings": 20, "features": 16},
         kind="embedding"),
    Case(FLAX, "examples/lm1b/models.py", "MlpBlock", ("2,8,16",), {"mlp_dim": 32, "dropout_rate": 0.2},
         kind="Transformer MLP block, dropout"),
    Case(FLAX, "examples/nlp_seq/models.py", "Embed", ("2,8:int32",), {"num_embeddings": 20, "features": 16},
         kind="embedding"),
    Case(FLAX, "examples/nlp_seq/models.py", "AddPositionEmbs", ("2,8,16",), {"max_len": 16},
         kind="position embeddings"),
    Case(FLAX, "examples/nlp_seq/models.py", "MlpBlock", ("2,8,16",), {"mlp_dim": 32, "dropout_rate": 0.2},
         kind="Transformer MLP block, dropout"),
    Case(FLAX, "examples/lm1b/models.py", "TransformerLM", ("2,8:int32",),
         {"vocab_size": 20, **_LRA_SMALL}, kind="Transformer LM, attention"),
    # google/init2winit
    Case(I2W, "init2winit/model_lib/simple_cnn.py", "SimpleCNN", ("2,16,16,3",),
         {"num_outputs": 10, "num_filters": [4, 8], "kernel_sizes": [3, 3], "activation_function": "relu"},
         kind="CNN"),
    Case(I2W, "init2winit/model_lib/convolutional_autoencoder.py", "ConvAutoEncoder", ("2,16,16,3",),
         {"output_shape": [16, 16, 3],
          "encoder": {"filter_sizes": [4], "kernel_sizes": [[3, 3]], "kernel_paddings": ["SAME"],
                      "window_sizes": [[2, 2]], "window_paddings": ["SAME"], "strides": [[2, 2]],
                      "activations": ["relu"]},
          "decoder": {"filter_sizes": [3], "kernel_sizes": [[3, 3]], "window_sizes": [[2, 2]],
                      "paddings": ["SAME"], "activations": ["relu"]}},
         kind="convolutional autoencoder"),
    Case(I2W, "init2winit/model_lib/wide_resnet.py", "WideResnet", ("2,32,32,3",),
         {"blocks_per_group": 1, "channel_multiplier": 1, "num_outputs": 10, "dropout_rate": 0.3},
         kind="WideResNet, BatchNorm, dropout"),
    Case(I2W, "init2winit/model_lib/adabelief_vgg.py", "VGG", ("2,32,32,3",),
         {"num_layers": 11, "num_outputs": 10, "normalizer": "batch_norm"}, kind="VGG, BatchNorm"),
    Case(I2W, "init2winit/model_lib/adabelief_resnet.py", "ResNet", ("2,32,32,3",),
         {"num_outputs": 10, "num_filters": 4, "num_layers": 18}, kind="ResNet, BatchNorm"),
    Case(I2W, "init2winit/model_lib/mlperf_resnet.py", "ResNet", ("2,32,32,3",),
         {"num_classes": 10, "num_filters": 4, "num_layers": 18}, kind="ResNet, BatchNorm"),
    Case(I2W, "init2winit/model_lib/max_pooling_cnn.py", "MaxPoolingCNN", ("2,16,16,3",),
         {"num_outputs": 10, "num_filters": [4, 8], "kernel_sizes": [3, 3], "kernel_paddings": ["SAME", "SAME"],
          "window_sizes": [2, 2], "window_paddings": ["SAME", "SAME"], "strides": [2, 2],
          "num_dense_units": [16], "activation_fn": "relu", "normalizer": "batch_norm"},
         kind="CNN, max pooling, BatchNorm"),
    Case(I2W, "init2winit/model_lib/model_utils.py", "ScalarMultiply", ("2,4",), kind="learned scalar scale"),
    Case(I2W, "init2winit/model_lib/transformer_lm.py", "Embed", ("2,8:int32",),
         {"num_embeddings": 20, "features": 16}, kind="embedding"),
    Case(I2W, "init2winit/model_lib/transformer_lm.py", "MlpBlock", ("2,8,16",),
         {"mlp_dim": 32, "dropout_rate": 0.2}, kind="Transformer MLP block, dropout"),
    Case(I2W, "init2winit/model_lib/xformer_translate.py", "MlpBlock", ("2,8,16",),
         {"mlp_dim": 32, "dropout_rate": 0.2}, kind="Transformer MLP block, dropout"),
    Case(I2W, "init2winit/model_lib/nqm.py", "NQMLoss", ("2,4", "4,4", "4,4"), {},
         kind="noisy quadratic model"),
    # google-research/long-range-arena
    Case(LRA, "lra_benchmarks/models/layers/common_layers.py", "Embed", ("2,8:int32",),
         {"num_embeddings": 20, "features": 16}, kind="embedding"),
    Case(LRA, "lra_benchmarks/models/transformer/transformer.py", "TransformerEncoder",
         ("2,8:int32",), {"vocab_size": 20, **_LRA_SMALL}, kind="Transformer encoder"),
    Case(LRA, "lra_benchmarks/models/transformer/transformer.py", "TransformerBlock",
         ("2,8,16",), {"qkv_dim": 16, "mlp_dim": 32, "num_heads": 2}, kind="Transformer block"),
    Case(LRA, "lra_benchmarks/models/local/local.py", "LocalTransformerEncoder",
         ("2,8:int32",), {"vocab_size": 20, "block_size": 4, **_LRA_SMALL}, kind="Transformer encoder (local)"),
    Case(LRA, "lra_benchmarks/models/sinkhorn_transformer/sinkhorn_transformer.py", "SinkhornTransformerEncoder",
         ("2,8:int32",), {"vocab_size": 20, "block_size": 4, **_LRA_SMALL},
         kind="Transformer encoder (Sinkhorn)"),
    Case(LRA, "lra_benchmarks/models/synthesizer/synthesizer.py", "SynthesizerEncoder",
         ("2,8:int32",), {"vocab_size": 20, **_LRA_SMALL}, kind="Transformer encoder (Synthesizer)"),
    Case(LRA, "lra_benchmarks/models/performer/performer.py", "PerformerEncoder",
         ("2,8:int32",), {"vocab_size": 20, **_LRA_SMALL}, kind="Transformer encoder (Performer, random features)"),
    Case(LRA, "lra_benchmarks/models/linformer/linformer.py", "LinformerEncoder",
         ("2,8:int32",), {"vocab_size": 20, **_LRA_SMALL}, kind="Transformer encoder (Linformer)"),
    Case(LRA, "lra_benchmarks/models/reformer/reformer.py", "ReformerEncoder",
         ("2,8:int32",), {"vocab_size": 20, **_LRA_SMALL}, kind="Transformer encoder (Reformer)"),
    Case(LRA, "lra_benchmarks/models/layers/common_layers.py", "MlpBlock", ("2,8,16",),
         {"mlp_dim": 32, "dropout_rate": 0.2}, kind="Transformer MLP block, dropout"),
    Case(LRA, "lra_benchmarks/models/layers/common_layers.py", "AddPositionEmbs", ("2,8,16",),
         {"max_len": 16}, kind="position embeddings"),
    Case(LRA, "lra_benchmarks/models/linear_transformer/linear_attention.py", "LinearAttention",
         ("2,8,16", "2,8,16"), {"num_heads": 2, "qkv_features": 16}, kind="attention (linear)"),
    Case(LRA, "lra_benchmarks/models/linformer/linformer_attention.py", "LinformerAttention",
         ("2,8,16", "2,8,16"), {"num_heads": 2, "qkv_features": 16, "low_rank_features": 4, "max_len": 8},
         kind="attention (Linformer)"),
    Case(LRA, "lra_benchmarks/models/linear_transformer/linear_transformer.py", "LinearTransformerEncoder",
         ("2,8:int32",), {"vocab_size": 20, **_LRA_SMALL}, kind="Transformer encoder"),
    Case(LRA, "lra_benchmarks/models/longformer/longformer.py", "LongformerEncoder",
         ("2,8:int32",), {"vocab_size": 20, "sliding_window_size": 4, **_LRA_SMALL},
         kind="Transformer encoder (Longformer)"),
    Case(LRA, "lra_benchmarks/models/bigbird/bigbird.py", "BigBirdEncoder",
         ("2,8:int32",), {"vocab_size": 20, "block_size": 2, **_LRA_SMALL}, kind="Transformer encoder (BigBird)"),
    # google-research/rigl
    Case(RIGL, "rigl/experimental/jax/models/mnist_fc.py", "MNISTFC", ("2,28,28,1",),
         {"num_classes": 10, "features": [16, 16], "dropout_rate": 0.2}, kind="MLP, masked, dropout"),
    Case(RIGL, "rigl/experimental/jax/models/mnist_cnn.py", "MNISTCNN", ("2,28,28,1",),
         {"num_classes": 10, "filters": [4, 8], "dense_size": 16}, kind="CNN, masked, BatchNorm"),
    Case(RIGL, "rigl/experimental/jax/models/cifar10_cnn.py", "CIFAR10CNN", ("2,32,32,3",),
         {"num_classes": 10, "filters": [4, 4, 8, 8, 8, 8]}, kind="CNN, masked, BatchNorm"),
    # markusschmitt/vmc_jax: complex-valued and physics models
    Case(VMC, "jVMC/nets/rbm.py", "RBM", ("2,6:int32",), {"numHidden": 4}, kind="RBM (physics)"),
    Case(VMC, "jVMC/nets/rbm.py", "CpxRBM", ("2,6:int32",), {"numHidden": 4},
         kind="complex RBM (user initializer)"),
    Case(VMC, "jVMC/nets/ffn.py", "FFN", ("2,6:int32",), {"layers": [4, 4]}, kind="feed-forward (physics)"),
    Case(VMC, "jVMC/nets/rnn.py", "RNNCell", ("2,4", "2,2"), {"hiddenSize": 4}, kind="recurrent cell"),
    Case(VMC, "jVMC/nets/cnn.py", "CNN", ("6:int32",), {"F": [3], "channels": [4], "strides": [1]},
         kind="CNN, periodic padding (physics)"),
    Case(VMC, "jVMC/nets/rnn.py", "RNN", ("6:int32",), {"L": 6, "hiddenSize": 4}, kind="RNN (scan, physics)"),
    Case(VMC, "jVMC/nets/lstm.py", "LSTM", ("6:int32",), {"L": 6, "hiddenSize": 4}, kind="LSTM (scan, physics)"),
    Case(VMC, "jVMC/nets/lstm.py", "LSTMCell", ("2,4", "2,2"), {}, kind="recurrent cell (LSTM)"),
    # mlcommons training results v0.7 and v1.0 (MLPerf ResNet-50, 3D U-Net layers)
    Case(ML07, _ML07_RESNET, "ResidualBlock", ("2,8,8,16",), {"filters": 4}, kind="ResNet bottleneck, BatchNorm"),
    Case(ML07, _ML07_RESNET, "ResNet", ("4,64,64,3",), {"num_classes": 10, "num_filters": 4},
         kind="ResNet-50, BatchNorm"),
    Case(ML07, _ML07_RESNET, "FakeResNet", ("2,8,8,3",), {"num_classes": 10}, kind="BatchNorm + Dense"),
    Case(ML07, _ML07_SSD, "ResidualBlock", ("2,8,8,4",), {"filters": 4, "parameters": {"dtype": "float32"}},
         kind="ResNet-34 block, BatchNorm (SSD)"),
    Case(ML07, _ML07_SSD, "ResNet", ("2,32,32,3",),
         {"num_classes": 10, "num_filters": 4, "parameters": {"dtype": "float32"}}, kind="ResNet-34 backbone (SSD)"),
    Case(ML10, _ML10_RESNET, "ResNet", ("4,64,64,3",), {"num_classes": 10, "num_filters": 4},
         kind="ResNet-50, BatchNorm"),
    Case(ML10, _ML10_UNET, "InstanceNorm", ("2,4,4,4,3",), kind="instance normalization (3D)"),
    Case(ML10, _ML10_UNET, "ConvBlockFactory", ("2,8,8,8,2",),
         {"in_channels": 2, "out_channels": 4, "normalization": "none", "activation": "relu"},
         kind="3D conv block"),
    Case(ML10, _ML10_UNET, "OutputLayer", ("2,8,8,8,4",), {"in_channels": 4, "n_class": 3},
         kind="3D 1x1 conv"),
    Case(ML10, _ML10_RESNET, "ResidualBlock", ("2,8,8,16",), {"filters": 4}, kind="ResNet bottleneck, BatchNorm"),
    Case(ML10, "Google/benchmarks/unet3d/implementations/unet3d-preview-JAX-tpu-v4-1024/models/layers.py",
         "InputBlock", ("2,8,8,8,1",), dict(_UNET, in_channels=1, out_channels=4),
         kind="3D conv block, instance norm"),
    Case(ML10, "Google/benchmarks/unet3d/implementations/unet3d-preview-JAX-tpu-v4-1024/models/layers.py",
         "DownsampleBlock", ("2,8,8,8,2",), dict(_UNET, in_channels=2, out_channels=4),
         kind="3D conv block, stride 2"),
)
