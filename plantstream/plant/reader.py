"""Read a plant file's YAML safely: bounded size and depth, no anchors, core-schema scalars.

A plant file comes from people and from tools, and sometimes from someone who means harm. Before a
node tree is built, the file is screened in one pass over the parser's events, which costs time
linear in its size and no memory beyond the current nesting:

- at most :data:`MAX_BYTES` (4 MiB) of UTF-8 text without NUL bytes;
- no anchors (``&a``) or aliases (``*a``): a 1.4 KB "billion laughs" file expands aliases into
  billions of nodes; refusing them costs nothing, and a plant file never needs them;
- at most :data:`MAX_DEPTH` (64) levels of nesting, so the recursive steps after the screen
  (composing, building, validating) stay far from Python's recursion limit.

Scalars are read with YAML 1.2 core-schema rules: only ``true``/``false`` are booleans and ``16:00``
stays a time, not the base-60 integer 960 that YAML 1.1 makes of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

__all__ = ["MAX_BYTES", "MAX_DEPTH", "CoreLoader", "YamlProblem", "YamlRefused", "compose", "decode"]

MAX_BYTES = 4 * 1024 * 1024
"""The largest plant file read; a real plant of thousands of tags is a few hundred KB."""

MAX_DEPTH = 64
"""The deepest nesting accepted; a plant file needs about ten levels."""

_MAX_REPORTED = 10
"""Anchors and aliases reported one by one; more are summed up in one line."""


@dataclass(frozen=True)
class YamlProblem:
    """A problem found before the YAML is turned into data: its line (1-based) and what it is."""

    line: int
    message: str


class YamlRefused(Exception):
    """The text is not a plant file that can be read; ``problems`` says where and why."""

    def __init__(self, problems: list[YamlProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"line {p.line}: {p.message}" for p in problems))


def decode(data: bytes) -> str:
    """Turn a plant file's bytes into text, refusing what is too large, binary or not UTF-8.

    Raises:
        YamlRefused: naming the line (and column) of the first offending byte.
    """
    if len(data) > MAX_BYTES:
        raise YamlRefused([YamlProblem(0, f"the file is larger than {MAX_BYTES} bytes (4 MiB)")])
    nul = data.find(b"\0")
    if nul >= 0:
        raise YamlRefused([_byte_problem(data, nul, "a NUL byte: this is binary data, not a YAML text file")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlRefused(
            [_byte_problem(data, exc.start, f"byte 0x{data[exc.start]:02x} is not UTF-8 text")]
        ) from None


def _byte_problem(data: bytes, offset: int, what: str) -> YamlProblem:
    line_start = data.rfind(b"\n", 0, offset) + 1
    line = data.count(b"\n", 0, offset) + 1
    return YamlProblem(line, f"{what} (column {offset - line_start + 1})")


def compose(text: str) -> yaml.Node | None:
    """Screen ``text`` and compose it into a node tree (``None`` for an empty document).

    Raises:
        YamlRefused: the text is too large, has a NUL, anchors or aliases, or nests too deep.
        yaml.YAMLError: the text is not valid YAML (the caller locates it).
    """
    # Characters bound the UTF-8 size from below, so the cheap test comes first.
    too_large = YamlRefused([YamlProblem(0, f"the text is larger than {MAX_BYTES} bytes (4 MiB)")])
    if len(text) > MAX_BYTES:
        raise too_large
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate, which no file decoded as UTF-8 holds
        line = text.count("\n", 0, exc.start) + 1
        raise YamlRefused(
            [YamlProblem(line, "a character that is not Unicode text (a lone surrogate)")]
        ) from None
    if size > MAX_BYTES:
        raise too_large
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        column = nul - (text.rfind("\n", 0, nul) + 1) + 1
        raise YamlRefused([YamlProblem(line, f"a NUL character (column {column}): this is not a YAML text")])
    problems = _screen(text)
    if problems:
        raise YamlRefused(problems)
    node: yaml.Node | None = yaml.compose(text, Loader=_FAST_LOADER)
    return node


def _screen(text: str) -> list[YamlProblem]:
    """One pass over the parser's events: anchors, aliases and nesting deeper than allowed.

    Each anchor name is reported once as an anchor and once as an alias (with how often it is
    used), at most :data:`_MAX_REPORTED` of them; the pass stops at the first nesting too deep,
    before the parser's own (much higher) limit turns it into a less helpful error.
    """
    problems: list[YamlProblem] = []
    uses: dict[tuple[str, str], list[int]] = {}  # (sign, name) -> lines where it appears
    depth = 0
    for event in yaml.parse(text, Loader=_FAST_LOADER):
        line = event.start_mark.line + 1 if event.start_mark else 0
        anchor = getattr(event, "anchor", None)
        if anchor is not None:  # aliases carry the anchor they refer to
            sign = "*" if isinstance(event, yaml.AliasEvent) else "&"
            uses.setdefault((sign, anchor), []).append(line)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                problems.append(YamlProblem(line, f"nested deeper than {MAX_DEPTH} levels"))
                break
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    for (sign, name), lines in list(uses.items())[:_MAX_REPORTED]:
        what = "alias" if sign == "*" else "anchor"
        times = f" (used {len(lines)} times)" if len(lines) > 1 else ""
        problems.append(
            YamlProblem(
                lines[0],
                f"YAML {what} {sign}{name}{times}: anchors and aliases are not accepted in a plant "
                "file; write the value out",
            )
        )
    if len(uses) > _MAX_REPORTED:
        first_unreported = list(uses.values())[_MAX_REPORTED][0]
        problems.append(
            YamlProblem(first_unreported, f"{len(uses) - _MAX_REPORTED} more anchor(s) or alias(es)")
        )
    return problems


class CoreLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars (the pure-Python parser, used to construct)."""


def _core_resolvers(loader: type[yaml.SafeLoader | yaml.CSafeLoader]) -> None:
    loader.yaml_implicit_resolvers = {
        first: [
            (tag, rx)
            for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int")
        ]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    loader.add_implicit_resolver(
        "tag:yaml.org,2002:int",
        re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
        list("-+0123456789"),
    )


def _construct_core_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 0) if text.startswith("0x") else int(text, 10)


_core_resolvers(CoreLoader)
CoreLoader.add_constructor("tag:yaml.org,2002:int", _construct_core_int)

# libyaml parses twenty times faster than the pure-Python parser (a 4 MiB file: about 3 s instead
# of a minute); the tags it resolves come from the same core-schema resolvers.
if yaml.__with_libyaml__:

    class _CCoreLoader(yaml.CSafeLoader):
        """CSafeLoader with the core-schema resolvers."""

    _core_resolvers(_CCoreLoader)
    _FAST_LOADER: type = _CCoreLoader
else:  # pragma: no cover - PyYAML built without libyaml
    _FAST_LOADER = CoreLoader
