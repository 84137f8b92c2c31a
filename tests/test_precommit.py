"""The pre-commit hooks, run through pre-commit itself.

The hook repository is a snapshot of this checkout's working tree (tracked and
untracked, not ignored files) committed into a temporary git repository, so the
test sees uncommitted work too.  ``pre-commit try-repo`` always builds the
hook's virtualenv (a pip install of the project; needs the package index) in a
throw-away store of its own, so only the rewrite hook goes through it; the
other tests use ``pre-commit run`` with a config naming the snapshot, whose
environment is built once for the module (``PRE_COMMIT_HOME`` is shared).
The README's two configurations run as a user copies them: the remote one with
its placeholder URL replaced by the snapshot (tagged with the README's ``rev``),
the ``repo: local`` one with this environment's ``linen-upgrade`` on ``PATH``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

LEGACY = "from flax import nn\nimport jax\n\ny = jax.tree_multimap(f, a, b)\n"
UPGRADED = "from flax import linen as nn\nimport jax\n\ny = jax.tree_util.tree_map(f, a, b)\n"
MODERN = "from flax import linen as nn\n\nx = nn.Dense(3)\n"

README = (ROOT / "README.md").read_text(encoding="utf-8")
# the README's pre-commit configurations, as a user copies them
README_CONFIGS = [block for block in re.findall(r"^```yaml\n(.*?)^```$", README, re.M | re.S)
                  if "repos:" in block]
REMOTE_CONFIG = next(c for c in README_CONFIGS if "repo: local" not in c)
LOCAL_CONFIG = next(c for c in README_CONFIGS if "repo: local" in c)
# the placeholder a user replaces with the address of their copy, and the tag they pin
PLACEHOLDER_URL = yaml.safe_load(REMOTE_CONFIG)["repos"][0]["repo"]
README_REV = yaml.safe_load(REMOTE_CONFIG)["repos"][0]["rev"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git"),
]


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def make_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q")
    git(path, "config", "user.name", "linen-upgrade tests")
    git(path, "config", "user.email", "tests@example.invalid")
    git(path, "config", "commit.gpgsign", "false")
    git(path, "config", "core.hooksPath", "/dev/null")  # no global hooks in the test repos
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "--allow-empty", "-m", "initial")
    return path


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's working tree, committed into a throw-away repository."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    snapshot = tmp_path_factory.mktemp("hook-repo") / "linen-upgrade"
    snapshot.mkdir()
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():  # deleted-but-tracked files are skipped
            (snapshot / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, snapshot / rel)
    assert (snapshot / ".pre-commit-hooks.yaml").is_file()
    git(snapshot, "init", "-q")
    git(snapshot, "config", "user.name", "linen-upgrade tests")
    git(snapshot, "config", "user.email", "tests@example.invalid")
    git(snapshot, "config", "commit.gpgsign", "false")
    git(snapshot, "add", "-A")
    git(snapshot, "commit", "-q", "-m", "snapshot")
    git(snapshot, "tag", README_REV)  # the release the README pins
    return snapshot


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


def pre_commit(repo: Path, home: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PRE_COMMIT_HOME=str(home), PRE_COMMIT_COLOR="never",
               GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0")
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "pre_commit", *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture
def try_repo(hook_repo: Path, pre_commit_home: Path):
    """``pre-commit try-repo HOOK_REPO HOOK --all-files`` in ``repo``."""
    def run(repo: Path, hook: str) -> subprocess.CompletedProcess:
        return pre_commit(repo, pre_commit_home, "try-repo", str(hook_repo), hook, "--all-files",
                          "--verbose")
    return run


@pytest.fixture
def run_hook(hook_repo: Path, pre_commit_home: Path, tmp_path: Path):
    """``pre-commit run HOOK --all-files`` in ``repo`` with a config naming the snapshot
    (at the README's tag: the README tests share the hook environment)."""
    rev = README_REV

    def run(repo: Path, hook: str, always_run: bool = False) -> subprocess.CompletedProcess:
        config = tmp_path / f"pre-commit-config-{hook}.yaml"
        config.write_text(
            f"repos:\n- repo: {hook_repo.as_uri()}\n  rev: {rev}\n  hooks:\n  - id: {hook}\n"
            + ("    always_run: true\n" if always_run else ""))
        return pre_commit(repo, pre_commit_home, "run", "--config", str(config), "--all-files",
                          "--verbose", hook)
    return run


def test_rewrite_hook_rewrites_legacy_files_only(try_repo, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "project", {"legacy.py": LEGACY, "pkg/modern.py": MODERN})
    proc = try_repo(repo, "linen-upgrade")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "files were modified by this hook" in out, out
    assert (repo / "legacy.py").read_text() == UPGRADED
    assert (repo / "pkg" / "modern.py").read_text() == MODERN


def test_check_hook_passes_on_an_upgraded_tree(run_hook, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "project", {"upgraded.py": UPGRADED, "modern.py": MODERN})
    proc = run_hook(repo, "linen-upgrade-check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Passed" in proc.stdout
    assert (repo / "upgraded.py").read_text() == UPGRADED


def test_check_hook_fails_on_legacy_code_and_writes_nothing(run_hook, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "project", {"legacy.py": LEGACY, "modern.py": MODERN})
    proc = run_hook(repo, "linen-upgrade-check")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "jax.tree_util.tree_map" in out  # the diff is shown
    assert (repo / "legacy.py").read_text() == LEGACY
    assert git(repo, "status", "--porcelain") == ""


def test_zero_files_is_success_through_try_repo(try_repo, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "project", {"README.md": "no python here\n"})
    proc = try_repo(repo, "linen-upgrade")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("hook", ["linen-upgrade", "linen-upgrade-check"])
def test_zero_files_is_success(run_hook, tmp_path: Path, hook: str) -> None:
    # always_run: pre-commit calls the hook although no file matches, i.e. with
    # no file names at all -- the entry itself must take that as success
    repo = make_repo(tmp_path / "project", {"README.md": "no python here\n"})
    proc = run_hook(repo, hook, always_run=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Passed" in proc.stdout, proc.stdout
    assert "no files to check" not in proc.stdout  # the hook did run


# -- the README's configurations, as copied -------------------------------

def test_readme_config_pins_a_release_of_this_version() -> None:
    config = yaml.safe_load(REMOTE_CONFIG)
    assert list(config) == ["repos"]
    (repo,) = config["repos"]
    assert PLACEHOLDER_URL.startswith("https://")
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    version = re.search(r'^version = "(.+)"$', pyproject, re.M).group(1)
    assert README_REV == f"v{version}", "the README pins the tag of this version"
    hooks = {h["id"] for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))}
    assert {h["id"] for h in repo["hooks"]} <= hooks
    assert all(h in REMOTE_CONFIG for h in hooks)  # the other hook is shown, commented out


def test_readme_config_as_copied_rewrites_a_legacy_file(hook_repo: Path, pre_commit_home: Path,
                                                         tmp_path: Path) -> None:
    # the user's one edit: the address of their copy (here the snapshot, tagged README_REV)
    config = REMOTE_CONFIG.replace(PLACEHOLDER_URL, hook_repo.as_uri())
    repo = make_repo(tmp_path / "project", {".pre-commit-config.yaml": config, "legacy.py": LEGACY,
                                            "modern.py": MODERN})
    proc = pre_commit(repo, pre_commit_home, "run", "--all-files")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "files were modified by this hook" in out, out
    assert (repo / "legacy.py").read_text() == UPGRADED
    assert (repo / "modern.py").read_text() == MODERN
    # and once the rewrite is committed, the hook passes
    git(repo, "commit", "-q", "-am", "upgraded")
    proc = pre_commit(repo, pre_commit_home, "run", "--all-files")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_local_config_uses_the_installed_linen_upgrade(pre_commit_home: Path, tmp_path: Path) -> None:
    installed = Path(sys.executable).parent / "linen-upgrade"
    if not installed.is_file():
        pytest.skip("no linen-upgrade script next to this Python")
    repo = make_repo(tmp_path / "project", {".pre-commit-config.yaml": LOCAL_CONFIG, "legacy.py": LEGACY,
                                            "pkg/modern.py": MODERN})
    path = os.pathsep.join([str(installed.parent), os.environ.get("PATH", "")])
    proc = pre_commit(repo, pre_commit_home, "run", "--all-files", path=path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "files were modified by this hook" in out, out
    assert (repo / "legacy.py").read_text() == UPGRADED
    assert (repo / "pkg" / "modern.py").read_text() == MODERN
