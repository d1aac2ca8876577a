"""Resume-from-site equals a full forward pass with the block output patched by a hook."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from causalab import FitConfig, Partition, Site, Target, Task, evaluate, fit_alignment, make_alignment, prepare  # noqa: E402
from causalab.causal.algorithm import Algorithm  # noqa: E402
from causalab.errors import ArchitectureError, SiteError  # noqa: E402
from causalab.neural.resume import (  # noqa: E402
    compile_resume,
    hooked_logits,
    prefix_keys_values,
    residual_stream,
    resume_logits,
    resume_window,
    split_keys_values,
    supports_resume,
)

VOCAB, WIDTH, LAYERS, SEQ = 61, 32, 3, 7


def tiny_lm(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    if kind == "gpt_neox":
        cfg = transformers.GPTNeoXConfig(
            vocab_size=VOCAB, hidden_size=WIDTH, num_hidden_layers=LAYERS, num_attention_heads=4,
            intermediate_size=2 * WIDTH, max_position_embeddings=32, bos_token_id=0, eos_token_id=0,
        )
        model = transformers.GPTNeoXForCausalLM(cfg)
    else:
        cfg = transformers.GPT2Config(
            vocab_size=VOCAB, n_embd=WIDTH, n_layer=LAYERS, n_head=4, n_positions=32, bos_token_id=0, eos_token_id=0
        )
        model = transformers.GPT2LMHeadModel(cfg)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def tokens(n: int, g: torch.Generator, left_pads: dict[int, int] | None = None):
    """``n`` random sequences and, with ``left_pads`` (row -> padded positions), their attention mask."""
    ids = torch.randint(0, VOCAB, (n, SEQ), generator=g)
    if left_pads is None:
        return ids, None
    mask = torch.ones(n, SEQ, dtype=torch.long)
    for row, k in left_pads.items():
        mask[row, :k] = 0
    return ids, mask


@pytest.mark.parametrize("kind", ["gpt_neox", "gpt2"])
@pytest.mark.parametrize("padded", [False, True])
def test_resume_matches_hooked_forward(kind, padded):
    model = tiny_lm(kind)
    g = torch.Generator().manual_seed(1)
    ids, mask = tokens(6, g, {0: 2, 3: 1} if padded else None)
    for layer in range(LAYERS + 1):
        stream = residual_stream(model, ids, layer, attention_mask=mask)
        for positions in (torch.full((6,), SEQ - 1), torch.tensor([0, 3, 6, 2, 5, 4]), torch.full((6,), 2)):
            h = torch.randn(6, WIDTH, generator=g)
            with torch.no_grad():
                fast = resume_logits(model, layer, stream, positions, h, attention_mask=mask)
                ref = hooked_logits(model, layer, ids, positions, h, attention_mask=mask)
            assert fast.shape == (6, VOCAB)
            assert torch.allclose(fast, ref, atol=1e-5, rtol=0), (layer, positions, (fast - ref).abs().max())
        # patching the base's own vector reproduces the unpatched model
        pos = torch.tensor([1, 2, 3, 4, 5, 6])
        with torch.no_grad():
            same = resume_logits(model, layer, stream, pos, stream[torch.arange(6), pos], attention_mask=mask)
            plain = model(ids, attention_mask=mask).logits[:, -1]
        assert torch.allclose(same, plain, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["gpt_neox", "gpt2"])
@pytest.mark.parametrize("padded", [False, True])
def test_cached_prefix_keys_values_give_the_same_logits_and_gradients(kind, padded):
    model = tiny_lm(kind)
    ids, mask = tokens(5, torch.Generator().manual_seed(4), {1: 2} if padded else None)
    for layer in (0, 1, 2):
        stream = residual_stream(model, ids, layer, attention_mask=mask)
        positions = torch.tensor([6, 4, 5, 6, 3])
        for length in (1, 3):  # a prefix shorter than the batch's first patch, and one reaching it
            kv = prefix_keys_values(model, stream, layer, length, attention_mask=mask)
            assert kv.shape[:3] == (5, LAYERS - layer, 2) and kv.shape[-2] == length
            grads, logits = [], []
            for prefix in (None, kv):
                h = torch.randn(5, WIDTH, generator=torch.Generator().manual_seed(5)).requires_grad_(True)
                out = resume_logits(model, layer, stream, positions, h, attention_mask=mask, prefix_kv=prefix)
                out[:, :7].square().sum().backward()
                logits.append(out.detach())
                grads.append(h.grad)
            assert torch.allclose(logits[0], logits[1], atol=1e-5, rtol=0), (layer, length)
            assert torch.allclose(grads[0], grads[1], atol=1e-5, rtol=0), (layer, length)
    # a prefix reaching past some rows' first patched position: each row reads only its own part
    stream = residual_stream(model, ids, 2)
    kv = prefix_keys_values(model, stream, 2, 5)
    h = torch.randn(5, WIDTH, generator=torch.Generator().manual_seed(6))
    positions = torch.tensor([6, 2, 5, 6, 3])
    with torch.no_grad():
        ref = hooked_logits(model, 2, ids, positions, h)
        for prefix in (kv, split_keys_values(kv)):
            assert torch.allclose(resume_logits(model, 2, stream, positions, h, prefix_kv=prefix), ref, atol=1e-5, rtol=0)
    with pytest.raises(SiteError, match="prefix_kv must be"):
        resume_logits(model, 1, stream, 6, torch.randn(5, WIDTH), prefix_kv=kv)
    with pytest.raises(SiteError, match="must cover 1.."):
        prefix_keys_values(model, stream, 2, 0)


def test_resume_gradients_match_hooked_forward():
    model = tiny_lm("gpt_neox")
    ids = torch.randint(0, VOCAB, (4, SEQ), generator=torch.Generator().manual_seed(2))
    stream = residual_stream(model, ids, 1)
    positions = torch.tensor([6, 2, 4, 6])
    grads = []
    for fn in (lambda h: resume_logits(model, 1, stream, positions, h), lambda h: hooked_logits(model, 1, ids, positions, h)):
        h = stream[torch.arange(4), positions].clone().requires_grad_(True)
        fn(h)[:, :5].sum().backward()
        grads.append(h.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-5, rtol=0)


def test_read_positions_and_errors():
    model = tiny_lm("gpt2")
    ids = torch.randint(0, VOCAB, (3, SEQ), generator=torch.Generator().manual_seed(3))
    stream = residual_stream(model, ids, 2)
    h = torch.randn(3, WIDTH)
    read = torch.tensor([3, 6, 1])
    with torch.no_grad():
        fast = resume_logits(model, 2, stream, torch.tensor([2, 2, 0]), h, read_positions=read)
        ref = hooked_logits(model, 2, ids, torch.tensor([2, 2, 0]), h, read_positions=read)
    assert torch.allclose(fast, ref, atol=1e-5, rtol=0)
    with pytest.raises(SiteError, match="layer must be 0"):
        residual_stream(model, ids, LAYERS + 1)
    with pytest.raises(SiteError, match="positions must lie in"):
        resume_logits(model, 2, stream, torch.tensor([0, 1, SEQ]), h)
    with pytest.raises(SiteError, match="patched vectors must have shape"):
        resume_logits(model, 2, stream, 0, torch.randn(3, WIDTH + 1))
    assert supports_resume(model)
    with pytest.raises(ArchitectureError, match="no resume-from-site adapter"):
        residual_stream(torch.nn.Linear(2, 2), ids, 1)


# --- the same fitted IIA through both paths ------------------------------------------------

K = 8  # token values of the toy task; they are also its classes


def copy_task() -> Task:
    """Tokens ``a b c``; V = a, output = V. The LM is scored on its first K vocabulary entries."""
    algo = Algorithm.from_functions(
        {"a": tuple(range(K)), "b": tuple(range(K)), "c": tuple(range(K))},
        {"V": lambda a: a, "O": lambda V: V},
        domains={"V": tuple(range(K)), "O": tuple(range(K))},
        name="copy_first",
    )
    return Task(
        name="copy_first", algorithm=algo, encode=lambda x: {"input_ids": torch.stack([x["a"], x["b"], x["c"]], 1).long()},
        label=lambda out: out["O"].long(), intervention_sets=[("V",)], family="toy_tokens", n_classes=K,
    )


class ToyLMTarget(Target):
    """A frozen causal LM; sites are the residual stream after a block at one token position."""

    def __init__(self, model, resume: bool) -> None:
        super().__init__()
        self.model, self.resume = model, resume

    def width(self, site: Site) -> int:
        return WIDTH

    def hidden(self, inputs, site: Site) -> torch.Tensor:
        stream = residual_stream(self.model, inputs["input_ids"], site.layer)
        return stream[:, site.position]

    def patched_logits(self, inputs, site: Site, h: torch.Tensor) -> torch.Tensor:
        ids = inputs["input_ids"]
        if self.resume:
            stream = residual_stream(self.model, ids, site.layer)
            logits = resume_logits(self.model, site.layer, stream, site.position, h)
        else:
            logits = hooked_logits(self.model, site.layer, ids, site.position, h)
        return logits[:, :K]


@pytest.mark.parametrize("kind", ["gpt_neox", "gpt2"])
def test_same_fitted_iia_through_both_paths(kind):
    task = copy_task()
    g = torch.Generator().manual_seed(0)
    train_d, val_d = task.counterfactuals(256, g), task.counterfactuals(128, g)
    site = Site(1, position=0)
    results = []
    for resume in (True, False):
        target = ToyLMTarget(tiny_lm(kind), resume).freeze()
        train, val = prepare(target, site, task, train_d), prepare(target, site, task, val_d)
        torch.manual_seed(5)
        phi = make_alignment("rotation", WIDTH)
        partition = Partition.contiguous(task.variables, 16, WIDTH)
        fit = fit_alignment(target, site, phi, partition, task, train, val, FitConfig(epochs=3, batch_size=64, lr=5e-2))
        assert fit.steps > 0
        results.append((fit.best_val_iia, evaluate(target, site, phi, partition, task, val).iia, phi.matrix().detach(),
                        [r.get("train_loss") for r in fit.history[1:]]))
    assert results[0][0] == pytest.approx(results[1][0], abs=1.5 / 128)
    assert results[0][1] == pytest.approx(results[1][1], abs=1.5 / 128)
    assert torch.allclose(results[0][2], results[1][2], atol=1e-4)  # the same map came out of both fits
    assert results[0][3] == pytest.approx(results[1][3], abs=1e-5)  # the same training losses, epoch by epoch


# --- each row's own prefix: the window a fitting step runs from --------------------------------


def logits_and_grad(fn, h0: torch.Tensor, weights: torch.Tensor):
    """Logits of ``fn(h)`` and the gradient of a fixed linear function of them with respect to ``h``."""
    h = h0.clone().requires_grad_(True)
    out = fn(h)
    (out * weights).sum().backward()
    return out.detach(), h.grad


def row_windows(model, ids, layer, starts, width):
    """Each row's stream window from its own start, and the upper blocks' keys/values before it."""
    stream = residual_stream(model, ids, layer)
    cols = (starts[:, None] + torch.arange(width)).clamp(max=ids.shape[1] - 1)
    window = stream.gather(1, cols.unsqueeze(-1).expand(-1, -1, WIDTH))
    S = int(starts.max())
    return stream, window, (prefix_keys_values(model, stream, layer, S) if S and layer < LAYERS else None)


@pytest.mark.parametrize("kind", ["gpt_neox", "gpt2"])
@pytest.mark.parametrize("fused", [True, False])
def test_per_row_prefix_matches_the_hooked_forward_in_logits_and_gradients(kind, fused):
    """Right-padded rows of mixed lengths, patched at or before their own last token: the window from each
    row's own first patched/read position, with that row's cached prefix, equals a full forward."""
    model = tiny_lm(kind)
    g = torch.Generator().manual_seed(7)
    n = 6
    ids = torch.randint(0, VOCAB, (n, SEQ), generator=g)
    read = torch.tensor([6, 3, 5, 2, 6, 4])  # the last real token; what follows is padding
    ids[torch.arange(SEQ)[None, :] > read[:, None]] = 0
    weights = torch.randn(n, VOCAB, generator=g)
    for layer in range(LAYERS + 1):
        for patched in (read, torch.tensor([6, 1, 2, 2, 0, 4])):  # at the read token, or before it
            starts = torch.minimum(patched, read)
            width = int((read - starts).max()) + 1
            stream, window, kv = row_windows(model, ids, layer, starts, width)
            h0 = torch.randn(n, WIDTH, generator=g)
            ref = logits_and_grad(lambda h: hooked_logits(model, layer, ids, patched, h, read_positions=read), h0, weights)
            runs = {
                "window": lambda h: resume_window(model, layer, window, starts, patched, h, read, kv, fused=fused),
                "window, per-block cache": lambda h: resume_window(
                    model, layer, window, starts, patched, h, read, None if kv is None else split_keys_values(kv),
                    fused=fused),
                "whole stream": lambda h: resume_logits(model, layer, stream, patched, h, read_positions=read, fused=fused),
            }
            for name, fn in runs.items():
                out, grad = logits_and_grad(fn, h0, weights)
                assert torch.allclose(out, ref[0], atol=1e-5, rtol=0), (name, layer, (out - ref[0]).abs().max())
                assert torch.allclose(grad, ref[1], atol=1e-5, rtol=0), (name, layer, (grad - ref[1]).abs().max())


@pytest.mark.parametrize("kind", ["gpt_neox", "gpt2"])
def test_left_padding_and_mixed_reads_match_in_gradients_with_and_without_hand_written_blocks(kind):
    model = tiny_lm(kind)
    g = torch.Generator().manual_seed(8)
    ids, mask = tokens(5, g, {0: 2, 3: 1})
    read, patched = torch.tensor([6, 4, 6, 5, 3]), torch.tensor([3, 4, 2, 5, 1])
    weights = torch.randn(5, VOCAB, generator=g)
    for layer in (0, 1, 2):
        stream = residual_stream(model, ids, layer, attention_mask=mask)
        kv = prefix_keys_values(model, stream, layer, 2, attention_mask=mask)
        h0 = torch.randn(5, WIDTH, generator=g)
        ref = logits_and_grad(lambda h: hooked_logits(model, layer, ids, patched, h, attention_mask=mask,
                                                      read_positions=read), h0, weights)
        for fused in (True, False):
            for prefix in (None, kv):
                out, grad = logits_and_grad(lambda h: resume_logits(model, layer, stream, patched, h, attention_mask=mask,
                                                                    read_positions=read, prefix_kv=prefix, fused=fused),
                                            h0, weights)
                assert torch.allclose(out, ref[0], atol=1e-5, rtol=0), (layer, fused, prefix is None)
                assert torch.allclose(grad, ref[1], atol=1e-5, rtol=0), (layer, fused, prefix is None)


@pytest.mark.parametrize("kind", ["gpt_neox", "gpt2"])
def test_compiled_resume_gives_the_same_logits_and_gradients(kind):
    """The runtime setting compile (torch.compile of the resumed blocks, ``compiled=``): per-row windows with mixed read positions and
    cached prefixes, and the whole stream with left padding, against the eager blocks and the hooked forward."""
    model = tiny_lm(kind)
    g = torch.Generator().manual_seed(10)
    n, layer = 6, 1
    ids = torch.randint(0, VOCAB, (n, SEQ), generator=g)
    read = torch.tensor([6, 3, 5, 2, 6, 4])
    ids[torch.arange(SEQ)[None, :] > read[:, None]] = 0
    weights = torch.randn(n, VOCAB, generator=g)
    stream, window, kv = row_windows(model, ids, layer, read, 1)
    pids, mask = tokens(5, g, {0: 2, 3: 1})
    pstream = residual_stream(model, pids, layer, attention_mask=mask)
    pread, patched = torch.tensor([6, 4, 6, 5, 3]), torch.tensor([3, 4, 2, 5, 1])
    pweights = torch.randn(5, VOCAB, generator=g)
    cases = {
        "last-token windows": (lambda h, c: resume_window(model, layer, window, read, read, h, read,
                                                          split_keys_values(kv), compiled=c),
                               torch.randn(n, WIDTH, generator=g), weights,
                               lambda h: hooked_logits(model, layer, ids, read, h, read_positions=read)),
        "left-padded stream": (lambda h, c: resume_logits(model, layer, pstream, patched, h, attention_mask=mask,
                                                          read_positions=pread, compiled=c),
                               torch.randn(5, WIDTH, generator=g), pweights,
                               lambda h: hooked_logits(model, layer, pids, patched, h, attention_mask=mask,
                                                       read_positions=pread)),
    }
    compiled_blocks = compile_resume()
    for name, (fn, h0, w, hooked) in cases.items():
        eager = logits_and_grad(lambda h: fn(h, None), h0, w)
        ref = logits_and_grad(hooked, h0, w)
        compiled = logits_and_grad(lambda h: fn(h, compiled_blocks), h0, w)
        for got, want in ((compiled, eager), (compiled, ref)):
            assert torch.allclose(got[0], want[0], atol=1e-5, rtol=0), (name, (got[0] - want[0]).abs().max())
            assert torch.allclose(got[1], want[1], atol=1e-5, rtol=0), (name, (got[1] - want[1]).abs().max())


def test_compile_setting_is_checked_and_a_failed_compilation_is_named(monkeypatch):
    from torch._dynamo.exc import BackendCompilerFailed

    from causalab.errors import ConfigError
    from causalab.runtime import RuntimeSettings

    model = tiny_lm("gpt_neox")
    ids = torch.randint(0, VOCAB, (2, SEQ), generator=torch.Generator().manual_seed(11))
    stream = residual_stream(model, ids, 1)
    h = torch.zeros(2, WIDTH)
    monkeypatch.setenv("CAUSALAB_COMPILE", "yes")
    with pytest.raises(ConfigError, match=r"CAUSALAB_COMPILE must be 0 .* or 1 .*'yes'"):
        RuntimeSettings.from_env()
    monkeypatch.setenv("CAUSALAB_COMPILE", "1")  # read once at the entry points: a step never reads it
    assert resume_logits(model, 1, stream, SEQ - 1, h).shape == (2, VOCAB)

    def broken(*args):
        raise BackendCompilerFailed(lambda *a: None, RuntimeError("no C++ compiler found"), None)

    with pytest.raises(ConfigError, match=r"could not compile the resumed blocks .*unset CAUSALAB_COMPILE"):
        resume_logits(model, 1, stream, SEQ - 1, h, compiled=broken)
    assert resume_logits(model, 1, stream, SEQ - 1, h, compiled=None).shape == (2, VOCAB)  # eager: the same call works


def test_window_errors_name_what_is_wrong():
    model = tiny_lm("gpt_neox")
    ids = torch.randint(0, VOCAB, (3, SEQ), generator=torch.Generator().manual_seed(9))
    starts, read = torch.tensor([4, 2, 6]), torch.tensor([6, 2, 6])
    _, window, kv = row_windows(model, ids, 1, starts, 3)
    h = torch.randn(3, WIDTH)
    with pytest.raises(SiteError, match="must start at or before its patched and read positions"):
        resume_window(model, 1, window, starts, torch.tensor([3, 2, 6]), h, read, kv)  # row 0 patched before its start
    with pytest.raises(SiteError, match="reach its read position"):
        resume_window(model, 1, window[:, :2], starts, starts, h, read, kv)
    with pytest.raises(SiteError, match="prefix_kv covers 3 positions; rows start as late as position 6"):
        resume_window(model, 1, window, starts, starts, h, read, kv[..., :3, :])
    with pytest.raises(SiteError, match="keys_<i>/values_<i>"):
        resume_window(model, 1, window, starts, starts, h, read, {"keys_0": kv[:, 0, 0]})
