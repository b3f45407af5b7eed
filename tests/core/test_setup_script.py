"""What setup.sh installs: pyproject.toml's pins, and every other package at the version in constraints.txt."""

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = Path(__file__).resolve().parents[2]
CONSTRAINTS = PROJECT / "balloonweb" / "scripts" / "constraints.txt"


def pinned_in_constraints():
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_every_pin_of_pyproject_is_the_version_in_the_constraints():
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    constraints = pinned_in_constraints()
    disagreeing = {}
    for requirement in map(Requirement, requirements):
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{requirement} is not pinned"
        if constraints.get(canonicalize_name(requirement.name)) != specifier.version:
            disagreeing[requirement.name] = (specifier.version, constraints.get(canonicalize_name(requirement.name)))
    assert disagreeing == {}, "write constraints.txt again (how: its first lines)"


def test_the_virtualenv_holds_exactly_the_constrained_versions():
    """A package that a new release of a dependency pulls in, or one installed by hand, shows here first."""
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()
                 if canonicalize_name(d.metadata["Name"]) not in {"balloonweb", "pip", "setuptools"}}
    assert installed == pinned_in_constraints()


def test_the_lab_installs_as_root_directly_or_through_sudo(monkeypatch):
    """The lab ran apt-get as whoever started it: as anyone but root, it failed (setup.sh's as_root does this)."""
    import os

    from hosts.lab.guest import as_root

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert as_root(["apt-get", "update"]) == ["apt-get", "update"]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert as_root(["apt-get", "update"]) == ["sudo", "apt-get", "update"]
