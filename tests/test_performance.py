"""How much work a run does, never how long it takes (no timed assertions;
bench/bench.py measures): a run that parses nothing loads neither LibCST nor
any rule, the rule table is the rules/ folder, the parallel split by size
gives the serial results, and what a run reads of other files is never read
back by the next run."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from linen_upgrade.applicability import APPLIES
from linen_upgrade.config import Config
from linen_upgrade.pipeline import run
from linen_upgrade.registry import RULES, all_rules, select_ids
from test_optim_cross_file import MAIN, STEPS  # a two-file optimizer group

ROOT = Path(__file__).resolve().parent.parent

MODELS = '''\
from flax import nn


class Classifier(nn.Module):
    def apply(self, x, num_classes=2):
        return nn.Dense(x, num_classes)


def create_model(key, x):
    _, params = Classifier.partial(num_classes=3).init(key, x)
    return nn.Model(Classifier.partial(num_classes=3), params)
'''

# the same function, no longer returning a Model
MODELS_CHANGED = MODELS.replace("    return nn.Model(Classifier.partial(num_classes=3), params)\n",
                                "    return params\n")

TRAIN = '''\
import jax
import jax.numpy as jnp

import models

model = models.create_model(jax.random.PRNGKey(0), jnp.ones((2, 4)))
print(model(jnp.ones((2, 4))), model.params)
'''

_OUTPUTS = '''
import json, sys
from pathlib import Path
import pytest

from linen_upgrade.applicability import APPLIES
from linen_upgrade.config import Config
from linen_upgrade.pipeline import run
from linen_upgrade.registry import RULES
result = run(sorted(Path(sys.argv[1]).glob("*.py")), Config(), [i for i, _ in RULES], jobs=int(sys.argv[2]))
print(json.dumps({Path(r.path).name: [(r.new or r.original).decode(), [str(f) for f in r.findings], r.error]
                  for r in result.results}))
'''


def _outputs(folder: Path, jobs: int) -> dict:
    result = run(sorted(folder.glob("*.py")), Config(), [i for i, _ in RULES], jobs=jobs)
    return {Path(r.path).name: [(r.new or r.original).decode(), [str(f) for f in r.findings], r.error]
            for r in result.results}


def _outputs_fresh(folder: Path, jobs: int) -> dict:
    """The same in a new process: no state of this one can reach it."""
    proc = subprocess.run([sys.executable, "-c", _OUTPUTS, str(folder), str(jobs)],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(proc.stdout)


def test_rule_table_is_the_rules_folder_in_run_order():
    assert tuple((r.id, r.name) for r in all_rules()) == RULES
    assert select_ids(["LU2"], ["model_apply"]) == ["LU201"]
    assert select_ids([], []) == [r.id for r in all_rules()]


@pytest.mark.parametrize("source", [
    "import numpy as np\n\nx = np.ones(3)\n",  # no flax: not even read with ast
    # modern Flax: read with ast, no rule may apply (applicability), so LibCST stays unloaded
    "from flax import linen as nn\n\n\nclass M(nn.Module):\n    @nn.compact\n"
    "    def __call__(self, x):\n        return nn.Dense(3)(x)\n",
    # bytes that pass the prefilter (files.may_need_rewrite: "flax.nn" in a comment), facts that no rule applies to
    "from flax import linen as nn\n\n# was flax.nn.Dense before the upgrade\nlayer = nn.Dense(3)\n",
], ids=["plain", "modern-flax", "legacy-name-in-a-comment"])
def test_a_run_that_parses_nothing_loads_no_libcst_and_no_rule(tmp_path: Path, source: str):
    (tmp_path / "plain.py").write_text(source)
    # LibCST's own modules ('libcst.*'): `import libcst` alone may be a lazy module (resolve.py)
    probe = ("import sys\nfrom linen_upgrade.cli import main\ncode = main(['--check', sys.argv[1]])\n"
             "print(code, sorted(m for m in sys.modules if m.startswith(('libcst.', 'linen_upgrade.rules'))))")
    proc = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "plain.py")],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    assert proc.stdout.split("\n")[-2] == "0 []"


def test_a_batch_of_modern_files_starts_no_process_pool(tmp_path: Path):
    # a pre-commit hook's batch: -j at every core, files that only need reading
    paths = []
    for i in range(10):
        paths.append(tmp_path / f"plain{i}.py")
        paths[-1].write_text("from flax import linen as nn\n\nlayer = nn.Dense(3)\n" if i % 2 else "x = 1\n")
    probe = ("import sys\nfrom linen_upgrade.cli import main\ncode = main(['--check', '-j', '2', *sys.argv[1:]])\n"
             "print(code, 'concurrent.futures.process' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe, *map(str, paths)],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    assert proc.stdout.split("\n")[-2] == "0 False"


def test_no_rule_imports_libcst_matchers():
    # libcst.matchers alone takes about 0.2 s of CPU to import: every legacy file's start-up paid it
    probe = ("import sys\nfrom linen_upgrade.registry import all_rules\nall_rules()\n"
             "print(sorted(m for m in sys.modules if m.startswith('libcst.matchers')))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert proc.stdout.split("\n")[-2] == "[]"


def test_every_rule_says_where_it_applies_without_being_loaded():
    assert set(APPLIES) == {i for i, _ in RULES}


def test_parallel_split_by_size_gives_the_serial_results(tmp_path: Path):
    # more files than the pool threshold, of very different sizes, legacy and not
    for i in range(6):
        (tmp_path / f"models{i}.py").write_text(MODELS.replace("num_classes=3", f"num_classes={i + 3}") * (1 + i % 3))
        (tmp_path / f"train{i}.py").write_text(TRAIN.replace("import models", f"import models{i} as models"))
    (tmp_path / "plain.py").write_text("x = 1\n")
    serial = _outputs(tmp_path, 1)
    assert len(serial) == 12 and any("nn.Module" in text for text, _, _ in serial.values())
    assert _outputs(tmp_path, 2) == serial


def test_parallel_optimizer_groups_give_the_serial_results(tmp_path: Path):
    # the pool builds LU302's cross-file groups once, in its workers, and hands every worker
    # the result: groups that convert and groups that get the TODO in both files (a per-step
    # hyper-parameter optax.sgd has none of, decided for the group where the optimizer is made)
    for i in range(4):
        steps = STEPS if i % 2 else STEPS.replace("apply_gradient(grads)", "apply_gradient(grads, nesterov=False)")
        (tmp_path / f"main{i}.py").write_text(MAIN.replace("import steps", f"import steps{i} as steps"))
        (tmp_path / f"steps{i}.py").write_text(steps)
    (tmp_path / "models.py").write_text(MODELS)
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "plain.py").write_text("x = 1\n")
    serial = _outputs(tmp_path, 1)
    assert "apply_gradients(grads=grads)" in serial["steps1.py"][0]
    assert "TrainState.create" in serial["main1.py"][0]
    assert any("LU302" in f and "main0.py (passes its optimizer to train_step() here)" in f
               for f in serial["steps0.py"][1])
    assert any("LU302" in f and "steps0.py (steps0.train_step() receives this file's optimizer)" in f
               for f in serial["main0.py"][1])
    assert _outputs(tmp_path, 2) == serial


def test_what_a_run_read_of_another_file_is_not_read_back_by_the_next(tmp_path: Path):
    (tmp_path / "models.py").write_text(MODELS)
    (tmp_path / "train.py").write_text(TRAIN)
    first = _outputs(tmp_path, 1)
    (tmp_path / "models.py").write_text(MODELS_CHANGED)
    (tmp_path / "train.py").write_text(TRAIN)
    second = _outputs(tmp_path, 1)
    assert second["train.py"] != first["train.py"]  # train.py reads what models.py now returns
    assert second == _outputs_fresh(tmp_path, 1)


def test_a_flax_optim_file_defining_no_helper_name_reads_no_helper_source(tmp_path: Path):
    # the helpers' sources (inspect.getsource and a LibCST parse of each: about 49 ms a process)
    # are only needed to tell our copy from a user's definition of the same name
    (tmp_path / "train.py").write_text("from flax import optim\n\n\ndef weight(p):\n    return p\n\n\n"
                                       "opt = optim.Adam(0.1).create({'w': 1.0})\n")
    probe = ("import sys\nfrom linen_upgrade.cli import main\nmain(['--check', sys.argv[1]])\n"
             "from linen_upgrade.tables.optimizers import _source_of\nprint(_source_of.cache_info().currsize)")
    proc = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "train.py")],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    assert proc.stdout.split("\n")[-2] == "0"
