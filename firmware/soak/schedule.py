"""The soak's schedule: when visitors come and go, and when each fault starts and is healed."""
from __future__ import annotations

import random

import numpy as np

from firmware.soak.faults import DEVICE_OF, Fault

# Short show timings so a visitor cycle is ~8 s of show time (160 frames at 20 fps).
SHOW = {"trigger_m": 2.0, "release_m": 3.0, "dwell_s": 0.2, "leave_grace_s": 0.3, "cooldown_s": 0.5,
        "approach_s": 0.5, "immersion_s": 2.0, "emergence_s": 1.5, "hold_s": 1.0, "release_s": 0.5,
        "footage_fps": 6.0}
NEAR_M, FAR_M = 1.0, 6.0


def visitor_script(rng: random.Random, n: int) -> list[tuple[float, float]]:
    """Visitors who come and go: most stay for a whole cycle, some leave early, some linger."""
    pts, t = [(0.0, FAR_M)], 0.0
    full = SHOW["dwell_s"] + SHOW["approach_s"] + SHOW["immersion_s"] + SHOW["emergence_s"] + SHOW["hold_s"]
    for _ in range(n):
        t += rng.uniform(SHOW["cooldown_s"] + 0.6, 2.5)
        pts.append((t, FAR_M))
        t += 0.3
        pts.append((t, NEAR_M))
        r = rng.random()
        # (leaves before the images grow | lingers into a second cycle | leaves in the hold or release)
        stay = (rng.uniform(0.5, full - 1.0) if r < 0.1 else
                rng.uniform(full + 3.0, full + 6.0) if r < 0.2 else rng.uniform(full - 0.5, full + 0.4))
        t += stay
        pts.append((t, NEAR_M))
        t += 0.3
        pts.append((t, FAR_M))
    return pts


def truth_at(script_t: np.ndarray, script_d: np.ndarray, t: float) -> float:
    return float(np.interp(t, script_t, script_d))


class FaultSchedule:
    """Seeded: a fault of a random kind every `every_s` on average, healed after a random while.

    `active` are injected and not healed yet; `healing` are healed, and the box is not back yet.
    """

    def __init__(self, seed: int, kinds: tuple[str, ...], every_s: float, lasting_s: tuple[float, float]) -> None:
        self.rng = random.Random(seed * 7919 + 1)
        self.kinds, self.every_s, self.lasting_s = kinds, every_s, lasting_s
        self.deck: list[str] = []
        self.active: list[Fault] = []
        self.healing: list[Fault] = []
        self.next_fault = 0.0

    def start(self, now: float) -> None:
        self.next_fault = now + self.rng.expovariate(1.0 / self.every_s)

    def next_kind(self) -> str:
        """A shuffled deck: every kind comes up once before any repeats (short runs cover all)."""
        busy = {f.kind for f in self.active} | {f.kind for f in self.healing}
        if not self.deck:
            self.deck = list(self.kinds)
            self.rng.shuffle(self.deck)
        for i, k in enumerate(self.deck):
            if k not in busy and DEVICE_OF[k] not in {DEVICE_OF[b] for b in busy}:
                return self.deck.pop(i)
        return ""

    def step(self, now: float, ending: bool, inject, heal) -> None:
        """Inject a fault when one is due (random kind, random duration); heal those whose time is up."""
        if not ending and now >= self.next_fault:
            kind = self.next_kind()
            if kind:
                f = Fault(kind, now, now + self.rng.uniform(*self.lasting_s))
                inject(f)
                self.active.append(f)
            self.next_fault = now + self.rng.expovariate(1.0 / self.every_s)
        for f in [f for f in self.active if now >= f.heal_at]:
            heal(f)
            f.healed = now
            self.active.remove(f)
            self.healing.append(f)

    def heal_all(self, now: float) -> None:
        """The run is ending: every active fault is healed at once, and the box must come back."""
        for f in self.active:
            f.heal_at = now

    def on(self) -> list[Fault]:
        """Every fault the box may still show: injected, or healed and not back yet."""
        return self.active + self.healing
