"""The lock files pin what pyproject.toml asks for, with hashes, and this is what runs.

- ``requirements-dev.lock`` (``./dev``, CI) pins every requirement of
  pyproject.toml, every extra included, to a version inside its range;
  ``requirements.lock`` (the image) pins the runtime ones and every extra but
  ``dev`` to the same versions: exactly what those need, no test tool.
- Every pin carries hashes, so ``pip install --require-hashes`` can use it.
- The interpreter running the tests has exactly the dev lock's versions:
  what passed here is what the lock installs elsewhere.

A requirement added to pyproject.toml without ``./dev lock`` fails here,
naming it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$"
)


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: int

    def applies(self) -> bool:
        return self.marker is None or self.marker.evaluate()


def _pins(path: Path) -> list[Pin]:
    """The pins of a ``uv pip compile --generate-hashes`` file, with their hash counts."""
    pins: list[Pin] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash=sha256:"):
            assert pins, f"{path.name}:{number}: a hash before any pin"
            last = pins[-1]
            pins[-1] = Pin(last.name, last.version, last.marker, last.hashes + 1)
            continue
        match = _PIN.match(stripped)
        assert match, f"{path.name}:{number}: not a pin: {line!r}"
        marker = Marker(match["marker"]) if match["marker"] else None
        pins.append(Pin(canonicalize_name(match["name"]), Version(match["version"]), marker, 0))
    return pins


def _requirements() -> tuple[list[Requirement], list[Requirement]]:
    """What the image needs (dependencies and every extra but dev), and the dev extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})

    def parsed(requirements: list[str]) -> list[Requirement]:
        # ``runwire[x]`` in an extra names another extra, checked in its own right.
        found = [Requirement(r) for r in requirements]
        return [r for r in found if canonicalize_name(r.name) != canonicalize_name(project["name"])]

    runtime = parsed(project["dependencies"])
    runtime += parsed([r for name, rs in extras.items() if name != "dev" for r in rs])
    return runtime, parsed(extras["dev"])


def _applying(pins: list[Pin]) -> dict[str, Pin]:
    out: dict[str, Pin] = {}
    for pin in pins:
        if pin.applies():
            assert pin.name not in out, f"{pin.name} is pinned twice for this interpreter"
            out[pin.name] = pin
    return out


@pytest.mark.parametrize("lock", ["requirements-dev.lock", "requirements.lock"])
def test_every_pin_has_hashes(lock: str) -> None:
    pins = _pins(REPO / lock)
    assert pins, f"{lock} pins nothing"
    assert [p.name for p in pins if p.hashes == 0] == [], f"{lock}: pins without hashes"


def test_the_dev_lock_pins_every_requirement_inside_its_range() -> None:
    runtime, dev = _requirements()
    pins = _applying(_pins(REPO / "requirements-dev.lock"))
    for requirement in [*runtime, *dev]:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is in pyproject.toml but not locked: run ./dev lock"
        pinned = pins[name].version
        assert requirement.specifier.contains(pinned, prereleases=True), (
            f"requirements-dev.lock pins {name}=={pinned}, outside {requirement}: run ./dev lock"
        )


def test_the_runtime_lock_pins_the_runtime_requirements_at_the_dev_versions() -> None:
    runtime, _ = _requirements()
    dev_pins = _applying(_pins(REPO / "requirements-dev.lock"))
    pins = _applying(_pins(REPO / "requirements.lock"))
    for requirement in runtime:
        assert canonicalize_name(requirement.name) in pins, f"{requirement} missing from the lock"
    for name, pin in pins.items():
        assert name in dev_pins, f"requirements.lock has {name}, the dev lock has not"
        assert pin.version == dev_pins[name].version, f"{name}: the two locks disagree"
    # The image gets what the runtime requirements need, and no test tool.
    needed = _closure(runtime)
    assert set(pins) == needed, (
        f"requirements.lock has extra {set(pins) - needed}, lacks {needed - set(pins)}"
    )


def _closure(requirements: list[Requirement]) -> set[str]:
    """The distributions ``requirements`` need here, transitively (from installed metadata)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    stack = [(canonicalize_name(r.name), frozenset(r.extras)) for r in requirements]
    while stack:
        name, extras = stack.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for text in requires(name) or []:
            needed = Requirement(text)
            if needed.marker is not None and not any(
                needed.marker.evaluate({"extra": extra}) for extra in extras or {""}
            ):
                continue
            stack.append((canonicalize_name(needed.name), frozenset(needed.extras)))
    return {name for name, _ in seen}


def test_what_runs_here_is_what_the_dev_lock_pins() -> None:
    wrong = []
    for name, pin in _applying(_pins(REPO / "requirements-dev.lock")).items():
        try:
            installed = Version(version(name))
        except PackageNotFoundError:
            wrong.append(f"{name}=={pin.version} is not installed")
            continue
        if installed != pin.version:
            wrong.append(f"{name}=={pin.version} is locked, {installed} installed")
    assert wrong == [], "the environment differs from requirements-dev.lock: " + "; ".join(wrong)
