"""The demand model of simulated guests: how much memory a guest uses at a moment, deterministically.

The libvirt test driver's balloon statistics never change, so simulated hosts take the guest's figures from
here instead. A domain's `<description>` may say `demand: PROFILE SIZE` (for example `demand: spike 600M`);
otherwise the profile and a base of 40 % of maxmem follow from its UUID. The same (profile, base, seed, t)
always gives the same answer, so that tests, the poller and `bench/autoscale_sim.py` see identical traces.

Profiles, with base B (KiB) and t in seconds:
- steady:  B, with a +-2 % wobble.
- ramp:    from B/2 up to 2B over an hour, then down again (a triangle with a two-hour period).
- spike:   B, and every 10 minutes a 60 s spike to 2.5B.
- diurnal: B * (1 + 0.5 sin(2 pi t / 1 day)).
- idle:    B / 8.
- exceed:  3B: more than the host can give (the case for a migration).

The model is documented, with what the autoscaler's simulation harness builds on it, in docs/simulation.md.
"""

import hashlib
import math
from dataclasses import dataclass

from hosts.units import parse_memory_kib

PROFILES = ("steady", "ramp", "spike", "diurnal", "idle", "exceed")
DEFAULT_PROFILES = ("steady", "diurnal", "spike")
DAY_S = 86400.0


@dataclass(frozen=True)
class Demand:
    profile: str
    base_kib: int
    seed: int

    def used_kib(self, t: float) -> int:
        return int(self.base_kib * _shape(self.profile, t + self.seed % 600))

    def in_spike(self, t: float) -> bool:
        """Whether a spike profile is in one of its 60 s spikes at t (a transient peak, not a trend)."""
        return self.profile == "spike" and (t + self.seed % 600) % 600 < 60


def _wobble(t: float) -> float:
    return 1 + 0.02 * math.sin(t / 37.0)


def _shape(profile: str, t: float) -> float:
    if profile == "steady":
        return _wobble(t)
    if profile == "ramp":
        phase = (t % 7200) / 3600  # 0..2
        return 0.5 + 1.5 * (phase if phase <= 1 else 2 - phase)
    if profile == "spike":
        return 2.5 if t % 600 < 60 else _wobble(t)
    if profile == "diurnal":
        return 1 + 0.5 * math.sin(2 * math.pi * t / DAY_S)
    if profile == "idle":
        return 0.125
    if profile == "exceed":
        return 3.0
    raise ValueError(f"unknown demand profile {profile!r}; known: {', '.join(PROFILES)}")


def _seed(uuid: str) -> int:
    return int(hashlib.sha256(uuid.encode()).hexdigest()[:8], 16)


def demand_for(uuid: str, maxmem_kib: int, description: str = "") -> Demand:
    """The demand of one domain, from its description if it names one."""
    seed = _seed(uuid)
    for line in description.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "demand":
            words = value.split()
            profile = words[0].lower() if words else "steady"
            base = parse_memory_kib(words[1]) if len(words) > 1 else maxmem_kib * 2 // 5
            if profile in PROFILES:
                return Demand(profile, base, seed)
    return Demand(DEFAULT_PROFILES[seed % len(DEFAULT_PROFILES)], maxmem_kib * 2 // 5, seed)


@dataclass(frozen=True)
class GuestFigures:
    actual_kib: int
    available_kib: int
    unused_kib: int
    usable_kib: int
    rss_kib: int


def guest_figures(demand: Demand, actual_kib: int, t: float) -> GuestFigures:
    """What the guest's balloon driver would report with `actual_kib` given to it and this demand.

    The guest cannot use more than it has; a little of what it has goes to the kernel.
    """
    available = actual_kib * 97 // 100
    used = min(demand.used_kib(t), available)
    unused = available - used
    return GuestFigures(actual_kib, available, unused, unused, min(actual_kib, used + actual_kib // 50))
