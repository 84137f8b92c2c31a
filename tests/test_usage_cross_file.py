"""The usage rules across files: a file that never imports flax.nn uses a Model
built in another file of the run (real_code_patterns.md #2), and is
converted with its producer."""
from __future__ import annotations

from pathlib import Path

import pytest

from linen_upgrade.config import Config
from linen_upgrade.pipeline import run
from linen_upgrade.registry import all_rules

MODELS = '''\
from flax import nn


class Classifier(nn.Module):
    def apply(self, x, num_classes=2, train=True):
        x = nn.Dense(x, num_classes)
        return nn.BatchNorm(x, use_running_average=not train)


def create_model(key, x):
    model_def = Classifier.partial(num_classes=3)
    with nn.stateful() as state:
        _, params = model_def.init(key, x)
    return nn.Model(model_def, params), state


def predict(model, x):
    return model(x, train=False)


def create_model_for(key, x, classes):
    model_def = Classifier.partial(num_classes=classes)
    _, params = model_def.init(key, x)
    return nn.Model(model_def, params)
'''

TRAIN = '''\
import jax
import jax.numpy as jnp

import models
from models import create_model_for


def evaluate(model, x):
    return model(x, train=False)


model, state = models.create_model(jax.random.PRNGKey(0), jnp.ones((2, 4)))
print(sorted(model.params), evaluate(model, jnp.ones((2, 4))))
print(models.predict(model, jnp.ones((2, 4))))
other = create_model_for(jax.random.PRNGKey(0), jnp.ones((2, 4)), 5)
print(other(jnp.ones((2, 4))))
'''


def _upgrade(tmp_path: Path) -> dict[str, tuple[str, list[str]]]:
    return _upgrade_files(tmp_path, {"models.py": MODELS, "train.py": TRAIN})


def test_model_from_another_file_is_applied_there(tmp_path):
    files = _upgrade(tmp_path)
    models, models_findings = files["models.py"]
    assert models_findings == []
    assert "return params, state" in models
    assert "variables = model_def().init(key, x)" in models
    train, findings = files["train.py"]
    # the module definition travels with its literal keywords; no nn.stateful is around the call, so
    # BatchNorm's collection is mutable and its updates dropped, as legacy kept none (model_apply)
    assert ("return models.Classifier(num_classes=3).apply({'params': model}, x, train=False, "
            "mutable=['batch_stats'])[0]") in train
    assert "print(sorted(model), evaluate(model, jnp.ones((2, 4))))" in train


def test_definition_with_keywords_known_only_there_gets_a_todo(tmp_path):
    train, findings = _upgrade(tmp_path)["train.py"]
    # num_classes=classes is a parameter of create_model_for: not writable in train.py
    assert "print(other(jnp.ones((2, 4))))" in train
    assert any(f.startswith("LU202 ") and "known only there" in f for f in findings), findings


def test_model_handed_to_a_function_of_another_file_is_applied_there(tmp_path):
    """models.py never calls predict with a Model, train.py does: the index says who imports
    models (``ProjectIndex.importers``/``referrers``), models.py reads what train.py passes,
    and both agree: the callee applies the Linen module, the caller passes the params."""
    files = _upgrade(tmp_path)
    models, findings = files["models.py"]
    assert findings == []
    assert "    return Classifier(num_classes=3).apply({'params': model}, x, train=False, mutable=['batch_stats'])[0]" in models
    train, _ = files["train.py"]
    assert "print(models.predict(model, jnp.ones((2, 4))))" in train


def test_index_knows_importers_and_referrers(tmp_path):
    from linen_upgrade.engine import facts_for
    from linen_upgrade.index import ProjectIndex

    index = ProjectIndex.build([facts_for(MODELS.encode(), "models.py", "models"),
                                facts_for(TRAIN.encode(), "train.py", "train")])
    assert index.importers == {"models": {"train"}}
    assert index.referrers["models.predict"] == {"train"}
    assert index.referrers["models.create_model_for"] == {"train"}


TRAINER = '''\
import jax
import jax.numpy as jnp

import models


class Trainer:
    def __init__(self, key, x):
        self.model, self.state = models.create_model(key, x)

    def predict(self, x):
        return self.model(x, train=False)

    def features(self, x):
        return self.model.truncate_at('/Dense_0')(x, train=False)[0]

    def running_mean(self):
        return self.state['/BatchNorm_1']['mean']


trainer = Trainer(jax.random.PRNGKey(0), jnp.ones((2, 4)))
print(trainer.predict(jnp.ones((2, 4))), trainer.model.params)
'''


def test_model_from_another_file_kept_in_a_class_attribute(tmp_path):
    """self.model / self.state hold what another file's function returned: the
    calls, truncate_at and the Collection keys use that file's module."""
    (tmp_path / "trainer.py").write_text(TRAINER)
    files = _upgrade(tmp_path)
    trainer, findings = files["trainer.py"]
    assert findings == []
    assert "        return models.Classifier(num_classes=3).apply({'params': self.model}, x, train=False, mutable=['batch_stats'])[0]" in trainer
    # legacy '/Dense_0' of Classifier (Dense_0, BatchNorm_1) is Linen 'Dense_0'; the state key nests
    assert ("models.Classifier(num_classes=3).apply({'params': self.model}, x, train=False, "
            "capture_intermediates=True, mutable=['intermediates'])[1]['intermediates']['Dense_0']['__call__'][0]"
            in trainer)
    assert "        return self.state['BatchNorm_0']['mean']" in trainer
    assert "print(trainer.predict(jnp.ones((2, 4))), trainer.model)" in trainer


LIB = '''\
from flax import nn


class Net(nn.Module):
    def apply(self, x, features=3):
        return nn.Dense(x, features)


def make(key, x):
    model_def = Net.partial(features=2)
    _, params = model_def.init(key, x)
    return nn.Model(model_def, params)


def make_for(key, x, features):
    model_def = Net.partial(features=features)
    _, params = model_def.init(key, x)
    return nn.Model(model_def, params)


def predict(model, x):
    return model(x)


def evaluate(trainer, x):
    return trainer.model(x) + trainer.model.params['Dense_0']['bias']


def other_predict(model, x):
    return model(x)


def first_of(pair, x):
    model, _ = pair
    return model(x)
'''

APP = '''\
import jax
import jax.numpy as jnp

import lib
from lib import predict


class Trainer:
    def __init__(self, model):
        self.model = model

    def run(self, x):
        return self.model(x)


x = jnp.ones((1, 4))
model = lib.make(jax.random.PRNGKey(0), x)
print(predict(model, x), jax.jit(lib.predict)(model, x))
trainer = Trainer(model)
print(lib.evaluate(trainer, x), trainer.run(x))
other = lib.make_for(jax.random.PRNGKey(0), x, 5)
print(lib.other_predict(other, x))
print(lib.first_of((model, 1), x))
'''


def _upgrade_files(tmp_path: Path, sources: dict[str, str]) -> dict[str, tuple[str, list[str]]]:
    for name, text in sources.items():
        (tmp_path / name).write_text(text)
    result = run(sorted(tmp_path.glob("*.py")), Config(), [r.id for r in all_rules()], jobs=1)
    out = {name: (text, []) for name, text in sources.items()}  # a file with no result: left as it is
    for r in result.results:
        assert r.error is None, r.error
        out[Path(r.path).name] = ((r.new or r.original).decode(), [f"{f.rule} {f.message}" for f in r.findings])
    return out


def test_file_without_flax_is_rewritten_with_its_producer(tmp_path):
    """app.py never mentions flax: the prefilter admits it because it imports lib (a file of
    the run that does), and its Trainer's Model is applied with lib's module."""
    assert "flax" not in APP
    app, _ = _upgrade_files(tmp_path, {"lib.py": LIB, "app.py": APP})["app.py"]
    assert "        return lib.Net(features=2).apply({'params': self.model}, x)" in app


def test_models_handed_to_another_file_directly_through_jit_in_a_tuple_and_in_an_instance(tmp_path):
    files = _upgrade_files(tmp_path, {"lib.py": LIB, "app.py": APP})
    lib, lib_findings = files["lib.py"]
    app, app_findings = files["app.py"]
    # predict: called directly and through jax.jit; first_of: a tuple unpacked there
    assert "def predict(model, x):\n    return Net(features=2).apply({'params': model}, x)\n" in lib
    assert "    model, _ = pair\n    return Net(features=2).apply({'params': model}, x)\n" in lib
    # evaluate: an instance of app's Trainer, whose model field holds the params
    assert ("    return Net(features=2).apply({'params': trainer.model}, x) + trainer.model['Dense_0']['bias']"
            in lib)
    assert "print(predict(model, x), jax.jit(lib.predict)(model, x))" in app
    assert "print(lib.evaluate(trainer, x), trainer.run(x))" in app
    # other_predict gets a Model whose .partial keywords are known only in lib.make_for: app hands over
    # the params, and the apply there, which cannot be written, gets the TODO
    assert lib_findings == ["LU202 a call of a Model made in another file by a .partial whose keywords are "
                            "known only there: build the Linen module there and hand it over with the params: "
                            "convert by hand"]
    assert app_findings == []
    assert "    return model(x)" in lib.split("def other_predict")[1]


def test_cross_file_rewrite_is_idempotent(tmp_path):
    files = _upgrade_files(tmp_path, {"lib.py": LIB, "app.py": APP})
    (tmp_path / "again").mkdir()
    again = _upgrade_files(tmp_path / "again", {name: text for name, (text, _) in files.items()})
    assert {name: text for name, (text, _) in again.items()} == {name: text for name, (text, _) in files.items()}


OWN = '''\
import jax
import jax.numpy as jnp
from flax import nn

import lib


class Local(nn.Module):
    def apply(self, x):
        return nn.Dense(x, 2)


_, params = Local.init(jax.random.PRNGKey(0), jnp.ones((1, 4)))
print(lib.predict(nn.Model(Local, params), jnp.ones((1, 4))))
'''


def test_model_of_a_class_the_callee_cannot_name_gets_a_todo_where_it_is_applied(tmp_path):
    """own.py passes a Model of its own module class: lib.py does not import own.py (and must
    not: a cycle), so the apply there keeps a TODO; own.py hands over the params, which is
    all that file has to change, and lib's reads of the params convert (``unnamed``)."""
    files = _upgrade_files(tmp_path, {"lib.py": LIB.split("def make(")[0] + "def predict(model, x):\n"
                                      "    return model(x)\n", "own.py": OWN})
    lib, lib_findings = files["lib.py"]
    own, own_findings = files["own.py"]
    assert "    return model(x)\n" in lib
    assert any("of a module class this file does not import" in f for f in lib_findings), lib_findings
    assert own_findings == [] and "print(lib.predict(params, jnp.ones((1, 4))))" in own, own


REGISTRY = '''\
from flax import nn


class Net(nn.Module):
    def apply(self, x, features=2):
        return nn.Dense(x, features)


NETS = {"small": Net.partial(features=2), "large": Net.partial(features=8)}
'''

# never names flax: the prefilter admits it because it imports registry.py
REGISTRY_USER = '''\
import jax
import jax.numpy as jnp

import registry


def build(name):
    net = registry.NETS[name].partial(features=3)
    _, params = net.init_by_shape(jax.random.PRNGKey(0), [((1, 4), jnp.float32)])
    return params
'''


def test_legacy_methods_on_a_registry_of_another_file_get_a_todo(tmp_path):
    """registry.py's entries become Linen partials; a file that never names flax and calls
    .partial and .init_by_shape on one used in place (no name holds the entry, so the run does
    not follow it: ``main.py`` of the program registry_across_files does) would fail at run
    time: it says so at each, and stays as it was."""
    assert "flax" not in REGISTRY_USER
    user, findings = _upgrade_files(tmp_path, {"registry.py": REGISTRY, "user.py": REGISTRY_USER})["user.py"]
    assert "\n".join(line for line in user.splitlines() if "TODO(linen-upgrade)" not in line) + "\n" == REGISTRY_USER
    assert any(f.startswith("LU201 registry.NETS[name].partial: legacy Module.partial of a definition chosen at "
                            "run time that no one name holds") for f in findings), findings
    assert any(f.startswith("LU901 net.init_by_shape") for f in findings), findings


MAKER = '''\
from flax import nn


class Net(nn.Module):
    def apply(self, x, features=3):
        return nn.Dense(x, features)


def create(key, x):
    _, params = Net.init(key, x)
    return nn.Model(Net, params)


def create_for(key, x, features):
    model_def = Net.partial(features=features)
    _, params = model_def.init(key, x)
    return nn.Model(model_def, params)


class Holder:
    def __init__(self, key, x, features):
        self.model = create(key, x)
        self.other = create_for(key, x, features)
'''

# never names flax; create is a function of maker.py, not flax.optim's OptimizerDef.create
MAKER_USER = '''\
import jax
import jax.numpy as jnp

import maker

x = jnp.ones((1, 4))
model = maker.create(jax.random.PRNGKey(0), x)
print(model(x))
holder = maker.Holder(jax.random.PRNGKey(0), x, 5)
print(holder.model(x), holder.model.params)
print(holder.other(x))
'''


def test_models_from_a_function_named_create_and_from_an_instance_of_another_files_class(tmp_path):
    """maker.create(...) was read as OptimizerDef.create, and maker.Holder(...) as nothing:
    the Models they hand over became params with no finding, and their calls failed."""
    assert "flax" not in MAKER_USER
    files = _upgrade_files(tmp_path, {"maker.py": MAKER, "user.py": MAKER_USER})
    user, findings = files["user.py"]
    assert "print(maker.Net().apply({'params': model}, x))" in user
    assert "print(maker.Net().apply({'params': holder.model}, x), holder.model)" in user
    # holder.other's .partial keywords are known only in maker.py: a TODO, the call as it was
    assert "print(holder.other(x))" in user
    assert [f for f in findings if "known only there" in f] == [
        "LU202 a call of a Model made in another file by a .partial whose keywords are known only there: "
        "build the Linen module there and hand it over with the params: convert by hand"]


HANDS_OVER = {
    "models.py": '''\
import jax
import jax.numpy as jnp
from flax import nn


class Net(nn.Module):
    def apply(self, x):
        return nn.Dense(x, 2)


def create(key):
    _, params = Net.init_by_shape(key, [((1, 3), jnp.float32)])
    return nn.Model(Net, params)


def predict(model, x):
    return model(x)
''',
    "stats.py": '''\
import jax


def doubled(model):
    return model.replace(params=jax.tree_util.tree_map(lambda p: 2 * p, model.params))
''',
    "main.py": '''\
import jax
import jax.numpy as jnp

import models
import stats


def main():
    model = models.create(jax.random.PRNGKey(0))
    print(models.predict(stats.doubled(model), jnp.ones((1, 3))))
''',
}


def test_a_file_that_only_hands_models_over_is_walked_for_its_escapes(tmp_path):
    """main.py does nothing to its Models but hand them from one file to another: stats.doubled
    returns the (now params) Model to main, which hands it to models.predict, which cannot see it
    (its callers' callees are past the depth it reads) and keeps ``model(x)``.  main.py must say so:
    LU202 walks a file handing a Model of a known module to a call (``Analysis.relevant``)."""
    files = _upgrade_files(tmp_path, HANDS_OVER)
    assert "return model(x)" in files["models.py"][0]
    assert "model.params" not in files["stats.py"][0]
    main, findings = files["main.py"]
    assert findings == ["LU202 a Model (now its params) is passed to models.predict (another file, where it is "
                        "not followed as a Model): apply the Linen module there with {'params': ...}"]


def test_a_model_fixed_by_a_partial_of_another_files_function_gets_a_todo(tmp_path):
    """``functools.partial(stats.count, model)``: stats.py's seeds come from direct calls only, so
    its ``model.params`` stays where no direct call hands it the Model: the partial gets the TODO."""
    stats = "import jax\n\n\ndef count(model):\n    return len(jax.tree_util.tree_leaves(model.params))\n"
    main = HANDS_OVER["main.py"].replace("import jax\n", "import functools\nimport jax\n", 1).replace(
        "    print(models.predict(stats.doubled(model), jnp.ones((1, 3))))\n",
        "    print(functools.partial(stats.count, model)())\n")
    files = _upgrade_files(tmp_path, {"models.py": HANDS_OVER["models.py"], "stats.py": stats, "main.py": main})
    assert "model.params" in files["stats.py"][0]
    assert files["main.py"][1] == [
        "LU202 a Model (now its params) is passed to stats.count through functools.partial (another file, where "
        "what a partial fixes is not followed): apply the Linen module there with {'params': ...}"]
    # where a direct call hands count the Model too, count converts and the partial needs no TODO
    direct = main.replace("    print(functools.partial", "    print(stats.count(model))\n    print(functools.partial")
    files = _upgrade_files(tmp_path, {"models.py": HANDS_OVER["models.py"], "stats.py": stats, "main.py": direct})
    assert "model.params" not in files["stats.py"][0] and files["main.py"][1] == []


def test_an_optimizer_handed_to_another_file_types_its_target_there(tmp_path):
    """main.py hands stats.step the optimizer of a Model that models.create returns (main's reading
    at that depth does not see the Model's class): in step, ``m`` = ``opt.target`` through jax.grad
    is a Model of an unnamed class, so ``m.params`` converts with ``opt.target`` -> ``opt.params``
    (before: it stayed, an AttributeError on the params)."""
    stats = ("import jax\nimport jax.numpy as jnp\n\n\ndef step(opt):\n    def loss(m):\n"
             "        return jnp.sum(jax.tree_util.tree_leaves(m.params)[1] ** 2)\n"
             "    g = jax.grad(loss)(opt.target)\n    return opt.apply_gradient(g)\n")
    main = HANDS_OVER["main.py"].replace("import jax.numpy as jnp\n", "import jax.numpy as jnp\nfrom flax import nn, optim\n") \
        .replace("    print(models.predict(stats.doubled(model), jnp.ones((1, 3))))\n",
                 "    opt = optim.Momentum(0.1, 0.9).create(model)\n    opt = stats.step(opt)\n"
                 "    print(jax.tree_util.tree_leaves(opt.target)[1].sum())\n")
    files = _upgrade_files(tmp_path, {"models.py": HANDS_OVER["models.py"], "stats.py": stats, "main.py": main})
    text, findings = files["stats.py"]
    assert "tree_leaves(m)[1]" in text and "jax.grad(loss)(opt.params)" in text, text
    assert findings == [] and files["main.py"][1] == []


# what other.py hands lib.count where main.py hands a Model: a namedtuple with a params field, and
# what pickle.loads made of a file's bytes (a library's value, made from no legacy one)
_NOT_MODELS = {
    "record": ("import collections\n\nimport lib\n\nBox = collections.namedtuple('Box', ['params'])\n\n\n"
               "def report():\n    return lib.count(Box(params=3))\n"),
    "library value": ("import pickle\n\nimport lib\n\n\n"
                      "def report():\n    return lib.count(pickle.loads(open('saved.pkl', 'rb').read()))\n"),
}


@pytest.mark.parametrize("kind", sorted(_NOT_MODELS))
def test_a_value_no_model_handed_by_another_file_where_a_model_is_too_gets_a_todo(tmp_path, kind):
    """lib.count(m) reads m.params; main.py hands it a Model, other.py a record or a library's value
    with a params field of its own: converting m.params to m would return that value itself there.
    Both files say so (before: m.params -> m, and main.py passed the params, with no finding)."""
    lib = ("from flax import nn\n\n\nclass Net(nn.Module):\n    def apply(self, x):\n"
           "        return nn.Dense(x, 2)\n\n\ndef count(m):\n    return m.params\n")
    main = ("import jax\nimport jax.numpy as jnp\nfrom flax import nn\n\nimport lib\nimport other\n\n"
            "_, params = lib.Net.init_by_shape(jax.random.PRNGKey(0), [((1, 3), jnp.float32)])\n"
            "model = nn.Model(lib.Net, params)\nprint(sorted(lib.count(model)), other.report())\n")
    files = _upgrade_files(tmp_path, {"lib.py": lib, "other.py": _NOT_MODELS[kind], "main.py": main})
    text, findings = files["lib.py"]
    assert "    return m.params\n" in text
    assert findings == ["LU202 .params of a value that holds different legacy models (or a Model and something "
                        "else) at different call sites: convert by hand"]
    assert [f.partition(" (another file")[0] for f in files["main.py"][1]] == [
        "LU202 a Model (now its params) is passed to lib.count"]


def test_models_of_two_classes_handed_to_another_files_function_convert_there(tmp_path):
    """lib.count(m) reads m.params; main.py hands it a Model of models.A, other.py one of models.B,
    classes lib.py imports: a Model of a definition chosen at run time there, whose params
    convert, so both callers pass the params with no finding (before: a conflict, a TODO at
    m.params and at each call)."""
    models = ("from flax import nn\n\n\nclass A(nn.Module):\n    def apply(self, x):\n"
              "        return nn.Dense(x, 2)\n\n\nclass B(nn.Module):\n    def apply(self, x):\n"
              "        return nn.Dense(x, 3)\n")
    lib = "from flax import nn\n\nimport models\n\n\ndef count(m):\n    return sorted(m.params)\n"
    make = ("import jax\nimport jax.numpy as jnp\nfrom flax import nn\n\nimport lib\nimport models\n\n"
            "_, params = models.{0}.init_by_shape(jax.random.PRNGKey(0), [((1, 3), jnp.float32)])\n"
            "print(lib.count(nn.Model(models.{0}, params)))\n")
    files = _upgrade_files(tmp_path, {"models.py": models, "lib.py": lib, "main.py": make.format("A"),
                                      "other.py": make.format("B")})
    assert files["lib.py"] == (
        "from flax import linen as nn\n\nimport models\n\n\ndef count(m):\n    return sorted(m)\n", [])
    for name in ("main.py", "other.py"):
        text, findings = files[name]
        assert "print(lib.count(params))" in text and findings == []


_CREATE = ("import jax\nimport jax.numpy as jnp\nfrom flax import nn\n\nimport models\nimport registry\n\n\n"
           "def create_model(flax_module, model_kwargs, key, shape):\n"
           "    module = flax_module.partial(**model_kwargs)\n"
           "    _, params = module.init_by_shape(key, [(shape, jnp.float32)])\n"
           "    return nn.Model(module, params)\n\n\n"
           "made = registry.build('n', create_model, {'features': 3}, jax.random.PRNGKey(0), (2, 4))\n"
           "print(sorted(made.params))\n"
           "direct = create_model(models.Wide, {'features': 1}, jax.random.PRNGKey(1), (2, 4))\n"
           "print(sorted(direct.params))\n")
_MODELS = ("from flax import nn\n\n\nclass Narrow(nn.Module):\n    def apply(self, x, features=2):\n"
           "        return nn.Dense(x, features)\n\n\nclass Wide(nn.Module):\n    def apply(self, x, features=2):\n"
           "        return nn.Dense(x, features * 2)\n")


def test_a_creation_function_handed_to_a_helper_that_does_not_return_its_call_gets_a_todo(tmp_path):
    """create_model (called directly too, so it converts and returns the params) handed to a helper
    that keeps its result in a local first, or to one in a file with no flax: what the helper hands
    back is the params now while made.params stayed. Before: no finding, and made.params failed."""
    kept = ("from flax import nn\n\nimport models\n\n\ndef build(kind, create_fn, kwargs, *args):\n"
            "    made = create_fn(models.Narrow, kwargs, *args)\n    return made\n\n\n"
            "def probabilities(x):\n    return nn.softmax(x)\n")
    unread = "import models\n\n\ndef build(kind, create_fn, kwargs, *args):\n    return create_fn(models.Narrow, kwargs, *args)\n"
    for helper, where in ((kept, "where what it returns of its calls is not followed"),
                          (unread, "which this run does not read")):
        folder = tmp_path / ("kept" if helper is kept else "unread")
        folder.mkdir()
        files = _upgrade_files(folder, {"models.py": _MODELS, "registry.py": helper, "main.py": _CREATE})
        text, findings = files["main.py"]
        assert "print(sorted(made.params))" in text, text
        assert any(f.startswith("LU202 create_model returns a Model (now its params) and is passed to registry.build")
                   and where in f for f in findings), findings


def test_a_helper_returning_a_closure_that_calls_the_creation_function_is_not_followed(tmp_path):
    """build returns later, a function of its own that calls create_fn: what build returns is not
    create_model's result, so create_model's parameter is not seeded from there (before: it was,
    create_model converted, and maker().params failed with no finding)."""
    helper = ("from flax import nn\n\nimport models\n\n\ndef build(kind, create_fn, kwargs, *args):\n"
              "    def later():\n        return create_fn(models.Wide, kwargs, *args)\n    return later\n\n\n"
              "def probabilities(x):\n    return nn.softmax(x)\n")
    main = _CREATE.replace("made = registry.build(", "made = registry.build(").split("direct =")[0]
    main = main.replace("print(sorted(made.params))", "print(sorted(made().params))")
    files = _upgrade_files(tmp_path, {"models.py": _MODELS, "registry.py": helper, "main.py": main})
    text, findings = files["main.py"]
    assert "print(sorted(made().params))" in text and "nn.Model(module, params)" in text, text
    assert findings, "create_model keeps its legacy calls with TODOs"


def test_an_entry_of_another_files_dict_of_module_classes_called_in_a_module_body_gets_a_todo(tmp_path):
    """BLOCKS[kind](x, 4) / blocks.NORMS[kind](x) in a module body, the dicts in blocks.py: LU100
    makes their classes Linen ones, so the legacy-form call fails at init. Before: no finding."""
    blocks = ("from flax import nn\n\n\nclass Plain(nn.Module):\n    def apply(self, x, features):\n"
              "        return nn.Dense(x, features)\n\n\nBLOCKS = {'plain': Plain}\n"
              "NORMS = {'layer': nn.LayerNorm, 'group': nn.GroupNorm}\n")
    main = ("from flax import nn\n\nimport blocks\nfrom blocks import BLOCKS\n\n\nclass Net(nn.Module):\n"
            "    def apply(self, x, kind='plain', norm='layer'):\n        x = BLOCKS[kind](x, 4)\n"
            "        return blocks.NORMS[norm](x)\n")
    files = _upgrade_files(tmp_path, {"blocks.py": blocks, "main.py": main})
    text, findings = files["main.py"]
    assert "        x = BLOCKS[self.kind](x, 4)\n" in text and "        return blocks.NORMS[self.norm](x)\n" in text
    assert [f.partition("(...)")[0] for f in findings] == ["LU102 BLOCKS[kind]", "LU102 blocks.NORMS[norm]"], findings


def test_a_record_made_in_a_third_file_where_a_model_is_too_gets_a_todo(tmp_path):
    """lib.count(m) reads m.params; main.py hands it a Model, other.py a namedtuple whose type
    recs.py makes (recs.Box(...), and recs.snapshot() returning one): a conflict, as for a record
    of other.py's own (before: m.params -> m, and the record itself came back there)."""
    lib = ("from flax import nn\n\n\nclass Net(nn.Module):\n    def apply(self, x):\n"
           "        return nn.Dense(x, 2)\n\n\ndef count(m):\n    return m.params\n\n\ndef count2(m):\n"
           "    return m.params\n")
    recs = ("import collections\n\nBox = collections.namedtuple('Box', ['params'])\n\n\n"
            "def snapshot():\n    return Box(params=[1.0])\n")
    other = ("import lib\nimport recs\n\n\ndef report():\n"
             "    return lib.count(recs.Box(params=3)), lib.count2(recs.snapshot())\n")
    main = ("import jax\nimport jax.numpy as jnp\nfrom flax import nn\n\nimport lib\nimport other\n\n"
            "_, params = lib.Net.init_by_shape(jax.random.PRNGKey(0), [((1, 3), jnp.float32)])\n"
            "model = nn.Model(lib.Net, params)\nprint(lib.count(model), lib.count2(model), other.report())\n")
    files = _upgrade_files(tmp_path, {"lib.py": lib, "recs.py": recs, "other.py": other, "main.py": main})
    text, findings = files["lib.py"]
    assert "    return m.params\n" in text and "m.params" in text.split("def count2")[1], text
    assert len(findings) == 2 and all(f.startswith("LU202 .params of a value that holds different") for f in findings)


def test_another_files_creation_function_handed_to_a_helper_gets_a_todo(tmp_path):
    """main.py hands a.create_model (which a.py's own call converts: it returns the params) to
    registry.build: only this file's functions are followed as callbacks, so made.params stays
    while the helper hands back the params. Before: no finding, and made.params failed."""
    a = ("import jax\nimport jax.numpy as jnp\nfrom flax import nn\n\nimport models\n\n\n"
         "def create_model(flax_module, model_kwargs, key, shape):\n"
         "    module = flax_module.partial(**model_kwargs)\n"
         "    _, params = module.init_by_shape(key, [(shape, jnp.float32)])\n"
         "    return nn.Model(module, params)\n\n\n"
         "def default(key):\n    return create_model(models.Wide, {'features': 1}, key, (2, 4))\n")
    helper = ("from flax import nn\n\nimport models\n\n\ndef build(kind, create_fn, kwargs, *args):\n"
              "    return create_fn(models.Narrow, kwargs, *args)\n\n\n"
              "def probabilities(x):\n    return nn.softmax(x)\n")
    main = ("import jax\n\nimport a\nimport registry\n\n"
            "made = registry.build('n', a.create_model, {'features': 3}, jax.random.PRNGKey(0), (2, 4))\n"
            "print(sorted(made.params))\n")
    files = _upgrade_files(tmp_path, {"models.py": _MODELS, "registry.py": helper, "a.py": a, "main.py": main})
    assert "return initial_params" not in files["a.py"][0] and "nn.Model(" not in files["a.py"][0]
    text, findings = files["main.py"]
    assert "print(sorted(made.params))" in text
    assert [f.partition(" and is passed")[0] for f in findings] == [
        "LU202 a.create_model returns a Model (now its params)"], findings


def test_a_file_without_flax_using_a_model_of_a_file_with_no_module_class_converts(tmp_path):
    """main.py (no flax) reads .params of what a.default returns, a.py defining no module class (its
    Model is made of models.Wide): LU202 did not run on main.py (it imports no file defining a module
    class), so m.params stayed while a.default returns the params now."""
    a = ("import jax.numpy as jnp\nfrom flax import nn\n\nimport models\n\n\n"
         "def default(key):\n    _, params = models.Wide.init_by_shape(key, [((2, 4), jnp.float32)])\n"
         "    return nn.Model(models.Wide, params)\n")
    main = "import jax\n\nimport a\n\nm = a.default(jax.random.PRNGKey(2))\nprint(sorted(m.params))\n"
    files = _upgrade_files(tmp_path, {"models.py": _MODELS, "a.py": a, "main.py": main})
    assert "    return params\n" in files["a.py"][0] or "return initial_params" in files["a.py"][0] \
        or "nn.Model(" not in files["a.py"][0]
    assert "print(sorted(m))\n" in files["main.py"][0], files["main.py"][0]


def test_a_plain_instance_a_third_files_function_returns_where_a_model_is_too_gets_a_todo(tmp_path):
    """lib.count(m) reads m.params; other.py hands it recs.snapshot(), a dataclass instance that
    function of recs.py returns: a record, so the Model main.py hands over meets a conflict (before:
    the function's instance was dropped, m.params became m and the instance itself came back)."""
    lib = ("from flax import nn\n\n\nclass Net(nn.Module):\n    def apply(self, x):\n"
           "        return nn.Dense(x, 2)\n\n\ndef count(m):\n    return m.params\n")
    recs = ("import dataclasses\nfrom typing import Any\n\n\n@dataclasses.dataclass\nclass Holder:\n"
            "    params: Any\n\n\ndef snapshot():\n    return Holder(params=[1.0])\n")
    other = "import lib\nimport recs\n\n\ndef report():\n    return lib.count(recs.snapshot())\n"
    main = ("import jax\nimport jax.numpy as jnp\nfrom flax import nn\n\nimport lib\nimport other\n\n"
            "_, params = lib.Net.init_by_shape(jax.random.PRNGKey(0), [((1, 3), jnp.float32)])\n"
            "model = nn.Model(lib.Net, params)\nprint(lib.count(model), other.report())\n")
    files = _upgrade_files(tmp_path, {"lib.py": lib, "recs.py": recs, "other.py": other, "main.py": main})
    text, findings = files["lib.py"]
    assert "    return m.params\n" in text, text
    assert [f.partition(" at different")[0] for f in findings] == [
        "LU202 .params of a value that holds different legacy models (or a Model and something else)"]


def test_a_creation_function_returning_an_optimizer_handed_to_a_helper_gets_a_todo(tmp_path):
    """create_optimizer (its optimizer now a TrainState) handed to a helper that returns its call:
    LU202 follows the Model back through the helper, LU302 does not follow the optimizer, so
    opt.apply_gradient(...) stayed on what is a TrainState now. A TODO at the hand-over, as where
    the helper is not followed at all (a file without flax)."""
    main = ("import jax\nimport jax.numpy as jnp\nfrom flax import nn, optim\n\nimport registry\n\n\n"
            "def create_optimizer(flax_module, model_kwargs, key, shape):\n"
            "    module = flax_module.partial(**model_kwargs)\n"
            "    _, params = module.init_by_shape(key, [(shape, jnp.float32)])\n"
            "    return optim.Momentum(learning_rate=0.1, beta=0.9).create(nn.Model(module, params))\n\n\n"
            "opt = registry.build('n', create_optimizer, {'features': 3}, jax.random.PRNGKey(0), (2, 4))\n"
            "opt = opt.apply_gradient(jax.tree_util.tree_map(jnp.ones_like, opt.target))\n")
    followed = ("from flax import nn\n\nimport models\n\n\ndef build(kind, create_fn, kwargs, *args):\n"
                "    return create_fn(models.Narrow, kwargs, *args)\n\n\n"
                "def probabilities(x):\n    return nn.softmax(x)\n")
    unread = "import models\n\n\ndef build(kind, create_fn, kwargs, *args):\n    made = create_fn(models.Narrow, kwargs, *args)\n    return made\n"
    for name, helper in (("followed", followed), ("unread", unread)):
        folder = tmp_path / name
        folder.mkdir()
        files = _upgrade_files(folder, {"models.py": _MODELS, "registry.py": helper, "main.py": main})
        findings = files["main.py"][1]
        assert "LU202 create_optimizer returns an optimizer (now a TrainState)" in [
            f.partition(" and is passed")[0] for f in findings], (name, findings)
