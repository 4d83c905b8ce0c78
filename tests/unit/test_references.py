"""Every source the code and docs cite is in the repository: docs/references.md defines each key.

Citations once pointed at notes kept outside the repository, which a reader of a clone cannot open.
These tests keep them out, and keep every bracketed source key resolvable.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCES = ROOT / "docs" / "references.md"

# Notes that live outside the repository; spelled in pieces so this file does not match itself.
OUTSIDE_NOTES = ("shared" + "/", "domain" + ".md", "design" + ".md", "peers" + ".md", "style" + ".md")

# A source key: capitals and digits with at least one hyphen (VN-DCC, IR-2025-2547), or OEE.COM.
# Its first part has two characters or more, so a regex class such as [A-Z] is not a key.
KEY = re.compile(r"^(?:[A-Z][A-Z0-9]+(?:-[A-Z0-9]+)+|OEE\.COM)$")
# A key's definition in references.md: a list item that starts with the key in bold brackets.
DEFINITION = re.compile(r"\*\*\[([^\]]+)\]\*\*")
BRACKETS = re.compile(r"\[([^\]\n]{1,200})\]")


def tracked_files() -> list[Path]:
    """The files git tracks in this checkout (the product, not caches or virtualenvs)."""
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    return [ROOT / name for name in listing.split("\0") if name]


def text_of(path: Path) -> str | None:
    """The file's text, or None for a binary file (or one a concurrent checkout removed)."""
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
        return None


def cited_keys(text: str) -> set[str]:
    """Source keys cited in ``[...]``: the first word of each ``;``- or ``,``-separated part."""
    keys = set()
    for bracket in BRACKETS.finditer(text):
        for part in re.split(r"[;,]", bracket.group(1)):
            words = part.split()
            if words and KEY.match(words[0]):
                keys.add(words[0])
    return keys


def defined_keys() -> set[str]:
    """The keys docs/references.md defines."""
    return set(DEFINITION.findall(REFERENCES.read_text(encoding="utf-8")))


def test_no_tracked_file_cites_a_note_outside_the_repository() -> None:
    files = tracked_files()
    assert len(files) > 50, "git ls-files found too few files: is this a checkout?"
    offenders = []
    for path in files:
        text = text_of(path)
        if text is None or path == Path(__file__).resolve():
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for note in OUTSIDE_NOTES:
                if note in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {note}")
    assert offenders == [], "cite docs/references.md instead:\n" + "\n".join(offenders)


def test_every_cited_source_key_is_defined_in_references() -> None:
    defined = defined_keys()
    missing = []
    for path in tracked_files():
        if path.suffix not in {".py", ".md", ".yaml"} or path == REFERENCES:
            continue
        text = text_of(path)
        if text is None:
            continue
        missing += [f"{path.relative_to(ROOT)}: [{key}]" for key in sorted(cited_keys(text) - defined)]
    assert missing == [], "keys not defined in docs/references.md:\n" + "\n".join(missing)


def test_references_define_the_keys_the_brief_sources_need() -> None:
    # The sources a reader of the calculators needs first: OEE, Scope 1 and 2, grid factors, CBAM.
    needed = {"ISO22400-2", "VORNE-WS", "IPCC06", "GHGP-S2", "VN-DCC", "KR-MCEE", "KR-ETS"}
    needed |= {"CBAM-REG", "IR-2023-1773", "IR-2025-2547", "IR-2025-2621", "ANNEX-IV"}
    assert needed <= defined_keys()


def test_the_key_finder_sees_keys_and_ignores_prose() -> None:
    # The checks above are only as good as this parser: a key with a section, several keys, and
    # brackets that hold code or a regulation number but no key.
    text = "[CBAM-NOTE §4.6] [VN-DCC; KR-ETS] [OEE.COM] [2025/2547 Annex III] [i] [A-Z2-9]"
    assert cited_keys(text) == {"CBAM-NOTE", "VN-DCC", "KR-ETS", "OEE.COM"}
