"""What the engine gives back: steps to take and decisions to keep, each with its reason and figures.

A step or decision holds a stable `code` and the `figures` behind it; `reason` renders the sentence from them.
"""

from dataclasses import dataclass, field

from .reasons import explain
from .snapshot import BalloonWatch, Coincidence

RESIZE = "resize"
MIGRATE = "migrate"
PLACE = "place"  # a what-if's new domain on its chosen host


# Not frozen: a frozen dataclass sets each field through object.__setattr__, too slow for 20,000 per plan.
@dataclass(slots=True)
class Step:
    kind: str
    code: str
    domain_id: int | None
    domain_name: str
    host_id: int
    from_kib: int
    to_kib: int
    figures: dict = field(default_factory=dict)
    to_host_id: int | None = None  # a migration's destination

    @property
    def reason(self) -> str:
        return explain(self.code, self.figures)

    @property
    def is_shrink(self) -> bool:
        return self.kind == RESIZE and self.to_kib < self.from_kib

    @property
    def is_grow(self) -> bool:
        return self.kind == RESIZE and self.to_kib > self.from_kib


@dataclass(slots=True)
class Decision:
    """Why nothing (or not everything) was done, for one domain or one host."""

    code: str
    domain_id: int | None = None
    host_id: int | None = None
    figures: dict = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return explain(self.code, self.figures)


@dataclass(slots=True)
class Plan:
    now: float
    policy_version: str
    steps: list[Step] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    # The next BalloonWatch of every running domain the engine looked at, to be kept for the next cycle.
    watches: dict[int, BalloonWatch] = field(default_factory=dict)
    # The next `squeezed_since` of every managed host, to be kept for the next cycle.
    squeezed_since: dict[int, float | None] = field(default_factory=dict)
    # The next Coincidence of every managed host.
    coincidences: dict[int, Coincidence] = field(default_factory=dict)

    @property
    def resizes(self) -> list[Step]:
        return [s for s in self.steps if s.kind == RESIZE]

    @property
    def migrations(self) -> list[Step]:
        return [s for s in self.steps if s.kind == MIGRATE]

    def for_domain(self, domain_id: int) -> list[Step | Decision]:
        return [s for s in self.steps if s.domain_id == domain_id] + [
            d for d in self.decisions if d.domain_id == domain_id
        ]

    def for_host(self, host_id: int) -> list[Decision]:
        return [d for d in self.decisions if d.host_id == host_id and d.domain_id is None]

    def codes(self, domain_id: int) -> set[str]:
        return {d.code for d in self.decisions if d.domain_id == domain_id}
