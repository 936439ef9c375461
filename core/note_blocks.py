"""The one ```yaml <name>``` block a CEO-owned note holds (the handbook's policy, the
schedule), read with the task loader: no aliases, no duplicate keys, a mapping or an error."""

from __future__ import annotations

import re
from typing import Any

import yaml

from core import tasks
from core.errors import ConfigError


def yaml_block(
    text: str,
    name: str,
    source: str,
    error: type[ConfigError],
    *,
    restore: str,
    fix_yaml: str,
    fix_shape: str,
) -> dict[str, Any]:
    """The mapping in the note's single ``yaml <name>`` block; ``error`` saying what is wrong."""
    pattern = rf"^```yaml[ \t]+{re.escape(name)}[ \t]*\r?\n(.*?)^```[ \t]*\r?$"
    blocks = re.findall(pattern, text, re.DOTALL | re.MULTILINE)
    if len(blocks) != 1:
        found = "no" if not blocks else str(len(blocks))
        raise error(
            f"{source} has {found} ```yaml {name}``` block(s); exactly one is needed", restore
        )
    try:
        raw = tasks.safe_load_yaml(blocks[0])
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1} of the block)" if mark else ""
        why = f": {exc.problem}" if getattr(exc, "problem", None) else ""
        raise error(
            f"the {name} block in {source} is not valid YAML{line}{why}", fix_yaml
        ) from None
    if not isinstance(raw, dict):
        raise error(f"the {name} block in {source} is not a mapping", fix_shape)
    return raw
