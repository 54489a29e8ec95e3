"""The study spec's reference page (docs/spec.md), generated from its models.

Write it with `python -m hcl_study.study.spec_reference docs/spec.md`.
"""

from __future__ import annotations

import sys

from hcl_study.config_reference import Section, reference_page, write_page
from hcl_study.study.spec import (
    ObjectiveConfig,
    ResourcesConfig,
    SchedulerConfig,
    SearchConfig,
    SpaceEntry,
    StudySpec,
)

HEADER = """\
# Study spec reference

Generated from `hcl_study/study/spec.py` by
`python -m hcl_study.study.spec_reference docs/spec.md`; a test fails when this page and the
models differ. A spec is validated in full before Ray or MLflow start: unknown keys, fields
that the chosen algorithm or scheduler would not read, booleans in number fields and
non-finite numbers are refused, naming the field; every value the space can draw is checked
as a training config ([config.md](config.md)).
"""


def spec_reference() -> str:
    """The page: the spec's own fields, then one table per section."""
    sections: list[Section] = [
        ("Study", StudySpec, ""),
        ("`space` entries", SpaceEntry, "space.PATH."),
        ("`search`", SearchConfig, "search."),
        ("`scheduler`", SchedulerConfig, "scheduler."),
        ("`objective`", ObjectiveConfig, "objective."),
        ("`resources`", ResourcesConfig, "resources."),
    ]
    return reference_page(HEADER, sections)


if __name__ == "__main__":
    write_page(spec_reference(), sys.argv[1:])
