"""Module identity by path and scoped names (``linen_upgrade/analysis``):
two files that share a name are two modules, imports reach the file Python
would load (namespace packages, re-exports, import roots above the run), and
a name bound in a local scope is not the import it shadows."""
from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from linen_upgrade.analysis.identity import ModuleTable
from linen_upgrade import pipeline
from linen_upgrade.config import Config
from linen_upgrade.pipeline import run
from linen_upgrade.registry import all_rules

PROGRAMS = Path(__file__).parent.parent / "fixtures" / "programs"


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _upgrade(root: Path) -> dict[str, tuple[str, list[str]]]:
    result = run(sorted(root.rglob("*.py")), Config(), [r.id for r in all_rules()], jobs=1)
    out = {}
    for r in result.results:
        assert r.error is None, r.error
        out[Path(r.path).relative_to(root).as_posix()] = (
            (r.new or r.original).decode(), [f"{f.rule} {f.message}" for f in r.findings])
    return out


MLP_A = """\
    from flax import nn


    class MLP(nn.Module):
      def apply(self, x, hidden=16):
        return nn.relu(nn.Dense(x, hidden))
    """
MLP_B = """\
    from flax import nn


    class MLP(nn.Module):
      def apply(self, x, width):
        return nn.Dense(x, width * 2)
    """
TRAIN = """\
    import jax
    import jax.numpy as jnp
    from flax import nn
    import models


    class Head(nn.Module):
      def apply(self, x):
        return models.MLP(x, {kw})
    """


def test_same_named_files_in_two_folders_are_two_modules(tmp_path):
    _write(tmp_path, {"exp_a/models.py": MLP_A, "exp_b/models.py": MLP_B,
                      "exp_a/train.py": TRAIN.format(kw="hidden=4"), "exp_b/train.py": TRAIN.format(kw="width=3")})
    files = _upgrade(tmp_path)
    a, b = files["exp_a/models.py"][0], files["exp_b/models.py"][0]
    assert "  hidden: int = 16\n" in a and "width" not in a
    assert "nn.Dense(self.hidden)(x)" in a
    assert "  width: Any\n" in b and "hidden" not in b
    # each train.py calls its own folder's class, by that class's signature
    assert "return models.MLP(hidden=4)(x)" in files["exp_a/train.py"][0]
    assert "return models.MLP(width=3)(x)" in files["exp_b/train.py"][0]
    assert all(findings == [] for _, findings in files.values())


def test_namespace_package_and_star_reexport(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "from .layers import *\n",
        "pkg/layers.py": """\
            from flax import nn

            __all__ = ['Block']


            class Block(nn.Module):
              def apply(self, x, features, scale=2.0):
                return nn.Dense(x, features) * scale
            """,
        # exp/ has no __init__.py: a PEP 420 namespace package seen from main.py
        "exp/net.py": """\
            from flax import nn
            from pkg import Block


            class Net(nn.Module):
              def apply(self, x):
                return Block(x, 2, scale=1.0)
            """,
        "main.py": """\
            from flax import nn
            from exp import net


            class Top(nn.Module):
              def apply(self, x):
                return net.Net(x)
            """,
    })
    files = _upgrade(tmp_path)
    assert "return Block(2, scale=1.0)(x)" in files["exp/net.py"][0]
    assert "return net.Net()(x)" in files["main.py"][0]
    assert files["exp/net.py"][1] == [] and files["main.py"][1] == []


def _layers_and_net(folder: str, imported_as: str) -> dict[str, str]:
    """``layers.py`` with a legacy class, and ``net.py`` calling it through ``from <imported_as> import layers``."""
    return {
        f"{folder}layers.py": """\
            from flax import nn


            class AddPos(nn.Module):
              def apply(self, x, scale=1.0):
                return x * scale
            """,
        f"{folder}net.py": f"""\
            from flax import nn
            from {imported_as} import layers


            class Net(nn.Module):
              def apply(self, x):
                return layers.AddPos(x, scale=2.0)
            """,
    }


def test_import_root_above_the_run(tmp_path):
    """Run on ``lra/models/`` while its files import ``lra.models.layers``."""
    _write(tmp_path, _layers_and_net("lra/models/", "lra.models"))
    files = _upgrade(tmp_path / "lra" / "models")
    assert "return layers.AddPos(scale=2.0)(x)" in files["net.py"][0]


def test_call_of_a_converted_class_through_an_unresolved_import_gets_a_todo(tmp_path):
    _write(tmp_path, _layers_and_net("", "some_installed_package"))
    text, findings = _upgrade(tmp_path)["net.py"]
    assert "return layers.AddPos(x, scale=2.0)" in text  # not ours to convert, and not silent
    assert any(f.startswith("LU901 layers.AddPos resolves to `some_installed_package.layers.AddPos`")
               and "(layers.py)" in f for f in findings), findings  # the file named relative to this one


@pytest.mark.parametrize("body", [
    "def g(jax, f, a):\n  return jax.tree_multimap(f, a)\n",
    "def g(f, a):\n  jax = a\n  return jax.tree_multimap(f, a)\n",
    "def g(f, a):\n  return [jax.tree_multimap(f, b) for jax in a]\n",
    "g = lambda jax, f, a: jax.tree_multimap(f, a)\n",
], ids=["parameter", "local", "comprehension", "lambda"])
def test_a_local_name_that_shadows_an_import_is_not_the_import(tmp_path, body):
    source = "from flax import nn\nimport jax\n\n\n" + body + "\n\ndef h(f, a):\n  return jax.tree_multimap(f, a)\n"
    _write(tmp_path, {"m.py": source})
    text, _ = _upgrade(tmp_path)["m.py"]
    assert body in text  # the shadowed use stays as written
    assert "def h(f, a):\n  return jax.tree_util.tree_map(f, a)\n" in text


def test_fixture_programs_as_one_tree_convert_as_each_alone(tmp_path):
    tree, alone = tmp_path / "tree", tmp_path / "alone"
    for program in sorted(p for p in PROGRAMS.iterdir() if p.is_dir()):
        shutil.copytree(program, tree / program.name)
        shutil.copytree(program, alone / program.name)
    together = _upgrade(tree)
    for program in sorted(alone.iterdir()):
        for name, (text, findings) in _upgrade(program).items():
            assert together[f"{program.name}/{name}"] == (text, findings), f"{program.name}/{name}"


def test_the_run_folder_named_in_its_own_imports(tmp_path):
    """Run on ``pkg/`` (no ``__init__.py``) whose files import ``pkg.layers``: the whole import read
    from the folder above the run is the run's ``layers``."""
    _write(tmp_path, _layers_and_net("pkg/", "pkg"))
    files = _upgrade(tmp_path / "pkg")
    assert "return layers.AddPos(scale=2.0)(x)" in files["net.py"][0]


MODEL_TO_PLAIN_FILE = {
    "util.py": """\
        import jax


        def count(model):
          return sum(x.size for x in jax.tree_util.tree_leaves(model.params))
        """,
    "train.py": """\
        import jax
        import jax.numpy as jnp
        from flax import nn
        from pkg import util


        class Net(nn.Module):
          def apply(self, x):
            return nn.Dense(x, 3)


        def main():
          _, params = Net.init_by_shape(jax.random.PRNGKey(0), [((1, 2), jnp.float32)])
          model = nn.Model(Net, params)
          print(util.count(model))
        """,
}


def test_a_model_passed_to_a_file_without_flax_is_read_there(tmp_path):
    """``util.count(model)`` where util.py never names flax: train.py (flax.nn) imports it, so the run
    reads it (``pipeline._model_reach``) and its ``model.params`` becomes the params the caller hands."""
    _write(tmp_path, {f"pkg/{name}": text for name, text in MODEL_TO_PLAIN_FILE.items()})
    files = _upgrade(tmp_path / "pkg")
    assert files["util.py"] == ("import jax\n\n\ndef count(model):\n"
                                "  return sum(x.size for x in jax.tree_util.tree_leaves(model))\n", [])
    text, findings = files["train.py"]
    assert "model = params" in text and "print(util.count(model))" in text
    assert findings == []


def test_a_model_passed_to_a_file_without_flax_past_the_reach_cap_gets_a_todo(tmp_path, monkeypatch):
    """Where the run does not read such a file (a library every file imports: past the cap, as
    ``_optim_reach``), its ``model.params`` stays; the caller, whose Model became its params, says so."""
    monkeypatch.setattr(pipeline, "_OPTIM_REACH_CAP", 0)
    _write(tmp_path, {f"pkg/{name}": text for name, text in MODEL_TO_PLAIN_FILE.items()})
    files = _upgrade(tmp_path / "pkg")
    assert "util.py" not in files  # not read, not written
    text, findings = files["train.py"]
    assert "model = params" in text
    assert findings == ["LU202 a Model (now its params) is passed to util.count (another file, which this run "
                        "does not read: it uses no flax): apply the Linen module there with {'params': ...}"]


def test_a_model_passed_to_a_file_without_flax_that_an_optimizer_file_reads_is_read_there(tmp_path):
    """The same where train.py also uses flax.optim: util.py is read for the Model as well as for
    optimizers (``optim_reach``), so its ``model.params`` converts and the caller needs no TODO."""
    train = MODEL_TO_PLAIN_FILE["train.py"].replace("from flax import nn", "from flax import nn, optim") \
        .replace("print(util.count(model))\n", "print(util.count(model))\n"
                 "          optimizer = optim.GradientDescent(0.1).create(model)\n"
                 "          print(optimizer.target(jnp.ones((1, 2))))\n")
    _write(tmp_path, {"pkg/util.py": MODEL_TO_PLAIN_FILE["util.py"], "pkg/train.py": train})
    files = _upgrade(tmp_path / "pkg")
    text, findings = files["train.py"]
    assert "print(util.count(model))" in text and "Net().apply({'params': optimizer.params}" in text
    assert findings == []
    assert "tree_leaves(model))" in files["util.py"][0] and files["util.py"][1] == []


MODEL_TO_FLAX_HELPER = {
    "stats.py": """\
        from flax import traverse_util


        def count(model):
          return len(traverse_util.flatten_dict(model.params))
        """,
    "models.py": """\
        import jax
        import jax.numpy as jnp
        from flax import nn


        class Net(nn.Module):
          def apply(self, x):
            return nn.Dense(x, 3)


        def create():
          _, params = Net.init_by_shape(jax.random.PRNGKey(0), [((1, 2), jnp.float32)])
          return nn.Model(Net, params)
        """,
    "main.py": """\
        from flax import nn
        from pkg import models
        from pkg import stats as st


        def main():
          print(st.count(models.create()))
        """,
}


def test_a_model_passed_to_a_flax_helper_the_prefilter_skips_is_read_there(tmp_path):
    """stats.py names flax (traverse_util) but nothing the prefilter looks for, and main.py, which
    does nothing to the Model but hand it over, is not walked by LU202: before, neither file said
    anything while main handed stats.count the params and stats read ``.params`` of them."""
    _write(tmp_path, {f"pkg/{name}": text for name, text in MODEL_TO_FLAX_HELPER.items()})
    files = _upgrade(tmp_path / "pkg")
    assert files["stats.py"] == ("from flax import traverse_util\n\n\ndef count(model):\n"
                                 "  return len(traverse_util.flatten_dict(model))\n", [])
    assert "return params" in files["models.py"][0]


def test_table_names_files_by_path(tmp_path):
    _write(tmp_path, {"a/train.py": "", "b/train.py": "", "pkg/__init__.py": "", "pkg/sub/m.py": "",
                      "v0.7/x.py": ""})
    table = ModuleTable.build(str(p) for p in tmp_path.rglob("*.py"))
    assert sorted(table.paths) == ["a.train", "b.train", "pkg", "pkg.sub.m", "v0_7.x"]
    resolve = table.resolver(str(tmp_path / "a" / "train.py"))
    assert resolve("train") == "a.train"  # a script's own folder first
    assert resolve("pkg.sub.m") == "pkg.sub.m"  # then the folders above it
    assert resolve("flax.nn") == "flax.nn"  # outside the run keeps its name


def test_a_folder_named_like_a_standard_module_is_still_the_run(tmp_path):
    """``systems/models.py`` is named ``systems.models``: not ``sys``, whose calls say nothing about
    a module's signature, so what its callers pass still decides the inputs."""
    _write(tmp_path, {
        "systems/models.py": """\
            from flax import nn


            class Net(nn.Module):
              def apply(self, x, shift=0.0):
                return nn.Dense(x, 3) + shift
            """,
        "train.py": """\
            import jax.numpy as jnp
            from flax import nn
            from systems.models import Net


            class Top(nn.Module):
              def apply(self, x):
                return Net(x, jnp.ones((3,)))
            """,
    })
    files = _upgrade(tmp_path)
    assert "def __call__(self, x, shift=0.0):" in files["systems/models.py"][0]
    assert "return Net()(x, jnp.ones((3,)))" in files["train.py"][0]



def _head(package: str) -> str:
    """A legacy module calling ``models.MLP`` imported from ``package``."""
    return f"""\
        from flax import nn
        from {package} import models


        class Head(nn.Module):
          def apply(self, x):
            return models.MLP(x, width=3)
        """

def test_a_notebook_beside_a_package_leaves_the_package_its_name(tmp_path):
    """``lib.ipynb`` beside ``lib/`` (google-research/vision_transformer ships ``vit_jax.ipynb``
    beside ``vit_jax/``) took the name ``lib``: ``from lib import models`` then resolved outside the
    run, and the calls of its modules stayed legacy with a TODO. Python imports the package (also
    before a ``lib.py`` beside it)."""
    _write(tmp_path, {
        "lib.py": "",
        "lib/__init__.py": "",
        "lib/models.py": MLP_B,
        "train.py": _head("lib"),
    })
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": ["from lib import models\n"]}
    (tmp_path / "lib.ipynb").write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4,
                                                    "nbformat_minor": 4}))
    table = ModuleTable.build(str(p) for p in tmp_path.rglob("*.*"))
    assert table.name(str(tmp_path / "lib" / "__init__.py")) == "lib"
    assert table.name(str(tmp_path / "lib.py")) != "lib" != table.name(str(tmp_path / "lib.ipynb"))
    assert table.resolver(str(tmp_path / "train.py"))("lib.models") == "lib.models"
    result = run(sorted(tmp_path.rglob("*.*")), Config(), [r.id for r in all_rules()], jobs=1)
    train = next(r for r in result.results if r.path.endswith("train.py"))
    assert "return models.MLP(width=3)(x)" in train.new.decode()
    assert train.findings == []


def test_a_package_checked_out_under_another_folder_name(tmp_path):
    """``import mypkg.nets.models`` in a checkout of ``mypkg`` named ``mypkg-main/`` (the corpus's
    ``google__init2winit/``, google-research/sam as ``google-research__sam/``): the names after the
    package's own reach the run's file when they name only one."""
    _write(tmp_path, {
        "mypkg-main/__init__.py": "",
        "mypkg-main/nets/__init__.py": "",
        "mypkg-main/nets/models.py": MLP_B,
        "mypkg-main/train.py": _head("mypkg.nets"),
    })
    files = _upgrade(tmp_path)
    assert "return models.MLP(width=3)(x)" in files["mypkg-main/train.py"][0]
    assert files["mypkg-main/train.py"][1] == []


def test_a_monorepo_path_kept_by_exported_code_reads_from_the_importer_folder(tmp_path):
    """Code exported from a monorepo keeps its internal imports (mlcommons' ``from
    REDACTED.tensorflow_models.mlperf.ssd_jax.nets import models`` in a file beside ``nets/``, in
    ``ssd-research-JAX-tpu/``): a deep import whose head no file or folder of the run bears reads from
    the importer's folder, the longest rest first, where the last name dropped is that folder by
    another name (ssd_jax); a shallow one (``keras.nets``) stays outside the run."""
    _write(tmp_path, {
        "ssd-research-JAX-tpu/nets/models.py": MLP_B,
        "ssd-research-JAX-tpu/arch.py": _head("REDACTED.tensorflow_models.mlperf.ssd_jax.nets"),
        "other/nets/models.py": MLP_A,
        "other/arch.py": _head("keras.nets"),
    })
    table = ModuleTable.build(str(p) for p in tmp_path.rglob("*.py"))
    resolve = table.resolver(str(tmp_path / "ssd-research-JAX-tpu" / "arch.py"))
    assert resolve("REDACTED.tensorflow_models.mlperf.ssd_jax.nets.models") == "ssd-research-JAX-tpu.nets.models"
    assert resolve("REDACTED.tensorflow_models.mlperf.ssd_jax.missing") == \
        "REDACTED.tensorflow_models.mlperf.ssd_jax.missing"
    assert table.resolver(str(tmp_path / "other" / "arch.py"))("keras.nets.models") == "keras.nets.models"
    files = _upgrade(tmp_path)
    assert "return models.MLP(width=3)(x)" in files["ssd-research-JAX-tpu/arch.py"][0]
    assert files["ssd-research-JAX-tpu/arch.py"][1] == []
    assert "outside this run" in " ".join(files["other/arch.py"][1])  # not MLP_A of other/nets


def test_an_installed_package_sharing_a_file_name_stays_outside(tmp_path):
    """``from official.nlp.modeling import layers`` (tf-models-official) in a file beside its own
    legacy ``layers.py`` is the installed package's: its head is no folder of the run, but no name
    it drops is the importer's folder either, so ``layers.Transformer(x, num_heads=4)`` is not
    rewritten as the run's legacy module -- nor ``bert/modeling.py`` reached by dropping
    ``transformers.models``, nor ``vision/layers.py`` by dropping ``official`` (no folder of the run
    is ``official`` by another name)."""
    transformer = """\
        from flax import nn


        class Transformer(nn.Module):
          def apply(self, x, num_heads):
            return nn.Dense(x, num_heads)
        """
    _write(tmp_path, {
        "proj/layers.py": transformer,
        "proj/bert/modeling.py": transformer,
        "proj/vision/blocks.py": transformer,
        "proj/train.py": """\
            from flax import nn
            from official.nlp.modeling import layers
            from official.vision import blocks
            from transformers.models.bert import modeling


            def encode(x):
              return layers.Transformer(x, num_heads=4) + modeling.Transformer(x, num_heads=2)


            def see(x):
              return blocks.Transformer(x, num_heads=1)
            """,
    })
    table = ModuleTable.build(str(p) for p in tmp_path.rglob("*.py"))
    resolve = table.resolver(str(tmp_path / "proj" / "train.py"))
    assert resolve("official.nlp.modeling.layers") == "official.nlp.modeling.layers"
    assert resolve("transformers.models.bert.modeling") == "transformers.models.bert.modeling"
    assert resolve("official.vision.blocks") == "official.vision.blocks"
    text, findings = _upgrade(tmp_path)["proj/train.py"]
    assert "layers.Transformer(x, num_heads=4) + modeling.Transformer(x, num_heads=2)" in text
    assert "blocks.Transformer(x, num_heads=1)" in text
    assert "outside this run" in " ".join(findings)


def test_a_class_of_a_folder_with_a_dash_is_imported_as_its_files_import_it(tmp_path):
    """Run over several folders, a file of ``my-exp/`` is ``my-exp.main``: a class of the module beside
    it that it does not import (a Model made by an imported function, applied here) is spelled as its
    imports write that module (``models.Critic``), not by its run name, which is no Python and made
    LU202 fail on the file (henry-prior/jax-rl's MPO.py, SAC.py, TD3.py in round seven's corpus)."""
    files = {
        "models.py": """\
            import jax.numpy as jnp
            from flax import nn


            class Critic(nn.Module):
                def apply(self, x):
                    return nn.Dense(x, 1)


            def build_critic(key, dim):
                _, params = Critic.init_by_shape(key, [((1, dim), jnp.float32)])
                return nn.Model(Critic, params)
            """,
        "main.py": """\
            import jax
            import jax.numpy as jnp

            from models import build_critic

            critic = build_critic(jax.random.PRNGKey(0), 3)
            print(critic(jnp.ones((2, 3))))
            """,
    }
    _write(tmp_path / "alone", files)
    _write(tmp_path / "tree" / "my-exp", files)
    _write(tmp_path / "tree" / "other", {"net.py": "from flax import nn\n\nclass Other(nn.Module):\n"
                                                   "    def apply(self, x):\n        return nn.Dense(x, 2)\n"})
    alone, tree = _upgrade(tmp_path / "alone"), _upgrade(tmp_path / "tree")
    assert "models.Critic().apply({'params': critic}" in alone["main.py"][0]
    assert tree["my-exp/main.py"] == alone["main.py"]
