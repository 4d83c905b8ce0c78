"""CBAM goods: which CN codes Annex I of Reg. (EU) 2023/956 covers, and in which category.

The table is Annex I of Reg. 2023/956 [CBAM-REG] [CBAM-NOTE §1.2-1.6; VERIFY the cement and fertiliser lines
against the Official Journal]. It lives beside the plant schema, which validates the CN codes of a
plant file's ``cbam`` section with it; the calculators (streams.cbam) take the category from here
and decide the Annex II "direct emissions only" flag themselves.

A CN code is 8 digits; spaces are allowed in the plant file (``7306 30 77``). Headings listed in
Annex I (4 digits) cover every code below them; the exclusions are listed as the prefixes they are.
"""

from __future__ import annotations

__all__ = ["CATEGORIES", "cn_category", "normalise_cn"]

CATEGORIES = ("cement", "electricity", "fertilisers", "iron_steel", "aluminium", "hydrogen")
"""The category keys, as streams.cbam.CbamCategory spells them."""

# (category, covered prefixes, excluded prefixes) [CBAM-REG Annex I].
_ANNEX_I: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    # "ex 2507 00 80": only kaolinic clays other than non-calcined; the code itself is listed.
    ("cement", ("25070080", "25231000", "25232100", "25232900", "25233000", "25239000"), ()),
    ("electricity", ("27160000",), ()),
    ("fertilisers", ("28080000", "2814", "28342100", "3102", "3105"), ("31056000",)),
    (
        "iron_steel",
        ("26011200", "72", *(str(h) for h in range(7301, 7312)), "7318", "7326"),
        # Ferro-alloys 7202 2x, 7202 30 00, 50 00, 70 00, 80 00, 7202 91-99, and scrap 7204.
        ("72022", "72023000", "72025000", "72027000", "72028000", "72029", "7204"),
    ),
    ("aluminium", ("7601", *(str(h) for h in range(7603, 7615)), "7616"), ()),
    ("hydrogen", ("28041000",), ()),
)


def normalise_cn(code: str) -> str:
    """The CN code without spaces; ``ValueError`` unless it is exactly 8 digits."""
    digits = "".join(str(code).split())
    if not (digits.isascii() and digits.isdigit() and len(digits) == 8):
        raise ValueError(f"a CN code has 8 digits (spaces allowed, e.g. 7306 30 77), got {code!r}")
    return digits


def cn_category(code: str) -> str | None:
    """The Annex I category of an 8-digit CN code, or ``None`` when CBAM does not cover it.

    Raises:
        ValueError: the code is not 8 digits.
    """
    digits = normalise_cn(code)
    for category, covered, excluded in _ANNEX_I:
        if digits.startswith(covered) and not digits.startswith(excluded):
            return category
    return None
