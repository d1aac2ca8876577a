"""Pythia's own initialisation (its ``step0`` checkpoints) for a model built here, by each weight's role.

transformers initialises every weight of a random model through the family's own
``_init_weights`` (most families: N(0, 0.02) for every projection and embedding; ``init="family"``,
also called ``"transformers"``). The GPT-NeoX library that trained Pythia does not: its
``small_init`` draws the embeddings, the query/key/value projections, the MLP's input
projections and the unembedding from N(0, sqrt(2 / (5 d))), and its ``wang_init`` draws the
two projections that write into the residual stream (the attention's output projection and
the MLP's output projection) from N(0, 2 / (L sqrt(d))), with ``d`` the width and ``L`` the
number of layers; biases are zero and layer norms start at weight 1, bias 0. A random
Pythia-like model made with ``init="pythia"`` is therefore distributed as Pythia's own
``step0`` (Nguyen & Salazar 2019; Wang & Komatsuzaki 2021; Biderman et al. 2023).

The scheme is defined by role, so it applies to every family whose residual writers are
named in :data:`RESIDUAL_WRITERS` (GPT-NeoX: ``dense``, ``dense_4h_to_h``; GPT-2: both
``c_proj``; the Llama-like families: ``o_proj``, ``down_proj``). RMSNorms keep the family's
own neutral start (weight 1, or 0 where the norm scales by ``1 + weight``, as Gemma's does).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from causalab.errors import ConfigError

INITS = ("transformers", "family", "pythia")  # "transformers" and "family" are the same: the family's own init
_LLAMA_WRITERS = ("o_proj", "down_proj")
# model type -> the leaf names of the projections that write into the residual stream (wang_init)
RESIDUAL_WRITERS: dict[str, tuple[str, ...]] = {
    "gpt_neox": ("dense", "dense_4h_to_h"),
    "gpt2": ("c_proj",),  # the attention's and the MLP's output projection share the name
    **{name: _LLAMA_WRITERS for name in ("llama", "mistral", "qwen2", "qwen3", "olmo2", "gemma2", "gemma3_text")},
}


def small_init_std(width: int) -> float:
    return math.sqrt(2.0 / (5.0 * width))


def wang_init_std(width: int, layers: int) -> float:
    return 2.0 / (layers * math.sqrt(width))


@torch.no_grad()
def pythia_init_(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Re-initialise a transformers model in place as the GPT-NeoX library initialises Pythia (by role).

    Raises :class:`~causalab.errors.ConfigError` naming the families it covers for any other model type.
    """
    config = model.config
    family = getattr(config, "model_type", None)
    if family not in RESIDUAL_WRITERS:
        raise ConfigError(f"init 'pythia' (the GPT-NeoX library's small_init / wang_init) is defined for the model "
                          f"types {', '.join(RESIDUAL_WRITERS)}; this model is {family!r} (use init='family')")
    writers = RESIDUAL_WRITERS[family]
    d, layers = config.hidden_size, config.num_hidden_layers
    small, wang = small_init_std(d), wang_init_std(d, layers)
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(module, (nn.Linear, nn.Embedding)) or type(module).__name__ == "Conv1D":  # GPT-2's projections
            module.weight.normal_(0.0, wang if leaf in writers else small, generator=generator)
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
    return model
