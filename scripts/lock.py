"""Write or check scripts/constraints.txt: the versions `scripts/setup.sh` installs.

`setup.sh` installs `.[cpu,ray,test]` with `pip install -c scripts/constraints.txt`, so a fresh machine
and CI get the versions the suite last passed with, not whatever the registry holds that day
(in session 40, six of ~200 packages differed between a working .venv and a fresh setup). The file pins every
distribution that offline-cov's `cpu`, `ray` and `test` extras need, directly or through another
package, at the version installed in the interpreter running this script:

    .venv/bin/python scripts/lock.py            # after `OFFLINE_COV_CONSTRAINTS= bash scripts/setup.sh`
    .venv/bin/python scripts/lock.py --check    # exit 1, naming the differences, when the file is stale

Requirements that are not installed (torchvision and the like, which `setup.sh` removes; ones whose
environment marker is false here) are not pinned. The packaged models that `setup.sh` installs with
`--no-deps` pin their versions in `setup.sh` itself.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = "offline-cov"
EXTRAS = ("cpu", "ray", "test")
CONSTRAINTS = Path(__file__).resolve().parent / "constraints.txt"
HEADER = ("# The versions scripts/setup.sh installs (pip install -c); written by scripts/lock.py from the .venv\n"
          "# the test suite passed in. OFFLINE_COV_CONSTRAINTS= bash scripts/setup.sh resolves the newest instead.\n")


def wanted(requirement: Requirement, extras: frozenset[str]) -> bool:
    """Whether a requirement applies here with the given extras of the package that names it."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in (extras or {""}))


def closure(root: str = ROOT, extras: tuple[str, ...] = EXTRAS) -> dict[str, str]:
    """{canonical name: installed version} of every installed distribution `root[extras]` needs, directly
    or through another; `root` itself left out."""
    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(root, frozenset(extras))]
    while todo:
        name, its_extras = todo.pop()
        key = (canonicalize_name(name), its_extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if key[0] != canonicalize_name(root):
            pins[key[0]] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            if wanted(requirement, its_extras):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return pins


def render(pins: dict[str, str]) -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def read(path: Path) -> dict[str, str]:
    """{canonical name: version} of a constraints file's `name==version` lines."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def differences(written: dict[str, str], installed: dict[str, str]) -> list[str]:
    """One line per package the file pins otherwise than installed, or not at all, or needlessly."""
    out = []
    for name in sorted(set(written) | set(installed)):
        have, pinned = installed.get(name), written.get(name)
        if have != pinned:
            out.append(f"{name}: installed {have or 'not needed'}, pinned {pinned or 'not pinned'}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare the file with this environment; write nothing")
    parser.add_argument("--file", type=Path, default=CONSTRAINTS)
    args = parser.parse_args(argv)
    installed = closure()
    if not installed:
        print(f"{ROOT} is not installed in {sys.prefix}: run scripts/setup.sh first", file=sys.stderr)
        return 2
    if not args.check:
        args.file.write_text(render(installed), encoding="utf-8")
        print(f"wrote {len(installed)} pins to {args.file}")
        return 0
    lines = differences(read(args.file), installed)
    for line in lines:
        print(line, file=sys.stderr)
    if lines:
        print(f"{args.file} differs from {sys.prefix} ({len(lines)} packages): rerun scripts/lock.py", file=sys.stderr)
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
