"""Pythia's own initialisation (its ``step0`` checkpoints) for a GPT-NeoX built here.

transformers initialises every GPT-NeoX weight from N(0, 0.02). The GPT-NeoX library that
trained Pythia does not: its ``small_init`` draws the embeddings, the query/key/value
projection, the MLP's up projection and the unembedding from N(0, sqrt(2 / (5 d))), and its
``wang_init`` draws the two projections that write into the residual stream (attention
``dense``, MLP ``dense_4h_to_h``) from N(0, 2 / (L sqrt(d))), with ``d`` the width and ``L``
the number of layers; biases are zero and layer norms start at weight 1, bias 0. A random
Pythia-like model made with ``init="pythia"`` is therefore distributed as Pythia's own
``step0`` (Nguyen & Salazar 2019; Wang & Komatsuzaki 2021; Biderman et al. 2023).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from causalab.errors import ConfigError

INITS = ("transformers", "pythia")
RESIDUAL_WRITERS = ("dense", "dense_4h_to_h")  # GPT-NeoX's names of the two output projections


def small_init_std(width: int) -> float:
    return math.sqrt(2.0 / (5.0 * width))


def wang_init_std(width: int, layers: int) -> float:
    return 2.0 / (layers * math.sqrt(width))


@torch.no_grad()
def pythia_init_(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Re-initialise a transformers GPT-NeoX model in place as the GPT-NeoX library initialises Pythia."""
    config = model.config
    if getattr(config, "model_type", None) != "gpt_neox":
        raise ConfigError(f"init 'pythia' is GPT-NeoX's own initialisation; this model is {config.model_type!r} "
                          "(use arch='gpt_neox', or init='transformers')")
    d, layers = config.hidden_size, config.num_hidden_layers
    small, wang = small_init_std(d), wang_init_std(d, layers)
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.normal_(0.0, wang if leaf in RESIDUAL_WRITERS else small, generator=generator)
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
    return model
