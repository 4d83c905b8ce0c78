"""The plant file's ``cbam`` section: valid files load, each mistake is one located error."""

from __future__ import annotations

import pytest

from plantstream.plant import PlantError, PlantIssue, parse_plant
from plantstream.plant.cbam_checks import _goods_in_cycles
from plantstream.plant.cn_codes import cn_category
from plantstream.plant.schema import CbamGood, GoodPrecursor

BASE = """\
sites:
  - id: s1
    timezone: Asia/Ho_Chi_Minh
    country: VN
    lines:
      - id: l1
        machines:
          - id: furnace
            signals:
              gas: {role: fuel, fuel: natural_gas, unit: kg}
              kwh: energy_kwh
          - id: mill
            ideal_cycle_s: 10
            signals:
              good: good_count
              kwh: energy_kwh
cbam:
  operator: {name: Example Steel JSC}
  installation:
    id: inst1
    name: Example tube mill
    country: VN
    unlocode: VNSGN
  electricity: {factor_t_per_mwh: 0.465, source: "IR 2025/2621 Annex II, other countries"}
  processes:
    - id: finishing
      route: All production routes
      machines: [furnace, mill]
  goods:
    - id: tube
      cn_code: 7306 30 77
      process: finishing
      output: {machine: mill, mass_kg_per_piece: 250}
      precursors:
        - {purchased: hrc, mass_t_per_t: 1.05}
  purchased_precursors:
    - id: hrc
      cn_code: 7208 51 20
      origin: KR
      basis: actual_verified
      see_direct: 2.0
      see_indirect: 0.1
"""
# Line numbers used below:
# 19   installation:
# 24   electricity: ...
# 28       machines: [furnace, mill]
# 30     - id: tube
# 31       cn_code: 7306 30 77
# 33       output: {machine: mill, mass_kg_per_piece: 250}
# 35         - {purchased: hrc, mass_t_per_t: 1.05}
# 37     - id: hrc


def edit(*edits: tuple[str, str]) -> str:
    text = BASE
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
        text = text.replace(old, new)
    return text


def issues_of(text: str) -> list[PlantIssue]:
    with pytest.raises(PlantError) as info:
        parse_plant(text)
    return info.value.issues


def only_issue(text: str) -> str:
    [issue] = issues_of(text)
    return str(issue)


def test_base_is_valid_and_derives_the_category() -> None:
    cbam = parse_plant(BASE).model.cbam
    assert cbam is not None
    assert cbam.goods[0].cn_code == "73063077"
    assert cbam.goods[0].category == "iron_steel"
    assert cbam.purchased_precursors[0].category == "iron_steel"


def test_good_without_cn_code() -> None:
    text = edit(("      cn_code: 7306 30 77\n", ""))
    assert only_issue(text) == "plant.yaml:30 cbam.goods[0].cn_code: required key is missing"


def test_cn_code_outside_annex_i() -> None:
    text = edit(("cn_code: 7306 30 77", "cn_code: 7204 10 00"))  # ferrous scrap is excluded
    assert only_issue(text).startswith(
        "plant.yaml:31 cbam.goods[0].cn_code: CN 7204 10 00 is not a CBAM good"
    )


def test_cn_code_with_wrong_length() -> None:
    text = edit(("cn_code: 7306 30 77", "cn_code: 7306"))
    assert "cbam.goods[0].cn_code: a CN code has 8 digits" in only_issue(text)


def test_process_with_no_machines() -> None:
    text = edit(("machines: [furnace, mill]", "machines: []"))
    issues = [str(i) for i in issues_of(text)]
    assert (
        "plant.yaml:28 cbam.processes[0].machines: a production process needs at least one machine "
        "(its emissions come from them)" in issues
    )


def test_machine_that_does_not_exist() -> None:
    text = edit(("machines: [furnace, mill]", "machines: [furnace, mill, press9]"))
    assert only_issue(text) == (
        "plant.yaml:28 cbam.processes[0].machines[2]: machine 'press9' does not exist (known: furnace, mill)"
    )


def test_precursor_with_neither_see_nor_default() -> None:
    text = edit(("      see_direct: 2.0\n      see_indirect: 0.1\n", ""))
    assert only_issue(text) == (
        "plant.yaml:37 cbam.purchased_precursors[0]: precursor 'hrc' has neither an actual SEE "
        "(see_direct, see_indirect) nor a default value (default: {direct, indirect, source})"
    )


def test_precursor_on_default_values_is_valid() -> None:
    text = edit(
        (
            "      basis: actual_verified\n      see_direct: 2.0\n      see_indirect: 0.1\n",
            "      basis: default\n      default: {direct: 1.8, indirect: 0.2, source: IR 2025/2621}\n",
        )
    )
    cbam = parse_plant(text).model.cbam
    assert cbam is not None
    assert cbam.purchased_precursors[0].default is not None


def test_default_basis_without_default_value() -> None:
    text = edit(("basis: actual_verified", "basis: default"))
    assert "basis default needs default" in only_issue(text)


def test_unknown_purchased_precursor_reference() -> None:
    text = edit(("{purchased: hrc,", "{purchased: slab,"))
    assert (
        only_issue(text)
        == "plant.yaml:35 cbam.goods[0].precursors[0].purchased: unknown purchased precursor 'slab'"
    )


def test_output_machine_must_belong_to_the_process() -> None:
    text = edit(("machines: [furnace, mill]", "machines: [furnace]"))
    assert only_issue(text) == (
        "plant.yaml:33 cbam.goods[0].output.machine: "
        "machine 'mill' is not one of process 'finishing''s machines"
    )


def test_output_machine_needs_a_counter() -> None:
    text = edit(("output: {machine: mill,", "output: {machine: furnace,"))
    assert "machine 'furnace' has no good_count or total_count signal" in only_issue(text)


def test_output_needs_mass_or_scale() -> None:
    text = edit(("output: {machine: mill, mass_kg_per_piece: 250}", "output: {machine: mill}"))
    assert only_issue(text) == (
        "plant.yaml:33 cbam.goods[0].output: "
        "give mass_kg_per_piece, or weighed: true for a weigh-scale total in kg"
    )


def test_weighed_output_is_valid() -> None:
    text = edit(("output: {machine: mill, mass_kg_per_piece: 250}", "output: {machine: mill, weighed: true}"))
    parse_plant(text)


def test_machine_in_two_processes() -> None:
    text = edit(
        (
            "      machines: [furnace, mill]\n",
            "      machines: [furnace, mill]\n    - id: other\n"
            "      route: All production routes\n      machines: [mill]\n",
        )
    )
    assert "machine 'mill' already belongs to process 'finishing'" in only_issue(text)


def test_actual_electricity_factor_needs_its_link() -> None:
    text = edit(("electricity: {factor_t_per_mwh", "electricity: {basis: actual, factor_t_per_mwh"))
    assert only_issue(text).startswith("plant.yaml:24 cbam.electricity: an actual electricity factor needs")


def test_installation_needs_address_or_unlocode() -> None:
    text = edit(("    unlocode: VNSGN\n", ""))
    assert only_issue(text) == (
        "plant.yaml:19 cbam.installation: "
        "give the installation's address or its UN/LOCODE (summary report item 2)"
    )


def test_own_good_as_precursor_in_the_same_process_is_refused() -> None:
    text = edit(("{purchased: hrc, mass_t_per_t: 1.05}", "{good: tube, mass_t_per_t: 1.05}"))
    issues = [str(i) for i in issues_of(text)]
    assert any("made in the same process 'finishing'" in i for i in issues)
    assert any("is its own precursor" in i for i in issues)


def test_typo_in_cbam_key_is_suggested() -> None:
    text = edit(("      see_direct: 2.0\n", "      see_direct: 2.0\n      see_indirrect: 0.1\n"))
    assert "unknown key (did you mean 'see_indirect'?)" in only_issue(text)


@pytest.mark.parametrize(
    ("code", "category"),
    [
        ("2523 10 00", "cement"),  # clinker
        ("2507 00 80", "cement"),
        ("2716 00 00", "electricity"),
        ("3102 10 10", "fertilisers"),
        ("3105 60 00", None),  # excluded from 3105
        ("2601 12 00", "iron_steel"),
        ("7202 30 00", None),  # ferro-silico-manganese is excluded
        ("7202 41 10", "iron_steel"),  # ferro-chromium is not in the exclusions
        ("7204 49 10", None),  # scrap
        ("7311 00 11", "iron_steel"),
        ("7312 10 20", None),
        ("7326 90 98", "iron_steel"),
        ("7602 00 11", None),  # aluminium waste is not listed
        ("7616 99 10", "aluminium"),
        ("2804 10 00", "hydrogen"),
        ("8703 80 10", None),
    ],
)
def test_annex_i_categories(code: str, category: str | None) -> None:
    assert cn_category(code) == category


SHARED = (
    "      machines: [furnace, mill]\n",
    "      machines: [mill]\n      shared_machines: [{machine: furnace, share: 0.6, basis: metered heat}]\n"
    "    - id: other\n      route: All production routes\n      machines: [press]\n"
    "      shared_machines: [{machine: furnace, share: 0.4, basis: metered heat}]\n",
)
PRESS = (
    "          - id: mill\n",
    "          - id: press\n            signals: {kwh: energy_kwh}\n          - id: mill\n",
)


def test_a_machine_shared_between_processes() -> None:
    cbam = parse_plant(edit(SHARED, PRESS)).model.cbam
    assert cbam is not None
    assert [m.share for p in cbam.processes for m in p.shared_machines] == [0.6, 0.4]


def test_shares_of_a_machine_may_not_exceed_one() -> None:
    text = edit(SHARED, PRESS, ("share: 0.4", "share: 0.5"))
    assert "cbam.processes[1].shared_machines[0].machine: the shares of machine 'furnace' add up to 1.1" in (
        only_issue(text)
    )


def test_a_machine_owned_by_a_process_cannot_also_be_shared() -> None:
    text = edit(SHARED, PRESS, ("machines: [press]", "machines: [press, furnace]"))
    issues = [str(i) for i in issues_of(text)]
    assert any(
        "machine 'furnace' belongs wholly to process 'other'; it cannot be shared" in i for i in issues
    )


def _with_goods(*specs: tuple[str, list[str]]) -> str:
    """BASE plus goods, each made by a process of its own on a machine of its own.

    A good is (id, own-made precursors); every good and process is otherwise valid, so the only
    problems left are those of the precursor graph.
    """
    machines = processes = goods = ""
    for gid, precursors in specs:
        machines += f"          - {{id: m-{gid}, ideal_cycle_s: 1, signals: {{good: good_count}}}}\n"
        processes += f"    - {{id: p-{gid}, route: All production routes, machines: [m-{gid}]}}\n"
        uses = ", ".join(f"{{good: {p}, mass_t_per_t: 1}}" for p in precursors)
        goods += (
            f"    - {{id: {gid}, cn_code: '73063077', process: p-{gid}, "
            f"output: {{machine: m-{gid}, mass_kg_per_piece: 1}}, precursors: [{uses}]}}\n"
        )
    text = BASE.replace("        machines:\n", "        machines:\n" + machines, 1)
    text = text.replace("  goods:\n", processes + "  goods:\n", 1)
    return text.replace("  purchased_precursors:\n", goods + "  purchased_precursors:\n")


def test_only_goods_on_a_cycle_are_their_own_precursor() -> None:
    # a -> b -> c -> a is a cycle; d uses a but is on no cycle; e names itself.
    text = _with_goods(("a", ["b"]), ("b", ["c"]), ("c", ["a"]), ("d", ["a"]), ("e", ["e"]))
    cyclic = [i.message.split("'")[1] for i in issues_of(text) if "is its own precursor" in i.message]
    assert sorted(cyclic) == ["a", "b", "c", "e"]


def test_a_long_chain_of_own_made_precursors_is_checked_without_recursion() -> None:
    # 499 goods (with `tube`, the 500 allowed), each the precursor of the next: no cycle, no error.
    chain = _with_goods(("g1", []), *((f"g{k}", [f"g{k - 1}"]) for k in range(2, 500)))
    cbam = parse_plant(chain).model.cbam
    assert cbam is not None
    assert len(cbam.goods) == 500


def test_the_cycle_search_needs_no_recursion_whatever_the_chain() -> None:
    # 20,000 goods in a chain that closes on itself: a recursive search would go 20,000 calls
    # deep (Python stops at 1,000); the iterative one finds all of them on the cycle.
    n = 20_000
    goods = {
        f"g{k}": CbamGood.model_construct(
            id=f"g{k}", precursors=[GoodPrecursor.model_construct(good=f"g{(k + 1) % n}")]
        )
        for k in range(n)
    }
    assert _goods_in_cycles(goods) == set(goods)
    del goods["g0"]  # the chain is open now: no good is its own precursor
    assert _goods_in_cycles(goods) == set()


def test_more_goods_than_an_installation_makes_are_refused() -> None:
    [issue] = issues_of(_with_goods(*((f"g{k}", []) for k in range(1, 501))))
    assert str(issue).endswith("cbam.goods: must have at most 500 items (it has 501)")


def test_a_route_outside_the_code_list_is_refused_with_the_list() -> None:
    text = edit(("route: All production routes", "route: hot rolling and tube welding"))
    message = only_issue(text)
    assert message.startswith(
        "plant.yaml:27 cbam.processes[0].route: 'hot rolling and tube welding' is not a production route "
        "of the template's code list (one of: All production routes; Blast furnace route;"
    )
    assert message.endswith("describe the route in route_description")


def test_a_route_of_another_sector_is_refused() -> None:
    text = edit(("route: All production routes", "route: Primary (electrolytic) smelting"))
    assert only_issue(text) == (
        "plant.yaml:27 cbam.processes[0].route: 'Primary (electrolytic) smelting' is not a route of "
        "iron_steel (good 'tube'): one of Blast furnace route; Smelting reduction; Basic oxygen "
        "steelmaking; Electric arc furnace; All production routes; Other production routes; Unknown "
        "production routes"
    )


def test_a_route_description_is_free_text() -> None:
    text = edit(
        ("route: All production routes", "route: All production routes\n      route_description: welding")
    )
    cbam = parse_plant(text).model.cbam
    assert cbam is not None
    assert (cbam.processes[0].route, cbam.processes[0].route_description) == (
        "All production routes",
        "welding",
    )
