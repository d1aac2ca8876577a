"""IOI sentences: names, places, objects, templates and a vectorised generator.

A sentence mentions two names ``A`` (first) and ``B`` (second), then repeats one of
them as the subject ``S2`` (pattern ABAB: ``S2 = A``; ABBA: ``S2 = B``) and stops
right before the indirect object, which is the name that was *not* repeated.

Every word is one token of the word-level vocabulary :data:`VOCAB` (names too), so
token ids are built by tensor indexing: a template is a row of token ids in which
negative codes mark the slots for ``A``, ``B``, ``S2``, the place and the object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from causalab.errors import SamplingError

# the named token positions an encoded sentence marks beside its last token (``pos_s2``, ``pos_io``)
POSITIONS = ("s2", "io")

NAMES = (
    "Aaron Adam Alan Albert Alex Alice Amanda Amy Andrew Angela Anna Anne Anthony Arthur Barbara Ben Betty "
    "Bill Brian Bruce Carl Carol Caroline Catherine Charles Charlie Chris Christina Claire Daniel David Dennis "
    "Diana Donald Dorothy Douglas Edward Elizabeth Ellen Emily Emma Eric Eva Frank Fred Gary George Grace "
    "Gregory Hannah Harry Helen Henry Jack Jacob James Jane Jason Jeff Jennifer Jessica Jim John Joseph Julia "
    "Karen Kate Kevin Laura Leo Linda Lisa Lucy Margaret Maria Mark Martin Mary Matthew Michael Michelle "
    "Nancy Nathan Nicole Oliver Patrick Paul Peter Rachel Rebecca Richard Robert Roger Rose Ruth Ryan Sam "
    "Sarah Scott Sean Sophie Steven Susan Thomas Tim Tom Tony Victoria Walter William Zoe"
).split()
PLACES = (
    "store garden restaurant school hospital office station house park beach library market church museum "
    "cafe bank theater kitchen stadium farm"
).split()
OBJECTS = (
    "ring kiss bone basketball computer necklace drink snack book bottle letter ticket cake watch pen ball "
    "guitar hat scarf candle"
).split()

# {A}, {B}: first mentions; {S}: the repeated subject; the sentence ends before the indirect object.
TEMPLATES = (
    "Then , {A} and {B} went to the {P} . {S} gave a {O} to",
    "When {A} and {B} got a {O} at the {P} , {S} decided to give it to",
    "After {A} and {B} went to the {P} , {S} gave a {O} to",
    "While {A} and {B} were working at the {P} , {S} gave a {O} to",
    "Then , {A} and {B} had a long argument , and afterwards {S} said to",
    "When {A} and {B} arrived at the {P} , {S} handed the {O} to",
    "Friends {A} and {B} found a {O} at the {P} . {S} gave it to",
    "{A} and {B} were at the {P} . {S} passed the {O} to",
    "The {P} was quiet when {A} and {B} came in . {S} gave a {O} to",
    "After the lunch , {A} and {B} went to the {P} . {S} gave a {O} to",
    "Then , {A} and {B} were thinking about going to the {P} . {S} wanted to give a {O} to",
    "While {A} and {B} were commuting to the {P} , {S} gave a {O} to",
    "When {A} and {B} visited the {P} , {S} brought a {O} for",
    "Afterwards , {A} and {B} went to the {P} . {S} sold a {O} to",
    "Yesterday {A} and {B} cleaned the {P} . {S} threw the {O} to",
    "At the {P} , {A} and {B} met . Later , {S} offered a {O} to",
    "{A} and {B} walked into the {P} together . {S} showed the {O} to",
    "Once {A} and {B} left the {P} , {S} mailed a {O} to",
)

# The IOI paper's templates (Wang et al. 2023), as the non-linear representation dilemma's IOI data use
# them: each text serves both patterns ({A} and {B} are the first and second mention, {S} the repeated
# name), written with the punctuation as separate words.
PAPER_TEMPLATES = (
    "Then , {A} and {B} went to the {P} . {S} gave a {O} to",
    "Then , {A} and {B} had a lot of fun at the {P} . {S} gave a {O} to",
    "Then , {A} and {B} were working at the {P} . {S} decided to give a {O} to",
    "Then , {A} and {B} were thinking about going to the {P} . {S} wanted to give a {O} to",
    "Then , {A} and {B} had a long argument , and afterwards {S} said to",
    "After {A} and {B} went to the {P} , {S} gave a {O} to",
    "When {A} and {B} got a {O} at the {P} , {S} decided to give it to",
    "When {A} and {B} got a {O} at the {P} , {S} decided to give the {O} to",
    "While {A} and {B} were working at the {P} , {S} gave a {O} to",
    "While {A} and {B} were commuting to the {P} , {S} gave a {O} to",
    "After the lunch , {A} and {B} went to the {P} . {S} gave a {O} to",
    "Afterwards , {A} and {B} went to the {P} . {S} gave a {O} to",
    "Then , {A} and {B} had a long argument . Afterwards {S} said to",
    "The {P} {A} and {B} went to had a {O} . {S} gave it to",
    "Friends {A} and {B} found a {O} at the {P} . {S} gave it to",
)

SPECIAL_TOKENS = ("<pad>", "<unk>", "<eos>")
PAD, UNK, EOS = 0, 1, 2
_SLOTS = {"{A}": -1, "{B}": -2, "{S}": -3, "{P}": -4, "{O}": -5}


def _words(templates: tuple[str, ...] = TEMPLATES) -> list[str]:
    words = set(NAMES) | set(PLACES) | set(OBJECTS)
    for t in templates:
        words |= {w for w in t.split() if w not in _SLOTS}
    return sorted(words)


VOCAB: tuple[str, ...] = SPECIAL_TOKENS + tuple(_words())
# the word-level vocabulary with the IOI paper's templates too: VOCAB, then their new words (every
# id of VOCAB keeps its meaning, so names and the causalab templates encode alike under both)
PAPER_VOCAB: tuple[str, ...] = VOCAB + tuple(w for w in _words(PAPER_TEMPLATES) if w not in set(VOCAB))
TOKEN_ID = {w: i for i, w in enumerate(VOCAB)}
_ANY_TOKEN_ID = {w: i for i, w in enumerate(PAPER_VOCAB)}  # VOCAB's ids are its prefix
NAME_TOKENS = torch.tensor([TOKEN_ID[n] for n in NAMES])
PLACE_TOKENS = torch.tensor([TOKEN_ID[p] for p in PLACES])
OBJECT_TOKENS = torch.tensor([TOKEN_ID[o] for o in OBJECTS])


def _template_table(templates: tuple[str, ...] = TEMPLATES) -> tuple[torch.Tensor, torch.Tensor]:
    rows = [[_SLOTS.get(w, _ANY_TOKEN_ID.get(w)) for w in t.split()] for t in templates]
    length = torch.tensor([len(r) for r in rows])
    table = torch.full((len(rows), int(length.max())), PAD)
    for i, r in enumerate(rows):
        table[i, : len(r)] = torch.tensor(r)
    return table, length


TEMPLATE_TABLE, TEMPLATE_LENGTH = _template_table()
MAX_LENGTH = TEMPLATE_TABLE.shape[1]


def _slot_position(code: int, table: torch.Tensor = TEMPLATE_TABLE) -> torch.Tensor:
    return (table == code).int().argmax(dim=1)


POS_A, POS_B, POS_S2 = _slot_position(-1), _slot_position(-2), _slot_position(-3)


@dataclass(frozen=True)
class TemplateSet:
    """A set of templates as token-id rows: ``table`` (slots as negative codes), ``length``, slot positions,
    and the word-level vocabulary its words come from."""

    name: str
    texts: tuple[str, ...]
    vocab: tuple[str, ...]
    table: torch.Tensor
    length: torch.Tensor
    pos_a: torch.Tensor
    pos_b: torch.Tensor
    pos_s2: torch.Tensor

    @classmethod
    def of(cls, name: str, texts: tuple[str, ...], vocab: tuple[str, ...]) -> TemplateSet:
        table, length = _template_table(texts)
        pos = [_slot_position(c, table) for c in (-1, -2, -3)]
        return cls(name, texts, vocab, table, length, *pos)


TEMPLATE_SETS = {
    "causalab": TemplateSet.of("causalab", TEMPLATES, VOCAB),
    "ioi_paper": TemplateSet.of("ioi_paper", PAPER_TEMPLATES, PAPER_VOCAB),
}


@dataclass(frozen=True)
class Pools:
    """Which names, templates, places and objects a sampler may draw (index tensors)."""

    names: torch.Tensor
    templates: torch.Tensor
    places: torch.Tensor
    objects: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.names) < 2:
            raise SamplingError(f"an IOI sentence needs two distinct names; the name pool has {len(self.names)}")
        for what in ("templates", "places", "objects"):
            if len(getattr(self, what)) == 0:
                raise SamplingError(f"the IOI {what} pool is empty")


ALL = Pools(
    torch.arange(len(NAMES)), torch.arange(len(TEMPLATES)), torch.arange(len(PLACES)), torch.arange(len(OBJECTS))
)


def split_pools(test_share: float = 0.5, seed: int = 0, *, names: bool = True, templates: bool = False) -> tuple[Pools, Pools]:
    """Two pools with disjoint names (and, optionally, disjoint templates) for train/test splits."""
    if not 0.0 < test_share < 1.0:
        raise SamplingError(f"test_share must lie strictly between 0 and 1, got {test_share}")
    g = torch.Generator().manual_seed(seed)

    def cut(n: int, on: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if not on:
            return torch.arange(n), torch.arange(n)
        perm = torch.randperm(n, generator=g)
        k = max(2, min(n - 2, int(round(n * (1 - test_share)))))
        return perm[:k].sort().values, perm[k:].sort().values

    n_tr, n_te = cut(len(NAMES), names)
    t_tr, t_te = cut(len(TEMPLATES), templates)
    return (Pools(n_tr, t_tr, ALL.places, ALL.objects), Pools(n_te, t_te, ALL.places, ALL.objects))


def _pick(pool: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    return pool[torch.randint(len(pool), (n,), generator=g)]


def sample_sentences(n: int, g: torch.Generator, pools: Pools = ALL) -> dict[str, torch.Tensor]:
    """``n`` random IOI inputs: name ids ``name_a != name_b``, ``s2`` (one of them), template, place, object."""
    k = len(pools.names)
    ia = torch.randint(k, (n,), generator=g)
    ib = (ia + 1 + torch.randint(k - 1, (n,), generator=g)) % k  # uniform over the other names
    a, b = pools.names[ia], pools.names[ib]
    abba = torch.rand(n, generator=g) < 0.5
    return {
        "name_a": a,
        "name_b": b,
        "s2": torch.where(abba, b, a),
        "template": _pick(pools.templates, n, g),
        "place": _pick(pools.places, n, g),
        "obj": _pick(pools.objects, n, g),
    }


def token_ids(values: dict[str, torch.Tensor], templates: TemplateSet | None = None) -> dict[str, torch.Tensor]:
    """Word-level token ids (right-padded) and named positions for a batch of IOI inputs.

    Returns ``input_ids`` and ``attention_mask`` ``(B, T)``, and the per-row positions
    ``pos_last`` (the last token), ``pos_s2`` (the repeated subject) and ``pos_io``
    (the indirect object's first mention).
    """
    ts = templates or TEMPLATE_SETS["causalab"]
    t = values["template"].long()
    rows = ts.table[t]
    fills = {
        -1: NAME_TOKENS[values["name_a"]],
        -2: NAME_TOKENS[values["name_b"]],
        -3: NAME_TOKENS[values["s2"]],
        -4: PLACE_TOKENS[values["place"]],
        -5: OBJECT_TOKENS[values["obj"]],
    }
    ids = rows.clone()
    for code, tok in fills.items():
        ids = torch.where(rows == code, tok[:, None], ids)
    length = ts.length[t]
    mask = (torch.arange(ts.table.shape[1])[None, :] < length[:, None]).long()
    io_is_a = values["s2"] == values["name_b"]
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pos_last": length - 1,
        "pos_s2": ts.pos_s2[t],
        "pos_io": torch.where(io_is_a, ts.pos_a[t], ts.pos_b[t]),
    }


def indirect_object(values: dict[str, torch.Tensor]) -> torch.Tensor:
    """The name id a correct reader predicts: the one of A, B that is not repeated."""
    return torch.where(values["s2"] == values["name_a"], values["name_b"], values["name_a"])


def render(values: dict[str, torch.Tensor], with_answer: bool = False, templates: TemplateSet | None = None) -> list[str]:
    """The sentences as text (for tokenizers other than the word-level one, and for reading)."""
    out = []
    io = indirect_object(values)
    texts = (templates or TEMPLATE_SETS["causalab"]).texts
    for i in range(len(values["template"])):
        text = texts[int(values["template"][i])]
        for slot, word in (
            ("{A}", NAMES[int(values["name_a"][i])]),
            ("{B}", NAMES[int(values["name_b"][i])]),
            ("{S}", NAMES[int(values["s2"][i])]),
            ("{P}", PLACES[int(values["place"][i])]),
            ("{O}", OBJECTS[int(values["obj"][i])]),
        ):
            text = text.replace(slot, word)
        if with_answer:
            text += " " + NAMES[int(io[i])]
        out.append(re.sub(r" ([.,])", r"\1", text))
    return out
