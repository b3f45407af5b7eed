"""Row locks lock only the rows meant. On PostgreSQL, `select_for_update()` locks every table its query joins,
and a model whose default ordering follows a relation (Domain orders by its host's name) joins that relation: a
claim that meant to lock a domain also locked its host, and deadlocked against requests that lock the host
first. So a lock on such a model must name its own rows, `select_for_update(of=("self",))`."""

import re
from pathlib import Path

from django.apps import apps

ROOT = Path(__file__).resolve().parents[2]
LOCK = re.compile(r"(\w+)\.objects\.select_for_update\(([^)]*)\)")


def models_ordered_across_a_relation() -> set[str]:
    return {model.__name__ for model in apps.get_models() if any("__" in field for field in model._meta.ordering)}


def test_every_lock_on_a_model_ordered_across_a_relation_names_its_own_rows():
    risky = models_ordered_across_a_relation()
    assert "Domain" in risky  # the case that deadlocked; if it goes, this test still guards the others
    found, offending, unreadable = 0, [], []
    for package in ("balloonweb", "domains", "hosts"):
        for path in (ROOT / package).rglob("*.py"):
            for line_number, line in enumerate(path.read_text().splitlines(), 1):
                if line.count("select_for_update(") != len(LOCK.findall(line)):
                    unreadable.append(f"{path.relative_to(ROOT)}:{line_number}")
                for match in LOCK.finditer(line):
                    found += 1
                    model, arguments = match.groups()
                    if model in risky and "of=" not in arguments:
                        offending.append(f"{path.relative_to(ROOT)}:{line_number}: {line.strip()}")
    assert found > 5 and unreadable == [], f"write locks as Model.objects.select_for_update(...): {unreadable}"
    assert offending == [], "lock with of=('self',):\n" + "\n".join(offending)

