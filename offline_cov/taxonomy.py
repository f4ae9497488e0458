"""Target taxonomies: category names, descriptions, examples and target shares."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import TaxonomyError, validation_problems
from .json_keys import DuplicateKey, unique_keys

MAX_CATEGORIES = 50
TARGET_SUM_TOLERANCE = 1.0


class Category(BaseModel):
    """One category: a name, what belongs in it, and optionally a target share in percent."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str
    description: str = ""
    target_share: float | None = Field(None, description="Target share of samples, percent")
    examples: list[str] = Field(default_factory=list, description="A few example instructions")

    @field_validator("target_share", mode="before")
    @classmethod
    def _not_a_yes_or_no(cls, value):
        """A YAML `yes`/`true` read as a target of 1%: refused, as a share is a number of percent."""
        if isinstance(value, bool):
            raise ValueError(f"{str(value).lower()} is not a share; give a number of percent (0-100)")
        return value

    @field_validator("name")
    @classmethod
    def _clean_name(cls, value: str) -> str:
        """Trimmed; refused when empty or invisible (zero-width characters only), or when it holds a
        line break, tab or other control character (a newline in a name wrote a category line of its
        own into the label prompt)."""
        value = value.strip()
        if not value or all(unicodedata.category(c)[0] in "CZ" for c in value):
            raise ValueError("a category name is empty")
        if any(unicodedata.category(c) == "Cc" for c in value):
            raise ValueError(f"category name {value!r} holds a line break, tab or other control character; "
                             "write it on one line")
        return value


class Taxonomy(BaseModel):
    """An ordered list of categories; `inferred` marks one the model proposed."""

    model_config = ConfigDict(extra="forbid")
    categories: list[Category]
    inferred: bool = False
    inferred_by: str | None = Field(None, description=("How an inferred taxonomy was found: proposal, proposal+skills "
                                                        "(the proposal topped up with vocabulary skills), vote or clusters"))

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.categories]

    def targets(self) -> dict[str, float]:
        """Target share (percent) per category: the user's, or uniform when none are given."""
        if any(c.target_share is not None for c in self.categories):
            return {c.name: float(c.target_share or 0.0) for c in self.categories}
        uniform = 100.0 / len(self.categories)
        return {c.name: uniform for c in self.categories}

    def canonical(self, label: str) -> str | None:
        """The taxonomy's spelling of `label`, or None: matched as `name_key` matches names (case,
        composed or decomposed accents, full-width letters), after trimming the label."""
        wanted = name_key(label.strip())
        return next((name for name in self.names if name_key(name) == wanted), None)

    def fingerprint(self) -> str:
        """A stable text identity of the taxonomy, for cache keys and metadata."""
        return json.dumps(self.model_dump(exclude={"inferred", "inferred_by"}), sort_keys=True)


def validate_taxonomy(taxonomy: Taxonomy, source: str = "taxonomy") -> Taxonomy:
    """Check names and targets; raise TaxonomyError saying what to fix."""
    names = taxonomy.names
    if len(names) < 2:
        held = f"only {names[0]!r}" if names else "no categories"
        raise TaxonomyError(f"{source}: the taxonomy has {held}; give at least two (every sample would fall in one), "
                            "or none to infer them")
    if len(names) > MAX_CATEGORIES:
        raise TaxonomyError(
            f"{source}: {len(names)} categories is more than a coverage report can use "
            f"(at most {MAX_CATEGORIES}); merge related ones"
        )
    if twice := named_twice(names):
        raise TaxonomyError(f"{source}: {twice}")
    _check_targets(taxonomy, source)
    return taxonomy


def name_key(name: str) -> str:
    """What two spellings of one category name share: `Code` and `code`, café in NFC and NFD."""
    return unicodedata.normalize("NFKC", name).casefold()


def named_twice(names: list[str]) -> str | None:
    """"category 'math' appears twice (as 'Math' too)" for the first name given twice in any spelling
    (`name_key`), else None: a taxonomy's and a report's check."""
    seen: dict[str, str] = {}
    for name in names:
        key = name_key(name)
        if key in seen:
            twin = f" (as {seen[key]!r} too)" if seen[key] != name else ""
            return f"category {name!r} appears twice{twin}"
        seen[key] = name
    return None


def _check_targets(taxonomy: Taxonomy, source: str) -> None:
    given = [c for c in taxonomy.categories if c.target_share is not None]
    if not given:
        return
    if len(given) != len(taxonomy.categories):
        missing = [c.name for c in taxonomy.categories if c.target_share is None]
        raise TaxonomyError(f"{source}: target_share is missing for {missing}; give a target for every category or none")
    for cat in given:
        if not math.isfinite(cat.target_share) or cat.target_share < 0 or cat.target_share > 100:
            raise TaxonomyError(f"{source}: target_share of {cat.name!r} is {cat.target_share}; it must be 0-100")
    total = sum(c.target_share for c in given)
    if abs(total - 100.0) > TARGET_SUM_TOLERANCE:
        hint = " (shares are percentages: 30 for 30%, not 0.3)" if 0 < total <= 1 + 1e-9 else ""
        raise TaxonomyError(f"{source}: target shares sum to {total:g}, not 100{hint}; fix them so they add up to 100")


def parse_taxonomy_list(text: str) -> Taxonomy:
    """Parse `--taxonomy math,code,writing`; `name=share` sets a target (`math=20,code=80`)."""
    categories = []
    for part in text.split(","):
        name, _, share = part.partition("=")
        if not name.strip():
            raise TaxonomyError(f"--taxonomy {text!r}: a category name is empty (check for doubled or trailing commas)")
        try:
            target = float(share) if share.strip() else None
        except ValueError:
            target = math.nan
        if target is not None and not math.isfinite(target):
            raise TaxonomyError(f"--taxonomy: target {share!r} for {name.strip()!r} is not a number (0-100)")
        try:
            categories.append(Category(name=name, target_share=target))
        except ValidationError as exc:
            raise TaxonomyError(f"--taxonomy: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    return validate_taxonomy(Taxonomy(categories=categories), "--taxonomy")


def load_taxonomy_file(path: str | Path) -> Taxonomy:
    """Load a YAML or JSON taxonomy file.

    Accepted shapes: a list of names; a list of mappings (name, description,
    target_share, examples); or a mapping with a `categories` key holding either,
    or a mapping of name -> {description, target_share, examples}.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaxonomyError(f"{path}: cannot read the taxonomy file ({exc})") from None
    data = _parse_yaml_or_json(path, text)
    if isinstance(data, dict) and "categories" in data:
        extra = [k for k in data if k != "categories"]
        if extra:
            raise TaxonomyError(f"{path}: unknown top-level key {extra[0]!r}; a taxonomy file holds only 'categories'")
        data = data["categories"]
    if isinstance(data, dict):
        data = [_mapped_category(path, k, v) for k, v in data.items()]
    if not isinstance(data, list):
        raise TaxonomyError(f"{path}: expected a list of categories or a mapping with 'categories'")
    for position, item in enumerate(data, start=1):
        if isinstance(item, bool | int | float):
            read = "yes/no, on/off or true/false" if isinstance(item, bool) else "a number"
            raise TaxonomyError(f"{path}: category {position} was read as {item!r}, not a name (YAML reads {read} "
                                "as a value): put the name in quotes")
    items = [{"name": item} if isinstance(item, str) else item for item in data]
    try:
        taxonomy = Taxonomy(categories=items)
    except ValidationError as exc:
        problems = validation_problems(exc, known=Category.model_fields)
        raise TaxonomyError(f"{path}: {'; '.join(problems)}") from None
    return validate_taxonomy(taxonomy, str(path))


def _mapped_category(path: Path, name, value) -> dict:
    """One `name: {description, target_share, examples}` entry (or `name:` alone) as a category mapping;
    any other value (`math: 30`, `math: numbers`) is an error rather than silently dropped."""
    if value is None:
        return {"name": name}
    if isinstance(value, dict):
        return {"name": name, **value}
    raise TaxonomyError(
        f"{path}: category {name!r} maps to {value!r}; write its settings as a mapping, "
        f"for example {name}: {{target_share: 30, description: ...}}, or leave it empty"
    )


def _parse_yaml_or_json(path: Path, text: str):
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text, object_pairs_hook=unique_keys)
        except DuplicateKey as exc:
            raise TaxonomyError(f"{path}: key {exc.args[0]!r} appears twice; the second would replace the first "
                                "without a word") from None
        except json.JSONDecodeError as exc:
            raise TaxonomyError(f"{path}, line {exc.lineno}: invalid JSON ({exc.msg})") from None
        except (ValueError, RecursionError) as exc:  # an integer of over 4300 digits; nesting too deep
            raise TaxonomyError(f"{path}: invalid JSON ({exc})") from None
    import yaml

    try:
        return yaml.load(text, Loader=_unique_keys_loader())  # noqa: S506 (a SafeLoader)
    except DuplicateKey as exc:
        raise TaxonomyError(f"{path}, line {exc.args[1]}: key {exc.args[0]!r} appears twice; the second would "
                            "replace the first without a word") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise TaxonomyError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    except (ValueError, RecursionError) as exc:  # a value yaml cannot build (a date 2001-13-01); nesting too deep
        raise TaxonomyError(f"{path}: invalid YAML ({exc})") from None


def _unique_keys_loader():
    """yaml's SafeLoader, refusing a mapping that names a key twice (safe_load keeps the last)."""
    import yaml

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    if key in seen:
                        raise DuplicateKey(key, key_node.start_mark.line + 1)
                    seen.add(key)
                except TypeError:  # an unhashable key: yaml's own error says so below
                    break
            return super().construct_mapping(node, deep)

    return UniqueKeys


def slugify(name: str) -> str:
    """A lower-case snake_case version of an inferred category name."""
    return re.sub(r"[^a-z0-9]+", "_", name.casefold()).strip("_")
