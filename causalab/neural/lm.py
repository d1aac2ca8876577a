"""Hugging Face causal LMs as targets: residual-stream sites at named token positions.

Network inputs are a tensor of token ids or a mapping with ``input_ids`` and, per
named position ``p``, a ``(B,)`` tensor ``pos_p``. ``last`` needs none (the last real
token); the other names are the task's (:attr:`causalab.Task.positions`: IOI marks
``pos_s2`` and ``pos_io``). Sequences are right-padded and run *without* an attention mask: under
causal attention, padding after a token cannot change it, so every real position
is exact and batches need no mask logic.

Two patching engines give the same logits: ``"hook"`` (a forward hook on the block,
the default: fewer layers of bookkeeping) and ``"pyvene"`` (pyvene's
``IntervenableModel``; see :mod:`causalab.neural.pyvene_engine`).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from causalab.errors import ConfigError, SiteError
from causalab.neural.components import BlockParts, Component, hook
from causalab.neural.pythia_init import INITS, pythia_init_
from causalab.neural.resume_cache import ResumeCache
from causalab.neural.seeding import seeded
from causalab.neural.target import Site, Target
from causalab.runtime import RuntimeSettings

# target_options "arch" -> (transformers config class, query heads per key/value head). The Llama-like
# families use grouped-query attention as their released models do (two query heads per key/value
# head here; OLMo 2 has none); head width = width / heads, Gemma's score scale 1/sqrt(head width).
LLAMA_LIKE: dict[str, tuple[str, int]] = {
    "llama": ("LlamaConfig", 2),
    "qwen2": ("Qwen2Config", 2),
    "qwen3": ("Qwen3Config", 2),
    "gemma2": ("Gemma2Config", 2),
    "gemma3": ("Gemma3TextConfig", 2),
    "olmo2": ("Olmo2Config", 1),
    "mistral": ("MistralConfig", 2),
}
ARCHS = ("gpt_neox", "gpt2", *LLAMA_LIKE)
ENGINES = ("hook", "pyvene")
# Pythia-like shapes: layers, width, heads, MLP width (Pythia's own, with a word-level vocabulary).
SIZES: dict[str, tuple[int, int, int, int]] = {
    "tiny": (2, 32, 4, 128),
    "small": (2, 64, 4, 256),
    "4x128": (4, 128, 4, 512),  # the 14m width at 4 layers
    "14m": (6, 128, 4, 512),
    "31m": (6, 256, 8, 1024),
    "70m": (6, 512, 8, 2048),
    "160m": (12, 768, 12, 3072),
    "410m": (24, 1024, 16, 4096),
    "1b": (16, 2048, 8, 8192),
    "1.4b": (24, 2048, 16, 8192),
}
POSITIONS = ("last",)  # named positions every LM input has; a task's encoding marks more (Task.positions)


class _Stop(Exception):
    """Raised by a read hook to stop the forward pass once the site is read; carries what it read."""


def _keep(h: torch.Tensor) -> None:
    raise _Stop(h)


def lm_config(arch: str = "gpt_neox", size: str = "14m", *, vocab_size: int, max_positions: int = 64, **overrides: Any):
    """A transformers config of a Pythia-like size (``SIZES``: layers, width, heads, MLP width) for ``arch``
    (one of ``ARCHS``: "gpt_neox", "gpt2", or a Llama-like family of ``LLAMA_LIKE``); ``overrides`` replace fields."""
    if size not in SIZES:
        raise ConfigError(f"unknown LM size {size!r}; known sizes: {', '.join(SIZES)}")
    layers, width, heads, ffn = SIZES[size]
    if arch == "gpt_neox":
        from transformers import GPTNeoXConfig

        kw = dict(
            vocab_size=vocab_size, hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=ffn, max_position_embeddings=max_positions, rotary_pct=0.25,
            use_parallel_residual=True, bos_token_id=None, eos_token_id=None, tie_word_embeddings=False,
        )
        return GPTNeoXConfig(**{**kw, **overrides})
    if arch == "gpt2":
        from transformers import GPT2Config

        kw = dict(
            vocab_size=vocab_size, n_embd=width, n_layer=layers, n_head=heads, n_inner=ffn,
            n_positions=max_positions, bos_token_id=None, eos_token_id=None,
        )
        return GPT2Config(**{**kw, **overrides})
    if arch in LLAMA_LIKE:
        import transformers

        name, group = LLAMA_LIKE[arch]
        kw = dict(
            vocab_size=vocab_size, hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
            num_key_value_heads=heads // group, head_dim=width // heads, intermediate_size=ffn,
            max_position_embeddings=max_positions, bos_token_id=None, eos_token_id=None, pad_token_id=None,
        )
        if arch.startswith("gemma"):
            kw["query_pre_attn_scalar"] = width // heads
        return getattr(transformers, name)(**{**kw, **overrides})
    raise ConfigError(f"unknown LM architecture {arch!r}; known: {', '.join(ARCHS)}")


def _find_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The transformer blocks: the ModuleList with one entry per layer (``layers`` or ``h``)."""
    n = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) == n and name.split(".")[-1] in ("layers", "h", "blocks"):
            return name, mod
    raise ConfigError(f"cannot find the transformer blocks of {type(model).__name__} (no ModuleList of {n} layers)")


class LMTarget(Target):
    """A frozen causal LM. Sites: block outputs (residual stream) of layers 1..L at a token position.

    A position is ``"last"``, an index, or a name the inputs mark (``pos_<name>``, see the
    module); ``positions`` are the named ones :meth:`sites` lists."""

    def __init__(self, model: nn.Module, tokenizer: Any = None, *, engine: str = "hook",
                 positions: Sequence[str] = POSITIONS) -> None:
        super().__init__()
        if engine not in ENGINES:
            raise ConfigError(f"unknown patching engine {engine!r}; known: {', '.join(ENGINES)}")
        self.model = model
        self.tokenizer = tokenizer
        self.engine = engine
        self.positions = tuple(positions)
        self.layer_path, self.blocks = _find_layers(model)
        self.n_layers = len(self.blocks)
        self._compiled_resume: Callable[..., torch.Tensor] | None = None  # made on the first compiled step
        self._checked_sites: set[Site] = set()  # sites check_site has passed: every batch asks again
        self._engine_models: dict = {}  # a patching engine's wrapped models (pyvene's), kept out of the module tree
        self._parts: list[BlockParts] = []  # the block's sub-modules for component sites, read on first use
        self.hidden_width = self._dry_width()

    def engine_model(self, key: Any, build: Callable[[], Any]) -> Any:
        """A patching engine's model for ``key`` (pyvene's ``IntervenableModel`` per site), built once by ``build()``.

        Kept on the target, outside its module tree, so repeated steps reuse it.
        """
        model = self._engine_models.get(key)
        if model is None:
            model = self._engine_models[key] = build()
        return model

    def compiled_resume(self) -> Callable[..., torch.Tensor]:
        """This target's ``torch.compile`` of the resumed blocks (:func:`causalab.neural.resume.compile_resume`), made once.

        Parameters are inputs to the compiled graph, so steps at any site reuse it; a new shape recompiles.
        """
        if self._compiled_resume is None:
            from causalab.neural.resume import compile_resume

            self._compiled_resume = compile_resume()
        return self._compiled_resume

    def _dry_width(self) -> int:
        """Width of the residual stream, read from a one-token forward pass rather than the config."""
        p = next(self.model.parameters())
        with torch.no_grad():
            h = self.hidden(torch.zeros(1, 1, dtype=torch.long, device=p.device), Site(1, "last"))
        return int(h.shape[-1])

    # --- sites ----------------------------------------------------------------------
    def sites(self) -> list[Site]:
        return [Site(k, p) for k in range(1, self.n_layers + 1) for p in self.positions]

    def check_site(self, site: Site) -> Site:
        """``site`` if this LM has it, else a :class:`SiteError` naming the wrong part; checked once per site."""
        if isinstance(site, Site) and site in self._checked_sites:
            return site
        if not isinstance(site, Site):
            raise SiteError(f"expected a Site, got {site!r}")
        if not isinstance(site.layer, int) or not 1 <= site.layer <= self.n_layers:
            raise SiteError(f"layer {site.layer!r} is out of range: this LM has layers 1..{self.n_layers}", "layer")
        pos = site.position
        if pos is None:
            raise SiteError(f"site {site} names no token position; use 'last', a position the task's inputs mark "
                            "(Task.positions) or an int", "position")
        if isinstance(pos, bool) or not (isinstance(pos, int) or (isinstance(pos, str) and pos.isidentifier())):
            raise SiteError(f"token position {pos!r} is neither a name ('last', or one the task's inputs mark, "
                            "such as IOI's 's2') nor an int >= 0", "position")
        if isinstance(pos, int) and pos < 0:
            raise SiteError(f"token position {pos} is negative; give an index >= 0 or 'last'", "position")
        try:
            component = Component.parse(site.component)
            if component.kind != "block_output":
                self.parts().width(component, self.hidden_width)  # heads that exist
        except SiteError as exc:
            exc.part = exc.part or "component"
            raise
        self._checked_sites.add(site)
        return site

    def parts(self) -> BlockParts:
        """The attention, MLP and head layout of the blocks (for component sites), read by running once."""
        if not self._parts:
            config = getattr(self.model, "config", None)
            heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None)
            self._parts.append(BlockParts(self.model, self.blocks, heads))
        return self._parts[0]

    @property
    def path(self) -> str:
        """How block-output sites are patched: ``"resume"`` (only the blocks above the site run, from a cache:
        GPT-NeoX, GPT-2 and the Llama-like families on the hook engine), ``"hooked"`` (a full forward pass with
        a hook: any other family) or ``"pyvene"`` (every site through pyvene's full forward). Component sites on
        the hook engine always run hooked; a sequence longer than a sliding attention window (:meth:`layout`)
        falls back to the hooked forward."""
        from causalab.neural.resume import supports_resume

        if self.engine != "hook":
            return self.engine
        return "resume" if supports_resume(self.model) else "hooked"

    def path_for(self, inputs: Any, site: Site) -> str:
        """The path a fitting step at ``site`` takes on ``inputs`` (as :meth:`resume_cache` decides it):
        :attr:`path`, except ``"hooked"`` for component sites on the hook engine and for sequences longer
        than the model's sliding attention window (Mistral, Gemma 2/3, Qwen 2 with one: the fast path's
        masks are plainly causal, so the hooked forward, which applies the window, runs instead)."""
        from causalab.neural.resume import architecture

        site = self.check_site(site)
        if self.path != "resume":
            return self.path
        if Component.parse(site.component).kind != "block_output":
            return "hooked"
        window = architecture(self.model).exact_length(self.model)
        return "hooked" if window is not None and self.input_ids(inputs).shape[1] > window else "resume"

    def layout(self):
        """The model's pieces as measured (:class:`~causalab.neural.layout.Layout`): family, path, module names,
        heads and key/value heads, head width, final norm, unembedding, positional scheme, sliding window."""
        from causalab.neural.layout import measure_layout

        return measure_layout(self.model, self.layer_path, self.blocks, self.hidden_width, self.parts(), self.path)

    def width(self, site: Site) -> int:
        site = self.check_site(site)
        component = Component.parse(site.component)
        if component.kind == "block_output":
            return self.hidden_width
        return self.parts().width(component, self.hidden_width)

    # --- inputs ---------------------------------------------------------------------
    @staticmethod
    def input_ids(inputs: Any) -> torch.Tensor:
        return inputs if isinstance(inputs, torch.Tensor) else inputs["input_ids"]

    def token_positions(self, inputs: Any, position: str | int) -> torch.Tensor:
        """``(B,)`` token indices of ``position`` in each row."""
        ids = self.input_ids(inputs)
        mask = inputs.get("attention_mask") if isinstance(inputs, Mapping) else None
        padded_before = None if mask is None else (mask[:, 1:] > mask[:, :-1]).any(1)
        if padded_before is not None and bool(padded_before.any()):
            row = int(padded_before.nonzero()[0])
            raise ConfigError(
                f"row {row} of the attention mask has padding before a real token: LM targets run without the "
                "mask and read the last real token, so pad on the right (tokenizer.padding_side = 'right')"
            )
        b, t = ids.shape
        if isinstance(position, int):
            if position >= t:
                raise SiteError(f"token position {position} is beyond the sequence length {t}")
            return torch.full((b,), position, dtype=torch.long, device=ids.device)
        key = f"pos_{position}"
        if isinstance(inputs, Mapping) and key in inputs:
            return inputs[key].long().to(ids.device)
        if position == "last":
            if isinstance(inputs, Mapping) and "attention_mask" in inputs:
                return inputs["attention_mask"].long().sum(1) - 1
            return torch.full((b,), t - 1, dtype=torch.long, device=ids.device)
        marked = ["last", *(k[4:] for k in inputs if k.startswith("pos_") and k != "pos_last")] \
            if isinstance(inputs, Mapping) else ["last"]
        raise SiteError(f"the inputs carry no positions for {position!r} (expected a key {key!r}); they mark: "
                        f"{', '.join(marked)} (or give an index)", "position")

    # --- running --------------------------------------------------------------------
    def hidden(self, inputs: Any, site: Site, resume: ResumeCache | None = None) -> torch.Tensor:
        site = self.check_site(site)
        pos = self.token_positions(inputs, site.position)
        component = Component.parse(site.component)
        if component.kind != "block_output":
            return self._component_hidden(inputs, site, component, pos)
        stream = resume.stream if resume is not None and resume.serves(site.layer) else None
        if stream is not None:  # cached by resume_cache: no forward pass
            col = pos.to(stream.device) - (0 if resume.starts is None else resume.starts)
            if bool(((col >= 0) & (col < stream.shape[1])).all()):
                return stream[torch.arange(stream.shape[0], device=stream.device), col]

        def read(module, args, output):
            hs = output[0] if isinstance(output, tuple) else output
            _keep(hs[torch.arange(hs.shape[0], device=hs.device), pos])

        return self._read_until(inputs, lambda: self.blocks[site.layer - 1].register_forward_hook(read))

    def _component_hidden(self, inputs: Any, site: Site, component: Component, pos: torch.Tensor) -> torch.Tensor:
        return self._read_until(inputs, lambda: hook(self.parts(), component, site.layer, pos, read=_keep))

    def _read_until(self, inputs: Any, register: Callable[[], Any]) -> torch.Tensor:
        """Run the model with the hook ``register()`` installs, until the hook has read the site (:func:`_keep`)."""
        handle = register()
        try:
            self.model(input_ids=self.input_ids(inputs), use_cache=False)
        except _Stop as stop:
            return stop.args[0]
        finally:
            handle.remove()
        raise SiteError("the forward pass never reached the site's module")

    def logits(self, inputs: Any) -> torch.Tensor:
        """Full-vocabulary logits at the last position, ``(B, V)``.

        Families with an adapter unembed the last position only (with their logit soft-capping);
        any other model runs its own full forward pass."""
        from causalab.neural.resume import ARCHITECTURES, model_type

        pos = self.token_positions(inputs, "last")
        arch = ARCHITECTURES.get(model_type(self.model))
        if arch is None:
            logits = self.model(input_ids=self.input_ids(inputs), use_cache=False).logits
            return logits[torch.arange(logits.shape[0], device=logits.device), pos.to(logits.device)]
        hidden = self.model.base_model(input_ids=self.input_ids(inputs), use_cache=False).last_hidden_state
        return arch.unembed(self.model, hidden[torch.arange(hidden.shape[0], device=hidden.device), pos])

    def resume_cache(self, inputs: Any, site: Site, runtime: RuntimeSettings | None = None,
                     batch_size: int = 256) -> ResumeCache | None:
        """Cache what a fitting step resumes from, once per dataset (no autograd, ``batch_size`` rows at a time).

        Each row's positions before its own first patched or read position ``s`` do not
        depend on the patch. What is kept (a :class:`ResumeCache`) is the first of these
        that fits in ``runtime.kv_cache_mb`` (default 4096; ``runtime`` defaults to
        :meth:`RuntimeSettings.from_env`):

        1. ``"window"``: the upper blocks' keys and values there (one tensor per block and
           kind, stored as ``runtime.kv_cache_dtype``, default float32) and the residual
           stream after the site's block from ``s`` to the row's patched and read
           positions only: a last-token step then runs one position per row and upper block;
        2. ``"stream"``: the whole residual stream after the site's block: each step
           recomputes the prefix's keys and values without autograd;
        3. ``"recompute"``: nothing; each step also recomputes the stream without
           autograd, so only the hidden states at the site stay in memory.

        All three give the same logits; steps on the cache run the resumed blocks through
        ``torch.compile`` when ``runtime.compile`` (the cache says so). Only for block outputs on the hook engine and
        architectures :mod:`causalab.neural.resume` covers (:attr:`path` is ``"resume"``),
        and sequences that fit in the model's sliding attention window if it has one;
        otherwise each step runs the full forward with a hook (``None``: nothing cached).
        """
        from causalab.neural.resume import architecture, prefix_keys_values, residual_stream, split_keys_values, supports_resume

        site = self.check_site(site)
        if self.engine != "hook" or not supports_resume(self.model) or site.component != "block_output":
            return None
        ids = self.input_ids(inputs)
        window = architecture(self.model).exact_length(self.model)
        if window is not None and ids.shape[1] > window:  # the resume path's masks are plain causal
            return None
        runtime = runtime if runtime is not None else RuntimeSettings.from_env()
        n, T = ids.shape
        upper = self.n_layers - site.layer
        patched, read = self.token_positions(inputs, site.position), self.token_positions(inputs, "last")
        starts = torch.minimum(patched, read)
        S = int(starts.max()) if n else 0
        W = int((torch.maximum(patched, read) - starts).max()) + 1 if n else 1
        store = runtime.kv_cache_torch_dtype
        itemsize = torch.empty(0, dtype=store).element_size()
        budget, mib = runtime.kv_cache_mb, 2**20
        row_cache_mb = n * self.hidden_width * (upper * 2 * S * itemsize + W * 4) / mib
        cache_kv = n > 0 and row_cache_mb <= budget
        if n and not cache_kv and n * T * self.hidden_width * 4 / mib > budget:
            return ResumeCache(site.layer, compile=runtime.compile)
        kept: torch.Tensor | None = None  # the stream (or its windows), filled in place like the cache:
        kvs: dict[str, torch.Tensor] = {}  # concatenating parts would hold two copies of it at the end
        with torch.no_grad():
            for i in range(0, n, batch_size):
                stream = residual_stream(self.model, ids[i : i + batch_size], site.layer)
                if cache_kv:
                    cols = (starts[i : i + batch_size, None] + torch.arange(W, device=ids.device)).clamp(max=T - 1)
                    part_stream = stream.gather(1, cols.unsqueeze(-1).expand(*cols.shape, stream.shape[-1]))
                    if upper and S:
                        part = split_keys_values(prefix_keys_values(self.model, stream, site.layer, S))
                        kvs = kvs or {k: v.new_empty((n, *v.shape[1:]), dtype=store) for k, v in part.items()}
                        for k, v in part.items():
                            kvs[k][i : i + batch_size] = v
                else:
                    part_stream = stream
                if kept is None:
                    kept = part_stream.new_empty((n, *part_stream.shape[1:]))
                kept[i : i + batch_size] = part_stream
        if kept is None:
            return None
        if not cache_kv:
            return ResumeCache(site.layer, kept, compile=runtime.compile)
        return ResumeCache(site.layer, kept, starts, kvs, compile=runtime.compile)

    def patched_logits(self, inputs: Any, site: Site, h: torch.Tensor, engine: str | None = None, *,
                       resume: ResumeCache | None = None) -> torch.Tensor:
        """Last-position logits with the block output at ``site`` replaced by ``h`` ``(B, d)``.

        With a cache of the stream (``resume``, from :meth:`resume_cache`, rows as ``inputs``)
        only the blocks above the site run.
        """
        site = self.check_site(site)
        engine = engine or self.engine
        component = Component.parse(site.component)
        if component.kind != "block_output" and engine == "pyvene":
            from causalab.neural.pyvene_engine import pyvene_patched_logits

            return pyvene_patched_logits(self, inputs, site, h)
        if component.kind != "block_output":
            if engine != "hook":
                raise ConfigError(f"unknown patching engine {engine!r}; known: {', '.join(ENGINES)}")
            handle = hook(self.parts(), component, site.layer, self.token_positions(inputs, site.position), value=h)
            try:
                return self.logits(inputs)
            finally:
                handle.remove()
        resume = resume if resume is not None and resume.serves(site.layer) else None
        stream = None if resume is None else resume.stream
        if engine == "hook" and resume is not None and resume.kind == "recompute":
            from causalab.neural.resume import residual_stream

            with torch.no_grad():
                stream = residual_stream(self.model, self.input_ids(inputs), site.layer)
        if engine == "hook" and stream is not None:
            from causalab.neural.resume import resume_logits, resume_window  # noqa: I001

            positions, read = self.token_positions(inputs, site.position), self.token_positions(inputs, "last")
            starts, kv = resume.starts, resume.keys_values or None
            compiled = self.compiled_resume() if resume.compile else None
            if starts is None:
                return resume_logits(self.model, site.layer, stream, positions, h, read_positions=read, prefix_kv=kv,
                                     compiled=compiled)
            if kv is not None or site.layer == self.n_layers or not bool(starts.any()):
                return resume_window(self.model, site.layer, stream, starts, positions, h, read, kv, compiled=compiled)
            # a window of the stream without its cached prefix: the full forward below
        if engine == "pyvene":
            from causalab.neural.pyvene_engine import pyvene_patched_logits

            return pyvene_patched_logits(self, inputs, site, h)
        if engine != "hook":
            raise ConfigError(f"unknown patching engine {engine!r}; known: {', '.join(ENGINES)}")
        pos = self.token_positions(inputs, site.position)

        def patch(module, args, output):
            hs = output[0] if isinstance(output, tuple) else output
            rows = torch.arange(hs.shape[0], device=hs.device)
            hs = hs.index_put((rows, pos), h.to(hs.dtype))
            return (hs, *output[1:]) if isinstance(output, tuple) else hs

        handle = self.blocks[site.layer - 1].register_forward_hook(patch)
        try:
            return self.logits(inputs)
        finally:
            handle.remove()

    # --- persistence ----------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """``save_pretrained`` (safetensors) of the model and its tokenizer into one folder."""
        with contextlib.redirect_stderr(io.StringIO()):  # transformers' progress bar
            self.model.save_pretrained(str(path))
            if self.tokenizer is not None:
                self.tokenizer.save_pretrained(str(path))


def from_pretrained(path_or_name: str | os.PathLike, revision: str | None = None, *, engine: str = "hook",
                    dtype: torch.dtype = torch.float32, positions: Sequence[str] = POSITIONS, **kwargs: Any) -> LMTarget:
    """Load a causal LM and its own tokenizer from a local folder or a hub name (with a revision such as ``step0``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = str(path_or_name)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # transformers' loading progress bar
            model = AutoModelForCausalLM.from_pretrained(src, revision=revision, dtype=dtype, **kwargs)
            tokenizer = _saved_tokenizer(src, AutoTokenizer.from_pretrained(src, revision=revision, **kwargs), **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load a causal LM from {src!r} (revision {revision!r}): {exc}") from exc
    return LMTarget(model.eval(), tokenizer, engine=engine, positions=positions).freeze()


GENERIC_TOKENIZERS = ("TokenizersBackend", "PreTrainedTokenizerFast")


def _saved_tokenizer(src: str, tokenizer: Any, **kwargs: Any) -> Any:
    """The tokenizer a local folder saved, where ``AutoTokenizer`` picked the model family's own class instead.

    transformers maps some model types to their family's tokenizer (a ``qwen2`` folder loads as
    ``Qwen2Tokenizer``, which rebuilds a byte-level BPE from the vocabulary), even when the folder
    saved a plain fast tokenizer (``tokenizer_class`` ``TokenizersBackend``), such as the word-level
    one of :mod:`causalab.neural.wordlevel`; the ids would then change. Such a folder is reloaded
    as the plain fast tokenizer it saved.
    """
    import json
    from pathlib import Path

    from transformers import PreTrainedTokenizerFast

    folder = Path(src)
    config = folder / "tokenizer_config.json"
    if not (config.is_file() and (folder / "tokenizer.json").is_file()):
        return tokenizer
    saved = json.loads(config.read_text()).get("tokenizer_class")
    if saved in GENERIC_TOKENIZERS and type(tokenizer).__name__ not in GENERIC_TOKENIZERS:
        return PreTrainedTokenizerFast.from_pretrained(src, **kwargs)
    return tokenizer


def random_lm(vocab_size: int, *, arch: str = "gpt_neox", size: str = "14m", seed: int = 0, tokenizer: Any = None,
              dtype: torch.dtype = torch.float32, engine: str = "hook", max_positions: int = 64,
              init: str = "transformers", **overrides: Any) -> LMTarget:
    """A causal LM at random initialisation from ``seed``.

    ``init`` is ``"transformers"`` (the default) or its other name ``"family"``: the family's own
    ``_init_weights``, as transformers builds it (N(0, 0.02) projections for most families, Gemma's
    norms at 0 since they scale by ``1 + weight``); or ``"pythia"``: the GPT-NeoX library's small_init /
    wang_init by role, as Pythia's ``step0``, for every family of ``ARCHS``
    (:mod:`causalab.neural.pythia_init`). The caller's global random stream is left where it was."""
    from transformers import AutoModelForCausalLM

    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}; valid: {', '.join(INITS)}")
    config = lm_config(arch, size, vocab_size=vocab_size, max_positions=max_positions, **overrides)
    with seeded(seed):  # transformers' init draws from the global generator; the caller's stream is restored
        model = AutoModelForCausalLM.from_config(config)
    if init == "pythia":
        pythia_init_(model, torch.Generator().manual_seed(seed))
    model = model.to(dtype).eval()
    return LMTarget(model, tokenizer, engine=engine).freeze()
