"""The usage rules across files: a file that never imports flax.nn uses a Model
built in another file of the run (real_code_patterns.md #2), and is
converted with its producer."""
from __future__ import annotations

from pathlib import Path

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
    (tmp_path / "models.py").write_text(MODELS)
    (tmp_path / "train.py").write_text(TRAIN)
    result = run(sorted(tmp_path.glob("*.py")), Config(), [r.id for r in all_rules()], jobs=1)
    out = {}
    for r in result.results:
        assert r.error is None, r.error
        text = (r.new or r.original).decode()
        out[Path(r.path).name] = (text, [f"{f.rule} {f.message}" for f in r.findings])
    return out


def test_model_from_another_file_is_applied_there(tmp_path):
    files = _upgrade(tmp_path)
    models, models_findings = files["models.py"]
    assert models_findings == []
    assert "return params, state" in models
    assert "variables = model_def().init(key, x)" in models
    train, findings = files["train.py"]
    # the module definition travels with its literal keywords
    assert "return models.Classifier(num_classes=3).apply({'params': model}, x, train=False)" in train
    assert "print(sorted(model), evaluate(model, jnp.ones((2, 4))))" in train


def test_definition_with_keywords_known_only_there_gets_a_todo(tmp_path):
    train, findings = _upgrade(tmp_path)["train.py"]
    # num_classes=classes is a parameter of create_model_for: not writable in train.py
    assert "print(other(jnp.ones((2, 4))))" in train
    assert any(f.startswith("LU202 ") and "known only there" in f for f in findings), findings


def test_model_handed_to_a_function_of_another_file_gets_a_todo(tmp_path):
    files = _upgrade(tmp_path)
    models, _ = files["models.py"]
    # models.py never calls predict with a Model: its parameter is not known to be one there
    assert "    return model(x, train=False)" in models
    train, findings = files["train.py"]
    assert any(f.startswith("LU202 ") and "models.predict (another file" in f for f in findings), findings


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
    assert "        return models.Classifier(num_classes=3).apply({'params': self.model}, x, train=False)" in trainer
    # legacy '/Dense_0' of Classifier (Dense_0, BatchNorm_1) is Linen 'Dense_0'; the state key nests
    assert ("models.Classifier(num_classes=3).apply({'params': self.model}, x, train=False, "
            "capture_intermediates=True, mutable=['intermediates'])[1]['intermediates']['Dense_0']['__call__'][0]"
            in trainer)
    assert "        return self.state['BatchNorm_0']['mean']" in trainer
    assert "print(trainer.predict(jnp.ones((2, 4))), trainer.model)" in trainer
