"""IOI data regimes: who may play which role, from which templates, and how the splits are cut.

The default regime draws fresh sentences for every split and lets any of the 111 names
play either role. The non-linear representation dilemma's shared-names IOI data differ in
two ways that decide whether a map fitted on a random language model generalises:

- **fixed roles** (``roles="fixed"``): indirect objects come from one name set and subjects
  from another, disjoint one (the paper's 50 "A" and 50 "B" names), so each (IO, S, template,
  pattern) combination recurs in many sentences that differ only in place and object;
- **a finite pool of sentences** (``split="pool"``): distinct sentences cut 80/10/10 by
  sentence, with base and source drawn independently within a split.

Its disjoint-names run uses another generator: names cut 60/20/20 into fitting, validation
and test names, roles drawn at random (``split="names"``; with ``roles="fixed"`` each role's
names are cut so). ``hold_out=True`` keeps a quarter of the places, objects and templates out
of every split, for the controls of :func:`control_pairs`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from algorithms import ioi_data as data
from causalab.causal.algorithm import Values
from causalab.errors import ConfigError

ROLES = ("random", "fixed")
SPLITS = ("fresh", "pool", "names")
CONTROLS = ("held_out", "same_pattern", "different_pattern", "swapped_roles", "unseen_names", "unseen_fillers",
            "unseen_templates")


@dataclass(frozen=True)
class Side:
    """What one split may draw: IO names and subject names (the same tensor when roles are random)."""

    io: torch.Tensor
    subject: torch.Tensor
    templates: torch.Tensor
    places: torch.Tensor
    objects: torch.Tensor
    fixed: bool

    def sample(self, n: int, g: torch.Generator) -> Values:
        if not self.fixed:
            return data.sample_sentences(n, g, data.Pools(self.io, self.templates, self.places, self.objects))
        io = self.io[torch.randint(len(self.io), (n,), generator=g)]
        s = self.subject[torch.randint(len(self.subject), (n,), generator=g)]
        abba = torch.rand(n, generator=g) < 0.5  # ABBA: the IO is mentioned first
        pick = lambda pool: pool[torch.randint(len(pool), (n,), generator=g)]  # noqa: E731
        return {"name_a": torch.where(abba, io, s), "name_b": torch.where(abba, s, io), "s2": s,
                "template": pick(self.templates), "place": pick(self.places), "obj": pick(self.objects)}

    def combinations(self) -> int:
        """Distinct sentences this side can make."""
        pairs = len(self.io) * len(self.subject) if self.fixed else len(self.io) * (len(self.io) - 1)
        return pairs * 2 * len(self.templates) * len(self.places) * len(self.objects)


@dataclass(frozen=True)
class Regime:
    """One IOI data regime (see the module docstring); ``seed`` picks which names and fillers."""

    roles: str = "random"
    names: int = 0
    templates: str = "causalab"
    split: str = "fresh"
    pool: int = 0
    hold_out: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        def bad(option: str, valid: str) -> ConfigError:
            return ConfigError(f"task option {option}={getattr(self, option)!r} is not valid: {valid}")

        if self.roles not in ROLES:
            raise bad("roles", f"one of {ROLES}")
        if self.templates not in data.TEMPLATE_SETS:
            raise bad("templates", f"one of {tuple(data.TEMPLATE_SETS)}")
        if self.split not in SPLITS:
            raise bad("split", f"one of {SPLITS}")
        least = 6 if self.split == "names" else (4 if self.roles == "fixed" else 2)
        if isinstance(self.names, bool) or not isinstance(self.names, int) or not (self.names == 0 or
                                                                                    least <= self.names <= len(data.NAMES)):
            raise bad("names", f"0 (all {len(data.NAMES)} names) or a count from {least} to {len(data.NAMES)} "
                               f"(roles={self.roles!r}, split={self.split!r})")
        if isinstance(self.pool, bool) or not isinstance(self.pool, int) or self.pool < 0:
            raise bad("pool", "a non-negative integer (distinct sentences; 0: twice the fitting pairs)")
        if not isinstance(self.hold_out, bool):
            raise bad("hold_out", "true or false")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise bad("seed", "a non-negative integer")

    @property
    def template_set(self) -> data.TemplateSet:
        return data.TEMPLATE_SETS[self.templates]

    def _cut(self) -> dict[str, torch.Tensor]:
        """Names in play (in a seeded order), and fillers/templates in play and held out."""
        g = torch.Generator().manual_seed(self.seed)
        names = torch.randperm(len(data.NAMES), generator=g)
        n = self.names or len(data.NAMES)
        out = {"names": names[:n], "unused_names": names[n:]}
        for what, count in (("places", len(data.PLACES)), ("objects", len(data.OBJECTS)),
                            ("templates", len(self.template_set.texts))):
            order = torch.randperm(count, generator=g)
            k = count - count // 4 if self.hold_out else count
            out[what], out["unseen_" + what] = order[:k].sort().values, order[k:].sort().values
        return out

    def sides(self) -> tuple[Side, Side, Side]:
        """What the fitting, validation and test pairs draw from (the same side unless ``split="names"``)."""
        cut = self._cut()
        fillers = (cut["templates"], cut["places"], cut["objects"])
        fixed = self.roles == "fixed"
        roles = _halves(cut["names"]) if fixed else (cut["names"], cut["names"])
        if self.split != "names":
            side = Side(roles[0], roles[1], *fillers, fixed)
            return side, side, side
        parts = [_sixty_twenty_twenty(r) for r in roles]
        return tuple(Side(parts[0][i], parts[1][i], *fillers, fixed) for i in range(3))  # type: ignore[return-value]

    def describe(self) -> str:
        fitting = self.sides()[0]
        io, s = fitting.io, fitting.subject
        who = f"{len(io)} IO x {len(s)} subject names" if self.roles == "fixed" else f"{len(io)} names in either role"
        return f"{who}, {self.templates} templates, {self.split} split"


def _halves(names: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    k = len(names) // 2
    return names[:k], names[k:]


def _sixty_twenty_twenty(names: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = len(names)
    a = max(1, round(0.6 * n))
    b = max(a + 1, round(0.8 * n))
    return names[:a], names[a:b], names[b:]


def sentence_keys(values: Values) -> torch.Tensor:
    """One integer per sentence (names, pattern, template, place, object): equal keys, equal sentences."""
    k = len(data.NAMES)
    abba = (values["s2"] == values["name_b"]).long()
    key = values["name_a"].long() * k + values["name_b"].long()
    for v, size in ((abba, 2), (values["template"].long(), 64), (values["place"].long(), 64), (values["obj"].long(), 64)):
        key = key * size + v
    return key


def distinct_sentences(side: Side, n: int, g: torch.Generator) -> Values:
    """``n`` distinct sentences drawn uniformly from what ``side`` can make (in a random order)."""
    space = side.combinations()
    if n > space:
        raise ConfigError(f"the IOI sentence pool needs {n} distinct sentences, but this regime makes only {space}; "
                          "lower task_options.pool or the pair counts, or use more names")
    parts: list[Values] = []
    seen = torch.zeros(0, dtype=torch.long)
    for _ in range(200):
        if len(seen) >= n:
            break
        cand = side.sample(max(2 * (n - len(seen)), 1024), g)
        keys = sentence_keys(cand)
        both = torch.cat([seen, keys])
        _, inverse = torch.unique(both, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), len(both), dtype=torch.long)
        first.scatter_reduce_(0, inverse, torch.arange(len(both)), reduce="amin")
        new = first[first >= len(seen)].sort().values - len(seen)  # candidates seen neither before nor earlier
        parts.append({k: v[new] for k, v in cand.items()})
        seen = torch.cat([seen, keys[new]])
    pool = {k: torch.cat([p[k] for p in parts])[:n] for k in parts[0]}
    if len(pool["s2"]) < n:
        raise ConfigError(f"could not draw {n} distinct IOI sentences from a space of {space}")
    return pool


def pool_sampler(pool: Values):
    """An input sampler drawing uniformly (with replacement) from a finite list of sentences."""
    size = len(pool["s2"])

    def draw(n: int, g: torch.Generator) -> Values:
        idx = torch.randint(size, (n,), generator=g)
        return {k: v[idx] for k, v in pool.items()}

    return draw


def split_samplers(regime: Regime, sizes: Sequence[int], g: torch.Generator):
    """Input samplers of the fitting, validation and test pairs under ``regime``."""
    sides = regime.sides()
    if regime.split != "pool":
        return [s.sample for s in sides]
    total = regime.pool or 2 * max(int(sizes[0]), 1)
    total = max(total, 10)
    pool = distinct_sentences(sides[0], total, g)
    cut = [math.floor(0.8 * total), math.floor(0.9 * total)]
    parts = [{k: v[a:b] for k, v in pool.items()} for a, b in zip([0, *cut], [*cut, total])]
    return [pool_sampler(p) for p in parts]


def control_sampler(regime: Regime, kind: str):
    """Sentences for the control test sets of :data:`CONTROLS` (pattern kinds are cut from pairs later)."""
    if kind not in CONTROLS:
        raise ConfigError(f"unknown IOI control {kind!r}; valid: {', '.join(CONTROLS)}")
    cut, test = regime._cut(), regime.sides()[2]
    if kind in ("held_out", "same_pattern", "different_pattern"):
        return test.sample
    if kind == "swapped_roles":
        if regime.roles != "fixed":
            raise ConfigError("the swapped_roles control needs task option roles='fixed'")
        return Side(test.subject, test.io, test.templates, test.places, test.objects, True).sample
    if kind == "unseen_names":
        unused = cut["unused_names"]
        if len(unused) < (4 if regime.roles == "fixed" else 2):
            raise ConfigError(f"the unseen_names control needs names outside the regime's; it uses all "
                              f"{len(data.NAMES)} (set task option names lower)")
        roles = _halves(unused) if regime.roles == "fixed" else (unused, unused)
        return Side(roles[0], roles[1], test.templates, test.places, test.objects, regime.roles == "fixed").sample
    if not regime.hold_out:
        raise ConfigError(f"the {kind} control needs task option hold_out=true (places, objects and templates kept "
                          "out of fitting)")
    if kind == "unseen_fillers":
        return Side(test.io, test.subject, test.templates, cut["unseen_places"], cut["unseen_objects"], test.fixed).sample
    return Side(test.io, test.subject, cut["unseen_templates"], test.places, test.objects, test.fixed).sample
