"""Key rules (pure python: no jax needed)."""
from pathlib import Path

import pytest

from linen_upgrade import keys


class A:  # a minimal array stand-in
    def __init__(self, shape):
        self.shape = tuple(shape)

    def reshape(self, shape):
        return A(shape)


def shapes(tree):
    return {k: shapes(v) if isinstance(v, dict) else v.shape for k, v in tree.items()}


def test_rename_level_counter_order_per_class():
    names = ["Conv_0", "BatchNorm_1", "Conv_2", "BatchNorm_3", "Block_4", "Dense_5", "head",
             "Dense_6", "7", "MultiHeadDotProductAttention_8"]
    m = keys.rename_level(names, shared={"7": "Dense"})
    assert [m[n] for n in names] == ["Conv_0", "BatchNorm_0", "Conv_1", "BatchNorm_1", "Block_0",
                                     "Dense_0", "head", "Dense_1", "Dense_2",
                                     "MultiHeadDotProductAttention_0"]


def test_rename_level_numeric_not_lexicographic_order():
    m = keys.rename_level(["Dense_10", "Dense_9", "Dense_2"])
    assert m == {"Dense_2": "Dense_0", "Dense_9": "Dense_1", "Dense_10": "Dense_2"}


def test_bare_number_without_class_is_an_error():
    with pytest.raises(keys.KeyConversionError, match="shared="):
        keys.rename_level(["Dense_0", "1"])


def test_explicit_names_kept_and_duplicates_detected():
    assert keys.rename_level(["layer_1", "Dense_0"], explicit={"layer_1"})["layer_1"] == "layer_1"
    with pytest.raises(keys.KeyConversionError, match="duplicate"):
        keys.rename_level(["Dense_3", "Dense_0"], explicit={"Dense_0"})


def test_convert_variables_full_model():
    params = {
        "Conv_0": {"kernel": A((3, 3, 3, 4)), "bias": A((4,))},
        "BatchNorm_1": {"scale": A((4,)), "bias": A((4,))},
        "BatchNorm_2": {},  # bias=False, scale=False: only state
        "Block_3": {"Dense_0": {"kernel": A((4, 4)), "bias": A((4,))},
                    "BatchNorm_1": {"scale": A((4,)), "bias": A((4,))}},
        "GroupNorm_4": {"scale": A((1, 1, 1, 4)), "bias": A((1, 1, 1, 4))},
        "head": {"kernel": A((4, 2)), "bias": A((2,))},
        "5": {"kernel": A((2, 2)), "bias": A((2,))},
        "MultiHeadDotProductAttention_6": {"query": {"kernel": A((2, 1, 2))}},
    }
    state = {"/BatchNorm_1": {"mean": A((4,)), "var": A((4,))},
             "/BatchNorm_2": {"mean": A((4,)), "var": A((4,))},
             "/Block_3/BatchNorm_1": {"mean": A((4,)), "var": A((4,))}}
    out = keys.convert_variables(params, state, shared={"5": "Dense"})
    assert shapes(out["params"]) == {
        "Conv_0": {"kernel": (3, 3, 3, 4), "bias": (4,)},
        "BatchNorm_0": {"scale": (4,), "bias": (4,)},
        "Block_0": {"Dense_0": {"kernel": (4, 4), "bias": (4,)}, "BatchNorm_0": {"scale": (4,), "bias": (4,)}},
        "GroupNorm_0": {"scale": (4,), "bias": (4,)},
        "head": {"kernel": (4, 2), "bias": (2,)},
        "Dense_0": {"kernel": (2, 2), "bias": (2,)},
        "MultiHeadDotProductAttention_0": {"query": {"kernel": (2, 1, 2)}},
    }
    assert shapes(out["batch_stats"]) == {
        "BatchNorm_0": {"mean": (4,), "var": (4,)}, "BatchNorm_1": {"mean": (4,), "var": (4,)},
        "Block_0": {"BatchNorm_0": {"mean": (4,), "var": (4,)}}}


def test_template_selects_selfattention_alias_and_reshapes():
    params = {"MultiHeadDotProductAttention_0": {"out": {"bias": A((4,))}},
              "norm": {"scale": A((1, 1, 4))}}
    template = {"params": {"SelfAttention_0": {"out": {"bias": A((4,))}}, "norm": {"scale": A((4,))}}}
    out = keys.convert_variables(params, template=template)
    assert shapes(out["params"]) == {"SelfAttention_0": {"out": {"bias": (4,)}}, "norm": {"scale": (4,)}}
    assert keys.compare_structure(out, template) == []


def test_template_keeps_explicit_names_that_look_auto_numbered():
    # flax's cifar10 shake-shake block: name='conv_a_1', 'conv_a_2', 'bn_a_2' (legacy keeps
    # them; the counter rule alone would renumber them conv_a_0, conv_a_1)
    params = {"conv_a_1": {"kernel": A((3,))}, "conv_a_2": {"kernel": A((3,))}, "Dense_3": {"kernel": A((2,))}}
    state = {"/bn_a_2": {"mean": A((3,))}}
    assert keys.convert_variables(params)["params"].keys() == {"conv_a_0", "conv_a_1", "Dense_0"}
    template = {"params": {"conv_a_1": {"kernel": A((3,))}, "conv_a_2": {"kernel": A((3,))},
                           "Dense_0": {"kernel": A((2,))}},
                "batch_stats": {"bn_a_2": {"mean": A((3,))}}}
    out = keys.convert_variables(params, state, template=template)
    assert keys.compare_structure(out, template) == []


def test_state_root_and_prefix():
    km = keys.build_key_map({}, {"/net/BatchNorm_3": {"mean": A((2,))}}, strip_state_prefix=("net",))
    assert shapes(km.convert_state({"/net/BatchNorm_3": {"mean": A((2,))}}, strip_prefix=("net",))) == \
        {"BatchNorm_0": {"mean": (2,)}}
    assert shapes(keys.build_key_map({}, {"/": {"mean": A((2,))}}).convert_state({"/": {"mean": A((2,))}})) == \
        {"mean": (2,)}


def test_compare_structure_reports_problems():
    probs = dict(keys.compare_structure({"params": {"a": {"bias": A((2,))}}},
                                        {"params": {"a": {"kernel": A((2, 2))}}}))
    assert "params/a/kernel" in probs and "params/a/bias" in probs


def test_param_dtypes_compared_state_not():
    def typed(shape, dtype):
        a = A(shape)
        a.dtype = dtype
        return a
    legacy = {"params": {"Dense_0": {"kernel": typed((2, 2), "float32"), "bias": typed((2,), "float64")}},
              "batch_stats": {"BatchNorm_0": {"mean": typed((2,), "float64")}}}
    upgraded = {"params": {"Dense_0": {"kernel": typed((2, 2), "float64"), "bias": typed((2,), "float64")}},
                "batch_stats": {"BatchNorm_0": {"mean": typed((2,), "float32")}}}
    assert keys.compare_param_dtypes(legacy, upgraded) == [
        ("params/Dense_0/kernel", "dtype float32 (legacy) != float64 (upgraded)")]


def test_keys_module_imports_without_jax():
    import subprocess
    import sys
    code = "import linen_upgrade.keys, sys; assert 'jax' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(Path(__file__).resolve().parents[2]))
