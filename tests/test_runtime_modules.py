"""Module definitions chosen at run time (LU201/LU202): the joined type, and
the definition followed across files by the name that holds it.  One file's
flow is in fixtures/rules/model_apply/runtime_modules; the programs
runtime_module_choice and runtime_module_two_files run both sides."""
from __future__ import annotations

from pathlib import Path

import pytest

from linen_upgrade.config import Config
from linen_upgrade.pipeline import rewrite_text, run
from linen_upgrade.registry import all_rules
from linen_upgrade.rules._usage_types import DEF, RUNTIME, ModuleRef, Ty, join

WIDE = Ty(DEF, ModuleRef("m.Wide", (("width", "4"),), def_var=(1, "wide")))
DEEP = Ty(DEF, ModuleRef("m.Deep", (("depth", "2"),)))
PLAIN = Ty(DEF, ModuleRef("m.Plain"))


def test_two_definitions_join_into_one_chosen_at_run_time():
    chosen = join(WIDE, DEEP)
    assert chosen == join(DEEP, WIDE)
    assert chosen.kind == DEF and chosen.ref.qual == RUNTIME
    assert not chosen.ref.portable  # it can only be named where it is held
    assert [c.qual for c in chosen.ref.choices] == ["m.Deep", "m.Wide"]
    assert all(c.def_var is None for c in chosen.ref.choices)
    assert join(join(WIDE, DEEP), PLAIN) == join(WIDE, join(DEEP, PLAIN))  # flat, whatever the order
    assert join(chosen, WIDE) == chosen


MODELS = '''\
import jax.numpy as jnp
from flax import nn


class Wide(nn.Module):
    def apply(self, x, width):
        return nn.Dense(x, width)


class Deep(nn.Module):
    def apply(self, x, depth):
        for _ in range(depth):
            x = nn.Dense(x, 3)
        return x


def make_module(arch):
    if arch == 'wide':
        return Wide.partial(width=4)
    return Deep.partial(depth=2)


def create_model(key, module):
    _, params = module.init_by_shape(key, [((1, 3), jnp.float32)])
    return nn.Model(module, params)


def build(key, arch):
    module = make_module(arch)
    _, params = module.init_by_shape(key, [((1, 3), jnp.float32)])
    return nn.Model(module, params)
'''

TRAIN = '''\
import jax
import jax.numpy as jnp
import models


def run(arch):
    module = models.make_module(arch)
    model = models.create_model(jax.random.PRNGKey(0), module)
    return model(jnp.ones((1, 3)))


def run_built(arch):
    model = models.build(jax.random.PRNGKey(0), arch)
    return model(jnp.ones((1, 3)))
'''


def _upgrade(tmp_path: Path) -> tuple[dict[str, str], list[str]]:
    (tmp_path / "models.py").write_text(MODELS)
    (tmp_path / "train.py").write_text(TRAIN)
    result = run(sorted(tmp_path.glob("*.py")), Config(), [r.id for r in all_rules()], jobs=1)
    out = {Path(r.path).name: r.new.decode() for r in result.results if r.new is not None and r.error is None}
    findings = [f"{Path(r.path).name}:{f.line}: {f.rule} {f.message}" for r in result.results for f in r.findings]
    return out, findings


def test_definition_chosen_in_another_file_is_applied_by_the_name_holding_it(tmp_path):
    out, findings = _upgrade(tmp_path)
    # models.py initialises whatever its caller hands it; train.py applies its own `module`
    assert "params = module().init(key, jnp.zeros((1, 3), jnp.float32))['params']\n    return params\n" \
        in out["models.py"]
    assert "    return module().apply({'params': model}, jnp.ones((1, 3)))\n" in out["train.py"]
    # a Model made there from a definition chosen there: no name here holds it
    assert [f for f in findings if f.startswith("train.py")] == [
        "train.py:14: LU202 a call of a Model made in another file by a .partial whose keywords are known "
        "only there: build the Linen module there and hand it over with the params: convert by hand"]


def test_factory_of_several_classes_called_in_an_apply_splits_when_they_split_alike():
    src = '''\
from flax import nn


def get_norm(kind, train):
    if kind == 'batch':
        return nn.BatchNorm.partial(use_running_average=not train)
    return nn.LayerNorm.partial(epsilon=1e-5)


def get_raw_norm(kind):
    if kind == 'batch':
        return nn.BatchNorm
    return nn.LayerNorm


class Net(nn.Module):
    def apply(self, x, kind='batch', train=True):
        norm = get_norm(kind, train)
        raw = get_raw_norm(kind)
        return raw(norm(nn.Dense(x, 3)))
'''
    from linen_upgrade.pipeline import rewrite_text

    result = rewrite_text(src.encode(), "net.py", Config(), [r.id for r in all_rules()])
    # both definitions take x alone: the call splits for either (rules/_factory_branches.py);
    # nn.BatchNorm alone needs use_running_average=False in Linen, which LayerNorm does not take:
    # one TODO at that call, naming the function
    assert [f.message.partition(":")[0] for f in result.findings] == ["raw calls what get_raw_norm(...) returns"]
    assert "raw(norm()(nn.Dense(3)(x)))" in result.new.decode()


def test_partial_of_run_time_keywords_checks_them_when_it_runs():
    """LU201's ``_module_partial`` (fixtures/rules/module_init/runtime_keywords): the keys a config
    gives at run time must all be Linen attributes; a call input among them fails loudly, not silently."""
    import pytest

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "rules" / "module_init" / "runtime_keywords.out.py"
    source = fixture.read_text(encoding="utf-8")
    space: dict = {}
    exec(compile(source.split("\ndef make(")[0], "runtime_keywords.out.py", "exec"), space)
    net = space["_module_partial"](space["Net"], width=3)()
    assert (net.width, net.depth) == (3, 1)
    deep = space["_module_partial"](space["Deep"], width=4)()  # a partial of a partial
    assert (deep.width, deep.depth) == (4, 3)
    with pytest.raises(TypeError, match=r"Net.partial: \['train'\] are call inputs"):
        space["_module_partial"](space["Net"], width=3, train=False)


HANDED = (Path(__file__).parent.parent / "fixtures" / "rules" / "model_apply"
          / "eval_step_handed_target.in.py").read_text()
NO_NAME = "no name bound once to it is visible here"


def _rewrite(source: str) -> str:
    result = rewrite_text(source.encode(), "train.py", Config(), [r.id for r in all_rules()])
    assert result.error is None, result.error
    return result.new.decode()


def test_eval_step_handed_the_target_gets_the_apply_fn_from_its_callers():
    out = _rewrite(HANDED)
    assert "def eval_step(model, batch, *, apply_fn):\n    return jnp.mean(apply_fn({'params': model}, batch))" in out
    assert "jax.pmap(partial(eval_step, apply_fn=optimizer.apply_fn), axis_name='batch')" in out
    assert "eval_step(optimizer.params, batches[0], apply_fn=optimizer.apply_fn)" in out
    assert "TODO" not in out


@pytest.mark.parametrize("change", [
    # a jitted step would be handed a function to trace
    ("def eval_step(model, batch):", "@jax.jit\ndef eval_step(model, batch):"),
    # a call this file does not see
    ("    return p_eval_step(", "    steps = [eval_step]\n    return p_eval_step("),
    # the step pmapped before the optimizer exists
    ("    optimizer = optim.Adam(learning_rate=0.1).create(model)\n    p_eval_step = jax.pmap(eval_step, axis_name='batch')\n",
     "    p_eval_step = jax.pmap(eval_step, axis_name='batch')\n    optimizer = optim.Adam(learning_rate=0.1).create(model)\n"),
    # the targets of two optimizers
    ("eval_step(optimizer.target, batches[0])\n", "eval_step(other.target, batches[0])\n"),
])
def test_eval_step_whose_callers_cannot_all_hand_the_apply_fn_keeps_the_todo(change):
    old, new = change
    assert old in HANDED
    source = HANDED.replace(old, new)
    if "other.target" in new:
        source = source.replace("    optimizer = optim.Adam(", "    other = optim.Adam(learning_rate=0.2).create(model)\n"
                                "    optimizer = optim.Adam(")
    out = _rewrite(source)
    assert "apply_fn=optimizer.apply_fn)" not in out and "*, apply_fn" not in out
    assert NO_NAME in out
