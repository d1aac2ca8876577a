"""How a process runs, as opposed to what it computes: the runtime settings, read once.

A run's config says what to build and fit; these settings say how the work is carried
out: the budget and storage dtype of a language model's key/value cache, whether the
resumed blocks are compiled, and torch threads. They never enter a config's hash. The
entry points (the command line, the sweep workers, :func:`causalab.fit.measure.measure`
when given none) read them once, with :meth:`RuntimeSettings.from_env`; Python code
passes its own; nothing in a fitting step reads the environment.

=================  ==========================  ==============================================
setting            environment variable        values
=================  ==========================  ==============================================
``kv_cache_mb``    ``CAUSALAB_KV_CACHE_MB``    MiB per prepared dataset, >= 0 (default 4096;
                                               0 keeps no key/value cache)
``kv_cache_dtype`` ``CAUSALAB_KV_CACHE_DTYPE`` ``float32`` (default), ``float16``, ``bfloat16``
``compile``        ``CAUSALAB_COMPILE``        ``0`` (default) or ``1``: ``torch.compile`` the
                                               resumed blocks
``threads``        ``CAUSALAB_THREADS``        torch threads per process, >= 1 (default 1)
=================  ==========================  ==============================================
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from causalab.errors import RuntimeSettingError
from causalab.threads import ENV as THREADS_ENV

ENV = {"kv_cache_mb": "CAUSALAB_KV_CACHE_MB", "kv_cache_dtype": "CAUSALAB_KV_CACHE_DTYPE",
       "compile": "CAUSALAB_COMPILE", "threads": THREADS_ENV}
KV_CACHE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# the settings that can change a run's numbers (a record keeps them): the cache's dtype rounds the cached keys
# and values, its budget picks the cached or the recomputing path (the same logits to 1e-5), and compiling
# reorders the resumed blocks' float arithmetic
RECORDED = ("kv_cache_mb", "kv_cache_dtype", "compile")


@dataclass(frozen=True)
class RuntimeSettings:
    """Runtime settings of a process (see the module's table); checked on construction.

    Example:

    >>> RuntimeSettings(kv_cache_mb=512, kv_cache_dtype="float16").kv_cache_torch_dtype
    torch.float16
    >>> RuntimeSettings.from_env({"CAUSALAB_COMPILE": "1"}).compile
    True
    """

    kv_cache_mb: float = 4096.0
    kv_cache_dtype: str = "float32"
    compile: bool = False
    threads: int = 1

    def __post_init__(self) -> None:
        mb = self.kv_cache_mb
        if isinstance(mb, bool) or not isinstance(mb, (int, float)) or math.isnan(mb) or mb < 0:
            raise RuntimeSettingError("kv_cache_mb", f"runtime setting kv_cache_mb must be a number of MiB >= 0 "
                                      f"(0 keeps no key/value cache), got {mb!r}")
        object.__setattr__(self, "kv_cache_mb", float(mb))
        if self.kv_cache_dtype not in KV_CACHE_DTYPES:
            raise RuntimeSettingError("kv_cache_dtype", f"runtime setting kv_cache_dtype must be one of "
                                      f"{', '.join(KV_CACHE_DTYPES)}, got {self.kv_cache_dtype!r}")
        if not isinstance(self.compile, bool):
            raise RuntimeSettingError("compile", f"runtime setting compile must be true or false, got {self.compile!r}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise RuntimeSettingError("threads", f"runtime setting threads must be a positive integer (torch threads "
                                      f"per process), got {self.threads!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> RuntimeSettings:
        """The settings the environment (default ``os.environ``) sets, defaults elsewhere; ``overrides`` win.

        An override of ``None`` is no override (an option not given on the command line).
        A malformed variable raises :class:`~causalab.errors.RuntimeSettingError` naming it.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        raw = env.get(ENV["kv_cache_mb"], "").strip()
        if raw:
            try:
                values["kv_cache_mb"] = float(raw)
            except ValueError:
                raise RuntimeSettingError("kv_cache_mb", f"{ENV['kv_cache_mb']} must be a number of MiB, got {raw!r}") from None
            if not values["kv_cache_mb"] >= 0:
                raise RuntimeSettingError("kv_cache_mb", f"{ENV['kv_cache_mb']} must be >= 0 (0 turns the cache off), "
                                          f"got {raw!r}")
        raw = env.get(ENV["kv_cache_dtype"], "").strip()
        if raw:
            if raw not in KV_CACHE_DTYPES:
                raise RuntimeSettingError("kv_cache_dtype", f"{ENV['kv_cache_dtype']} must be one of "
                                          f"{', '.join(KV_CACHE_DTYPES)}, got {raw!r}")
            values["kv_cache_dtype"] = raw
        raw = env.get(ENV["compile"], "").strip()
        if raw not in ("", "0", "1"):
            raise RuntimeSettingError("compile", f"{ENV['compile']} must be 0 (run the resumed blocks eagerly) or 1 "
                                      f"(torch.compile them), got {raw!r}")
        values["compile"] = raw == "1"
        raw = env.get(ENV["threads"], "").strip()
        if raw:
            try:
                values["threads"] = int(raw)
            except ValueError:
                raise RuntimeSettingError("threads", f"${ENV['threads']} must be a positive integer (torch threads per "
                                          f"process), got {raw!r}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise RuntimeSettingError(unknown[0], f"unknown runtime setting {unknown[0]!r}; known: {', '.join(ENV)}")
        return cls(**values)

    @property
    def kv_cache_torch_dtype(self) -> torch.dtype:
        """The key/value cache's storage dtype as a torch dtype."""
        return KV_CACHE_DTYPES[self.kv_cache_dtype]

    def to_env(self) -> dict[str, str]:
        """The environment variables that set these settings: what a sweep's worker processes read.

        >>> RuntimeSettings(kv_cache_mb=512, compile=True).to_env()["CAUSALAB_KV_CACHE_MB"]
        '512.0'
        >>> RuntimeSettings.from_env(RuntimeSettings(threads=2).to_env()) == RuntimeSettings(threads=2)
        True
        """
        return {ENV["kv_cache_mb"]: str(self.kv_cache_mb), ENV["kv_cache_dtype"]: self.kv_cache_dtype,
                ENV["compile"]: "1" if self.compile else "0", ENV["threads"]: str(self.threads)}

    def to_record(self) -> dict[str, Any]:
        """The settings that can change a run's numbers, for its record (never its hash)."""
        return {name: getattr(self, name) for name in RECORDED}
