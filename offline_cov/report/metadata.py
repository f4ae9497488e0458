"""The shape of the run metadata (*.meta.json) that render, compare, seeds and review read back.

`analyze` writes the file; people open it, edit it, and hand it back. Checking its shape once when it
is read turns a block edited into another shape (a list where an object was, a number where a name
was) into an error that names the file and the field, where each reader would otherwise stop with a
traceback of its own. Only what the readers use is checked; every block keeps any other keys, and a
block left out or null is simply not there.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

Number = StrictFloat  # an int too; neither a string nor a boolean


class _Block(BaseModel):
    """A metadata block: the keys below are checked, any other key is kept as written."""

    model_config = ConfigDict(extra="allow")


class TaxonomyBlock(_Block):
    names: list[StrictStr] | None = None
    targets: dict[str, Number] | None = None
    descriptions: dict[str, StrictStr | None] | None = None
    categories: list[dict] | None = None
    inferred: StrictBool | None = None


class CallKinds(_Block):
    clear: list[StrictStr] = Field(default_factory=list)
    crossing: list[StrictStr] = Field(default_factory=list)
    possible: list[StrictStr] = Field(default_factory=list)


class MeasuredBlock(_Block):
    labeler: StrictStr | None = None
    accuracy: dict[str, Number] | None = None
    split: StrictStr | None = None
    bench_run: StrictStr | None = None
    note: StrictStr | None = None


class ShareIntervalsBlock(_Block):
    basis: StrictStr | None = None
    caveat: StrictStr | None = None
    ci95: dict[str, tuple[Number, Number]] | None = None
    calls: dict[str, CallKinds] | None = None
    labeler_measured: MeasuredBlock | None = None


class CalibrationBlock(_Block):
    trustworthy: StrictBool | None = None
    corrected_share_percent: dict[str, Number] | None = None
    corrected_balance_score: Number | None = None
    not_trustworthy_because: list[StrictStr] | None = None
    method: StrictStr | None = None
    matched: StrictInt | None = None
    accuracy_on_calibration: Number | None = None
    calibration_rows_per_category: dict[str, StrictInt] | None = None
    thin_categories: list[StrictStr] | None = None


class Example(_Block):
    index: StrictInt
    confidence: Number | None = None
    text: StrictStr = ""


class CategoryExamples(_Block):
    most_confident: list[Example]
    least_confident: list[Example]


class LabelerBlock(_Block):
    labeler: StrictStr | None = None
    version: StrictStr | None = None


class EngineBlock(_Block):
    engine: StrictStr | None = None
    loaded: StrictBool | None = None


class ToolBlock(_Block):
    name: StrictStr | None = None
    version: StrictStr | None = None


class SamplesBlock(_Block):
    analyzed: StrictInt | None = None
    labeled: StrictInt | None = None
    failed: StrictInt | None = None


class RunMetadata(_Block):
    """What the commands that read a run's metadata rely on."""

    tool: ToolBlock | None = None
    model: StrictStr | None = None
    labeler: LabelerBlock | None = None
    engine: EngineBlock | None = None
    strategy: StrictStr | None = None
    prompt_version: StrictStr | None = None
    sample_token_budget: StrictInt | None = None
    taxonomy: TaxonomyBlock | None = None
    samples: SamplesBlock | None = None
    category_counts: dict[str, StrictInt] | None = None
    warnings: list[StrictStr] | None = None
    share_intervals: ShareIntervalsBlock | None = None
    calibration: CalibrationBlock | None = None
    examples: dict[str, CategoryExamples] | None = None


class LabelRow(_Block):
    """One sample's label, as the labels file and a shard's manifest keep it."""

    index: StrictInt = Field(ge=0)
    categories: list[StrictStr] = Field(min_length=1)
    difficulty: Literal["easy", "medium", "hard"]
    confidence: Number | None = None
    probabilities: list[Number] | None = None


class ShardBlock(_Block):
    index: StrictInt = Field(ge=0)
    count: StrictInt = Field(ge=1)
    taxonomy: dict
    labels: list[LabelRow]
    failed: list = Field(default_factory=list)

    @model_validator(mode="after")
    def _index_in_range(self) -> ShardBlock:
        if self.index >= self.count:
            raise ValueError(f"shard {self.index} of {self.count}: the index must be below the count")
        return self


class InputBlock(_Block):
    dataset: StrictStr
    samples_in_file: StrictInt
    skipped_records: list = Field(default_factory=list)
    sample_size: StrictInt | None = None
    seed: StrictInt = 0
    fields: list[StrictStr | None] = Field(default_factory=lambda: [None, None], min_length=2, max_length=2)
    encoding: StrictStr = "utf-8"
    content_digest: StrictStr | None = None


class ShardManifest(RunMetadata):
    """A shard's run metadata (`analyze --shard I/N`): what `merge` needs besides the dataset."""

    shard: ShardBlock
    input: InputBlock


def metadata_problems(data: dict, shape: type[BaseModel] = RunMetadata) -> list[str]:
    """Each way `data` is not shaped as run metadata (or a shard's manifest, `shape=ShardManifest`),
    as "field.path: message" (none when it is)."""
    from pydantic import ValidationError

    from ..errors import validation_problems

    try:
        shape.model_validate(data)
    except ValidationError as exc:
        return validation_problems(exc)
    return []


PLAIN_WORDS = (("Input should be", "should be"), ("Field required", "is missing"), ("a valid dictionary", "an object ({...})"),
               ("a valid list", "a list ([...])"), ("a valid tuple", "a list ([...])"))


def _plain(message: str) -> str:
    """pydantic's message in the words of the JSON file (no class names)."""
    import re

    message = re.sub(r" or instance of \w+", "", message)
    for word, plain in PLAIN_WORDS:
        message = message.replace(word, plain)
    return message


def check_shape(data: dict, path, shape: type[BaseModel] = RunMetadata, writer: str = "`offline-cov analyze`") -> None:
    """Refuse `data` read from `path` when a block was edited into another shape, naming the first
    field that is wrong (an InputError)."""
    from ..errors import InputError

    problems = metadata_problems(data, shape)
    if not problems:
        return
    field, _, message = problems[0].partition(": ")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    what = "a shard's manifest" if shape is ShardManifest else "run metadata"
    raise InputError(path, f"not {what} as {writer} writes it: {_plain(message)}{more}; was it edited by hand? "
                           "Fix the field, or run it again to write it", field=field)
