"""What the network is conditioned on beyond the noisy image and its noise level, as one value.

`Conditions` is made once per request from the show's inputs and the model's manifest
(`show_conditions`, then the planner's subject for the visitor), travels untouched through the
planner, the worker, the sampler, fault injection and the engine, and becomes the network's input
feed in one place: `Engine.denoise` takes from `inputs()` every input the manifest names beyond x
and sigma. A new condition is a field here (or an `extra` entry), an input in the manifest and its
name in manifest_schema.CONDITION_INPUTS; no signature on the way changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np


@dataclass(frozen=True)
class Conditions:
    decay: float | np.ndarray         # 0 fresh .. 1 fully decayed: a number, or one per image
    subject: int | np.ndarray | None = None   # index into the manifest's subject names (or one per
                                      # image); None: none chosen, a network with subjects gets the first
    extra: tuple[tuple[str, float | np.ndarray], ...] = ()   # further named inputs a manifest adds

    def inputs(self) -> dict[str, Any]:
        """Every conditioning input by the manifest's name. A network takes those it names and
        ignores the rest, so a model without subjects never sees one."""
        return {"decay": self.decay, "subject": 0 if self.subject is None else self.subject,
                **dict(self.extra)}

    @classmethod
    def from_inputs(cls, named: Mapping[str, Any]) -> Conditions:
        """The inverse of `inputs()`, e.g. from a reference pair's arrays stored by input name."""
        extra = tuple(sorted((k, v) for k, v in named.items() if k not in ("decay", "subject")))
        return cls(named["decay"], named.get("subject"), extra)


def show_conditions(decay: float, named_subject: str | None, subjects: tuple[str, ...]) -> Conditions:
    """The show's conditions for this frame: its decay, and the subject a show controller named
    (/humus/subject) when the model has it. Otherwise the subject stays None and the planner draws
    one per visitor from the configured weights."""
    return Conditions(decay, subjects.index(named_subject) if named_subject in subjects else None)


def snap_decay(cond: Conditions, support: Mapping[int, tuple[float, ...]]) -> Conditions:
    """The decay nearest the asked one among the values the chosen subject was trained on (the
    manifest's decay_distribution; ModelInfo.decay_support). Why: a network that saw tomatoes only at
    grades k/9 grows melon skin at 0.6, between two grades, so the show's decay is read as "this far
    along" for the subject in hand. A subject without known values, or no subject, keeps it as it is."""
    if cond.subject is None or np.ndim(cond.subject) or np.ndim(cond.decay):
        return cond
    values = support.get(int(cond.subject))
    if not values:
        return cond
    nearest = min(values, key=lambda v: abs(v - float(cond.decay)))
    return Conditions(nearest, cond.subject, cond.extra)
