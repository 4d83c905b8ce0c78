"""The ``cbam`` section's references: inside it, and from it to the plant's machines and signals."""

from __future__ import annotations

from typing import Any

from plantstream.plant.cbam_goods import Cbam, CbamGood
from plantstream.plant.cbam_routes import routes_of
from plantstream.plant.plant_model import PlantModel
from plantstream.plant.signals import Role
from plantstream.plant.sites import Machine, Site

__all__: list[str] = []


def _unique(items: list[Any], section: str, what: str) -> list[tuple[tuple[str | int, ...], str]]:
    seen: set[str] = set()
    out: list[tuple[tuple[str | int, ...], str]] = []
    for i, item in enumerate(items):
        if item.id in seen:
            out.append((("cbam", section, i, "id"), f"{what} id {item.id!r} is used twice"))
        seen.add(item.id)
    return out


def _cross_check_cbam(plant: PlantModel, cbam: Cbam) -> list[tuple[tuple[str | int, ...], str]]:
    """References inside the ``cbam`` section and from it to the machines of the plant."""
    issues = [
        *_unique(cbam.processes, "processes", "process"),
        *_unique(cbam.goods, "goods", "good"),
        *_unique(cbam.purchased_precursors, "purchased_precursors", "precursor"),
    ]
    machines = {m.id: (site, m) for site, _, m in plant.machines()}
    sites = [site.id for site in plant.sites]
    site_id = cbam.installation.site
    if site_id is None and len(sites) > 1:
        issues.append((("cbam", "installation"), f"name the site of the installation (site: one of {sites})"))
    elif site_id is not None and site_id not in sites:
        issues.append((("cbam", "installation", "site"), f"unknown site {site_id!r} (sites: {sites})"))
    owner = _process_machines(cbam, machines, site_id, issues)
    processes = {process.id for process in cbam.processes}
    goods = {good.id: good for good in cbam.goods}
    purchased = {item.id for item in cbam.purchased_precursors}
    issues.extend(_route_issues(cbam))
    for g, good in enumerate(cbam.goods):
        path = ("cbam", "goods", g)
        if good.process not in processes:
            issues.append(
                ((*path, "process"), f"unknown process {good.process!r} (known: {sorted(processes)})")
            )
        out_machine = good.output.machine
        if out_machine not in machines:
            issues.append(((*path, "output", "machine"), f"machine {out_machine!r} does not exist"))
        else:
            if owner.get(out_machine) != good.process:
                issues.append(
                    (
                        (*path, "output", "machine"),
                        f"machine {out_machine!r} is not one of process {good.process!r}'s machines",
                    )
                )
            machine = machines[out_machine][1]
            if machine.signal_of(Role.GOOD_COUNT) is None and machine.signal_of(Role.TOTAL_COUNT) is None:
                issues.append(
                    (
                        (*path, "output", "machine"),
                        f"machine {out_machine!r} has no good_count or total_count signal to count output",
                    )
                )
        for i, pre in enumerate(good.precursors):
            ppath = (*path, "precursors", i)
            if pre.metered is not None:
                issues.extend(
                    _counting_machine(pre.metered.machine, machines, (*ppath, "metered", "machine"))
                )
            if pre.purchased is not None and pre.purchased not in purchased:
                issues.append(((*ppath, "purchased"), f"unknown purchased precursor {pre.purchased!r}"))
            if pre.good is not None:
                made = goods.get(pre.good)
                if made is None:
                    issues.append(((*ppath, "good"), f"unknown good {pre.good!r}"))
                elif made.process == good.process:
                    issues.append(
                        (
                            (*ppath, "good"),
                            f"good {pre.good!r} is made in the same process {good.process!r}; a precursor "
                            "produced inside the same production process is not counted "
                            "(2025/2547 Annex III)",
                        )
                    )
    issues.extend(_source_streams(cbam, machines, owner, site_id))
    issues.extend(_stream_gases(cbam))
    for c, price in enumerate(cbam.carbon_prices_paid):
        for i, gid in enumerate(price.goods):
            if gid not in goods:
                issues.append(
                    (
                        ("cbam", "carbon_prices_paid", c, "goods", i),
                        f"unknown good {gid!r} (known: {sorted(goods)})",
                    )
                )
    years = [v.year for v in cbam.verifications]
    for v, verification in enumerate(cbam.verifications):
        if years.count(verification.year) > 1 and years.index(verification.year) < v:
            issues.append(
                (("cbam", "verifications", v, "year"), f"year {verification.year} has a verification already")
            )
    cyclic = _goods_in_cycles(goods)
    for g, good in enumerate(cbam.goods):
        if good.id in cyclic:
            issues.append(
                (("cbam", "goods", g, "precursors"), f"good {good.id!r} is its own precursor (a cycle)")
            )
    return issues


def _route_issues(cbam: Cbam) -> list[tuple[tuple[str | int, ...], str]]:
    """Each process's route is one of the routes of its goods' sector (the template's code list)."""
    issues: list[tuple[tuple[str | int, ...], str]] = []
    routes = {process.id: (p, process.route) for p, process in enumerate(cbam.processes)}
    for good in cbam.goods:
        if good.process not in routes or not good.category:
            continue
        p, route = routes[good.process]
        if route not in routes_of(good.category):
            issues.append(
                (
                    ("cbam", "processes", p, "route"),
                    f"{route!r} is not a route of {good.category} (good {good.id!r}): one of "
                    f"{'; '.join(routes_of(good.category))}",
                )
            )
    return issues


# Annex I of Reg. 2023/956 lists the greenhouse gases of each good: CO2 for all, N2O for nitric
# acid and the fertilisers made from it, PFCs for aluminium [CBAM-REG].
_GAS_OF_METHOD = {"n2o_measured": ("N2O", "fertilisers"), "pfc_slope": ("PFCs", "aluminium")}


def _stream_gases(cbam: Cbam) -> list[tuple[tuple[str | int, ...], str]]:
    """A stream of N2O or PFCs only in a process of the goods Annex I lists that gas for."""
    issues: list[tuple[tuple[str | int, ...], str]] = []
    for p, process in enumerate(cbam.processes):
        categories = {good.category for good in cbam.goods if good.process == process.id}
        for s, stream in enumerate(process.source_streams):
            if stream.method not in _GAS_OF_METHOD:
                continue
            gas, sector = _GAS_OF_METHOD[stream.method]
            others = sorted(categories - {sector})
            if others:
                issues.append(
                    (
                        ("cbam", "processes", p, "source_streams", s, "method"),
                        f"{gas} count only for {sector} goods (Annex I of Reg. 2023/956); process "
                        f"{process.id!r} makes {', '.join(others)} goods",
                    )
                )
    return issues


def _counting_machine(
    mid: str, machines: dict[str, tuple[Site, Machine]], path: tuple[str | int, ...]
) -> list[tuple[tuple[str | int, ...], str]]:
    """A machine whose counter gives a mass: it exists and has a good or total count."""
    if mid not in machines:
        return [(path, f"machine {mid!r} does not exist (known: {', '.join(sorted(machines))})")]
    machine = machines[mid][1]
    if machine.signal_of(Role.GOOD_COUNT) is None and machine.signal_of(Role.TOTAL_COUNT) is None:
        return [(path, f"machine {mid!r} has no good_count or total_count signal (a scale total or pieces)")]
    return []


def _source_streams(
    cbam: Cbam, machines: dict[str, tuple[Site, Machine]], owner: dict[str, str], site_id: str | None
) -> list[tuple[tuple[str | int, ...], str]]:
    """Source streams: unique ids, and an activity machine that exists and counts."""
    issues: list[tuple[tuple[str | int, ...], str]] = []
    seen: dict[str, str] = {}
    for p, process in enumerate(cbam.processes):
        for s, stream in enumerate(process.source_streams):
            path: tuple[str | int, ...] = ("cbam", "processes", p, "source_streams", s)
            if stream.id in seen:
                issues.append(
                    ((*path, "id"), f"source stream {stream.id!r} is already in process {seen[stream.id]!r}")
                )
            seen.setdefault(stream.id, process.id)
            mid = stream.activity.machine
            where = (*path, "activity", "machine")
            if mid not in machines:
                issues.append(
                    (where, f"machine {mid!r} does not exist (known: {', '.join(sorted(machines))})")
                )
                continue
            site, machine = machines[mid]
            if site_id is not None and site.id != site_id:
                issues.append((where, f"machine {mid!r} is not on the installation's site {site_id!r}"))
            if machine.signal_of(Role.GOOD_COUNT) is None and machine.signal_of(Role.TOTAL_COUNT) is None:
                issues.append(
                    (
                        where,
                        f"machine {mid!r} has no good_count or total_count signal (a scale total or pieces)",
                    )
                )
            if stream.material == "fuel" and mid in owner and machine.signal_of(Role.FUEL) is not None:
                # Its fuel meter's CO2 already counts in the process: the same fuel would count twice.
                issues.append(
                    (
                        where,
                        f"machine {mid!r} of process {owner[mid]!r} has a fuel meter whose CO2 already "
                        "counts; meter the fuel one way",
                    )
                )
    return issues


def _process_machines(
    cbam: Cbam,
    machines: dict[str, tuple[Site, Machine]],
    site_id: str | None,
    issues: list[tuple[tuple[str | int, ...], str]],
) -> dict[str, str]:
    """Check the machines of the processes (own and shared); return machine id -> owning process."""
    owner: dict[str, str] = {}
    for p, process in enumerate(cbam.processes):
        for i, mid in enumerate(process.machines):
            path: tuple[str | int, ...] = ("cbam", "processes", p, "machines", i)
            if mid not in machines:
                issues.append(
                    (path, f"machine {mid!r} does not exist (known: {', '.join(sorted(machines))})")
                )
            elif site_id is not None and machines[mid][0].id != site_id:
                issues.append((path, f"machine {mid!r} is not on the installation's site {site_id!r}"))
            elif mid in owner:
                issues.append(
                    (
                        path,
                        f"machine {mid!r} already belongs to process {owner[mid]!r} (emissions counted once)",
                    )
                )
            owner.setdefault(mid, process.id)
    shares: dict[str, float] = {}
    for p, process in enumerate(cbam.processes):
        for i, shared in enumerate(process.shared_machines):
            path = ("cbam", "processes", p, "shared_machines", i, "machine")
            mid = shared.machine
            if mid not in machines:
                issues.append((path, f"machine {mid!r} does not exist"))
            elif mid in owner:
                issues.append(
                    (path, f"machine {mid!r} belongs wholly to process {owner[mid]!r}; it cannot be shared")
                )
            else:
                shares[mid] = shares.get(mid, 0.0) + shared.share
                if shares[mid] > 1 + 1e-9:
                    issues.append(
                        (path, f"the shares of machine {mid!r} add up to {shares[mid]:g}, more than 1")
                    )
    return owner


def _goods_in_cycles(goods: dict[str, CbamGood]) -> set[str]:
    """The goods that are, through own-good precursors, their own precursor.

    Tarjan's strongly connected components, with an explicit stack: a good is on a cycle when its
    component has more than one good or it names itself. Linear in goods and precursors, and no
    recursion, so a chain of thousands of goods costs neither quadratic time nor a RecursionError.
    """
    edges = {
        gid: [pre.good for pre in good.precursors if pre.good is not None and pre.good in goods]
        for gid, good in goods.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cyclic: set[str] = set()

    def visit(gid: str) -> None:
        index[gid] = low[gid] = len(index)
        stack.append(gid)
        on_stack.add(gid)

    for root, precursors in edges.items():
        if root in index:
            continue
        visit(root)
        work = [(root, iter(precursors))]
        while work:
            gid, children = work[-1]
            for child in children:
                if child not in index:
                    visit(child)
                    work.append((child, iter(edges[child])))
                    break
                if child in on_stack:
                    low[gid] = min(low[gid], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[gid])
                if low[gid] == index[gid]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == gid:
                            break
                    if len(component) > 1 or gid in edges[gid]:
                        cyclic.update(component)
    return cyclic
