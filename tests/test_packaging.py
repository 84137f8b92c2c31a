"""Packaging: ``rules/`` (installed as ``linen_upgrade.rules``) is importable and
complete both from a built wheel and from the editable install.

The wheel is built from a copy of the source tree, so the test writes nothing
into the repository (no ``build/``, no refreshed ``*.egg-info``).
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# what a subprocess prints about the linen_upgrade it imports
PROBE = """
import json, sys
import linen_upgrade, linen_upgrade.rules
from linen_upgrade.registry import all_rules
rules = all_rules()
print(json.dumps({
    "package": linen_upgrade.__file__,
    "rules_path": list(linen_upgrade.rules.__path__),
    "rule_files": sorted(sys.modules[r.__module__].__file__ for r in rules),
    "ids": [r.id for r in rules],
    "heavy": [m for m in ("jax", "flax", "optax", "numpy") if m in sys.modules],
}))
"""


def source_rule_ids() -> list[str]:
    """Rule ids read statically from ``rules/*.py`` (no import)."""
    ids = []
    for path in sorted((ROOT / "rules").glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            for stmt in cls.body:
                if (isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "id"
                                                         for t in stmt.targets)
                        and isinstance(stmt.value, ast.Constant)):
                    ids.append(stmt.value.value)
    assert ids, "no rule ids found in rules/*.py"
    return sorted(ids)


def probe(cwd: Path, pythonpath: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def is_under(path: str | Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


# -- the wheel --------------------------------------------------------------

@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
        ".hypothesis", "fixtures", "tests", "bench"))
    out = base / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", str(out), str(src)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels = list(out.glob("linen_upgrade-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.mark.slow
def test_wheel_contains_every_rule_table_and_module(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    rule_files = sorted((ROOT / "rules").glob("*.py"))
    assert rule_files
    for path in rule_files:
        assert f"linen_upgrade/rules/{path.name}" in names, f"rules/{path.name} missing from the wheel"
    table_files = sorted((ROOT / "linen_upgrade" / "tables").glob("*.py"))
    assert table_files
    for path in table_files:
        assert f"linen_upgrade/tables/{path.name}" in names, f"tables/{path.name} missing from the wheel"
    # every module of the package, including sub-packages added later
    for path in sorted((ROOT / "linen_upgrade").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if "__pycache__" not in rel:
            assert rel in names, f"{rel} missing from the wheel (is its package listed in pyproject.toml?)"
    # nothing of the repository's own top level leaks in as a package
    assert not any(n.startswith(("rules/", "tests/", "fixtures/", "bench/")) for n in names)


@pytest.mark.slow
def test_wheel_metadata(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        dist_info = next(n.split("/")[0] for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(f"{dist_info}/METADATA").decode()
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    assert "linen-upgrade = linen_upgrade.cli:main" in entry_points
    # the rewrite path installs fast: jax & co. only through the verify extra
    required = [line.split(":", 1)[1].strip() for line in metadata.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line]
    for heavy in ("jax", "flax", "optax", "orbax", "numpy"):
        assert not any(r.lower().startswith(heavy) for r in required), required


@pytest.mark.slow
def test_installed_wheel_finds_the_rules(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target),
         str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    info = probe(elsewhere, pythonpath=str(target))
    assert is_under(info["package"], target), info["package"]
    assert all(is_under(p, target) for p in info["rules_path"]), info["rules_path"]
    assert all(is_under(f, target) for f in info["rule_files"]), info["rule_files"]
    assert sorted(info["ids"]) == source_rule_ids()
    assert info["heavy"] == []

    # and the installed copy rewrites (stdin -> stdout)
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run([sys.executable, "-m", "linen_upgrade.cli", "-"], cwd=elsewhere, env=env,
                          input="from flax import nn\n", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "from flax import linen as nn\n"


# -- the editable install ---------------------------------------------------

def test_editable_install_maps_rules_to_the_repository(tmp_path: Path) -> None:
    import linen_upgrade

    if not is_under(linen_upgrade.__file__, ROOT):
        pytest.skip("linen_upgrade is not installed in editable mode from this checkout")
    info = probe(tmp_path, pythonpath=None)  # cwd outside the repository: no accidental import by path
    assert is_under(info["package"], ROOT / "linen_upgrade")
    assert [str(Path(p).resolve()) for p in info["rules_path"]] == [str((ROOT / "rules").resolve())]
    assert all(is_under(f, ROOT / "rules") for f in info["rule_files"])
    assert sorted(info["ids"]) == source_rule_ids()
    assert info["heavy"] == []
