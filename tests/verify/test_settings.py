"""[tool.linen-upgrade.verify] (pure python)."""
import textwrap

import pytest

from linen_upgrade.verify import settings
from linen_upgrade.verify.module import init_call_from_file


def test_parse_and_resolve_precedence(tmp_path):
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [tool.linen-upgrade.verify]
        train-steps = 3
        rtol = 1e-4
        platform = "cpu"
        legacy-python = "old/bin/python"

        [tool.linen-upgrade.verify.modules.CNN]
        input = ["1,28,28,1:float32"]
        kwargs = {num_classes = 10}
        shared = {"7" = "Dense"}
        optimizer = "make_opt"

        [tool.linen-upgrade.verify.modules."pkg/other.py:CNN"]
        input = "2,8,8,3"
        train_steps = 0
        """))
    vs = settings.load(tmp_path)
    assert vs.platform == "cpu" and vs.legacy_python == str(tmp_path / "old/bin/python")
    r = settings.resolve(vs, "CNN", str(tmp_path / "model.py"))
    assert r.inputs == [((1, 28, 28, 1), "float32")] and r.input_source == "config"
    assert r.kwargs == {"num_classes": 10} and r.shared == {"7": "Dense"}
    assert (r.train_steps, r.optimizer, r.rtol, r.atol) == (3, "make_opt", 1e-4, None)
    # flags win
    r = settings.resolve(vs, "CNN", None, inputs=[((2, 3), "int32")], kwargs={}, train_steps=0, rtol=1e-3)
    assert r.inputs == [((2, 3), "int32")] and r.input_source == "--input"
    assert (r.kwargs, r.train_steps, r.rtol) == ({}, 0, 1e-3)
    # a file-specific table wins over the plain name for that file only
    (tmp_path / "pkg").mkdir()
    r = settings.resolve(vs, "CNN", str(tmp_path / "pkg" / "other.py"))
    assert r.inputs == [((2, 8, 8, 3), "float32")] and r.train_steps == 0 and r.kwargs is None
    # unknown module: nothing from the module table, the top-level defaults stay
    r = settings.resolve(vs, "MLP", None)
    assert r.inputs is None and r.kwargs is None and r.train_steps == 3


@pytest.mark.parametrize("table,msg", [
    ({"modules": {"CNN": {"inputs": ["2,a"]}}}, "bad shape"),
    ({"modules": {"CNN": {"input": ["2,3"], "kwarg": {}}}}, "unknown key 'kwarg'"),
    ({"modules": {"CNN": {"kwargs": [1]}}}, "kwargs must be a table"),
    ({"train-steps": 1.5}, "train-steps must be an integer"),
    ({"platform": "metal"}, "platform must be one of"),
    ({"rtl": 1}, "unknown key 'rtl'"),
])
def test_parse_errors(table, msg):
    with pytest.raises(settings.VerifyConfigError, match=msg):
        settings.parse(table)


def test_bad_pyproject_is_a_verify_config_error(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.linen-upgrade.verify\n")
    with pytest.raises(settings.VerifyConfigError, match="cannot read"):
        settings.load(tmp_path)


def test_init_call_reads_partial_keywords(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(textwrap.dedent("""
        SHAPE = (2, 7)
        model_def = Net.partial(classes=4, act="relu")
        def create(key):
            _, p = model_def.partial(depth=2).init_by_shape(key, [(SHAPE, jnp.float32)])
        """))
    assert init_call_from_file(str(f), "Net") == ([((2, 7), "float32")],
                                                  {"classes": 4, "act": "relu", "depth": 2})
    assert init_call_from_file(str(f), "Other") is None
