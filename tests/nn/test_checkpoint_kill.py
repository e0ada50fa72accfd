"""A save killed mid-write (SIGKILL, no cleanup possible) never damages the previous
checkpoint: the old one still loads, bit for bit, and the next save succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from test_checkpoint import TinyLM, _compressed

from squeezeprompt import checkpoint

TESTS = Path(__file__).resolve().parents[1]

# Runs in a child process: makes a different model and saves it over the checkpoint,
# but the chosen file write stops halfway, after its bytes reach the disk, with SIGKILL.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path[:0] = [{nn_dir!r}, {tests_dir!r}]
    import torch
    from squeezeprompt import checkpoint
    from test_checkpoint import _compressed

    victim = {victim!r}
    real_fdopen = os.fdopen
    writes = []

    class DiesHalfway:
        def __init__(self, fh):
            self.fh = fh
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)
        def write(self, data):
            writes.append(len(data))
            if (victim == "weights") == (len(writes) == 1):
                self.fh.write(data[: len(data) // 2])
                self.fh.flush()
                os.fsync(self.fh.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
            return self.fh.write(data)
        def __getattr__(self, name):
            return getattr(self.fh, name)

    os.fdopen = lambda *a, **k: DiesHalfway(real_fdopen(*a, **k))
    torch.manual_seed(1)
    checkpoint.save(_compressed(), {directory!r})
    """
)


@pytest.mark.parametrize("victim", ["weights", "manifest"])
def test_killed_save_leaves_the_previous_checkpoint_loadable(tmp_path: Path, victim: str) -> None:
    torch.manual_seed(0)
    model = _compressed()
    d = checkpoint.save(model, tmp_path / "ckpt")
    code = CHILD.format(
        nn_dir=str(Path(__file__).parent), tests_dir=str(TESTS), victim=victim, directory=str(d)
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    assert list(d.glob(".*.tmp-*")), "the kill should have left a half-written temp file"

    back = checkpoint.load(d, model=TinyLM)
    ids = torch.randint(0, 32, (2, 5))
    with torch.no_grad():
        assert torch.equal(back(ids), model(ids))

    # The debris of the killed save does not stop the next one.
    torch.manual_seed(2)
    newer = _compressed()
    checkpoint.save(newer, d)
    with torch.no_grad():
        assert torch.equal(checkpoint.load(d, model=TinyLM)(ids), newer(ids))
    assert os.path.exists(d / checkpoint.MANIFEST_NAME)
