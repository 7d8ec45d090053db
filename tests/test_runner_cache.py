"""Where the simulation builds go (``$BFLY_BUILD_DIR`` or ``./build``) and a complete build
used from a read-only cache without writing anything (the Verilator runner is a stand-in)."""

import errno
from pathlib import Path

import pytest

import bfly.sim.runner as runner
from bfly.hw.config import EngineConfig

CFG = EngineConfig.bft(4, 2)


class FakeRunner:
    builds = 0

    def build(self, build_dir, hdl_toplevel, **kw):
        FakeRunner.builds += 1
        (Path(build_dir) / hdl_toplevel).write_text("an executable")


def test_work_dir_is_the_environment_variable_or_build_here(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(runner.BUILD_DIR_ENV, raising=False)
    assert runner.work_dir("sim") == tmp_path / "build" / "sim"
    monkeypatch.setenv(runner.BUILD_DIR_ENV, str(tmp_path / "cache"))
    assert runner.work_dir("sim", "x") == tmp_path / "cache" / "sim" / "x"


def test_a_complete_read_only_build_is_used_without_writing(monkeypatch, tmp_path):
    monkeypatch.setenv(runner.BUILD_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(runner, "_runner", FakeRunner)
    build_dir, man = runner.build(CFG)
    assert FakeRunner.builds == 1 and (build_dir / "build.stamp").exists()
    assert runner.build(CFG) == (build_dir, man) and FakeRunner.builds == 1      # cached

    def refuse(*a, **kw):
        raise OSError(errno.EROFS, "Read-only file system")

    def mkdir(self, parents=False, exist_ok=False):
        if not self.is_dir():
            refuse()
    writes = {"open": lambda path, mode="r", *a, **kw: refuse() if "w" in mode else open(path, mode, *a, **kw)}
    monkeypatch.setattr(runner, "open", writes["open"], raising=False)
    for name in ("write_text", "write_bytes", "unlink", "touch"):
        monkeypatch.setattr(Path, name, refuse)
    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert runner.build(CFG) == (build_dir, man) and FakeRunner.builds == 1
    monkeypatch.undo()
    monkeypatch.setenv(runner.BUILD_DIR_ENV, str(tmp_path / "cache"))
    (build_dir / "build.stamp").write_text("stale")
    monkeypatch.setattr(runner, "open", writes["open"], raising=False)
    monkeypatch.setattr(Path, "write_text", refuse)
    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(RuntimeError, match=f"out of date and cannot be written .*{runner.BUILD_DIR_ENV}"):
        runner.build(CFG)


def test_runs_and_logs_of_a_read_only_cache_go_to_a_temporary_directory(monkeypatch, tmp_path):
    # bfly sim writes its log and the testbench's run directory beside the build: where the
    # cache cannot be written they go to a new temporary directory instead
    assert runner.writable_dir(tmp_path / "cache" / "run", "x") == tmp_path / "cache" / "run"

    def refuse(*a, **kw):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(runner.tempfile, "NamedTemporaryFile", refuse)
    monkeypatch.setattr(runner.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    other = runner.writable_dir(tmp_path / "cache" / "run", "x")
    assert other.is_dir() and other.parent.parent == tmp_path / "tmp" and other.name == "x"
    assert runner.writable_dir(tmp_path / "cache" / "run", "x") == other         # reused
