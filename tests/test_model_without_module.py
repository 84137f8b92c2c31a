"""nn.Model(None, params) across files: the holder becomes its params; handed to a
function of another file that a run with no legacy module class does not rewrite
(its ``old.params`` would stay), the call gets a TODO instead."""
from __future__ import annotations

from test_usage_cross_file import _upgrade_files as _upgrade

MAIN = '''\
from flax import nn
import stats


def step(scales, grads):
    holder = nn.Model(None, scales)
    return stats.update(grads, holder)
'''

STATS = '''\
import jax


def update(grads, holder):
    return jax.tree_util.tree_map(lambda g, p: p - g, grads, holder.params)
'''

NET = '''\
from flax import nn


class Net(nn.Module):
    def apply(self, x):
        return nn.Dense(x, 2)
'''


def test_handed_to_a_file_the_run_leaves_gets_a_todo(tmp_path):
    files = _upgrade(tmp_path, {"main.py": MAIN, "stats.py": STATS})
    main, findings = files["main.py"]
    assert "holder = scales" in main
    assert files["stats.py"][0] == STATS
    assert any(f.startswith("LU202 ") and "stats.update" in f and "may not rewrite" in f for f in findings), findings


def test_handed_to_a_file_the_run_rewrites(tmp_path):
    files = _upgrade(tmp_path, {"main.py": MAIN, "stats.py": STATS, "net.py": NET})
    main, findings = files["main.py"]
    assert "holder = scales" in main and findings == []
    assert "grads, holder)" in files["stats.py"][0]
