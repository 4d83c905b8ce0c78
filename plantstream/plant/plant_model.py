"""A whole plant file, as one model."""

from __future__ import annotations

from pydantic import Field

from plantstream.plant.base import Identifier, _Strict
from plantstream.plant.calendars import Calendar
from plantstream.plant.cbam_goods import Cbam
from plantstream.plant.production import Production
from plantstream.plant.reasons import ReasonTree
from plantstream.plant.runtimes_config import Files, Http, Kafka
from plantstream.plant.sinks_config import Sink
from plantstream.plant.sites import Line, Machine, Site
from plantstream.plant.sources import Source

__all__ = ["PlantModel"]


class PlantModel(_Strict):
    """A whole plant file."""

    sites: list[Site] = Field(min_length=1)
    sources: list[Source] = Field(default_factory=list)
    calendars: dict[Identifier, Calendar] = Field(default_factory=dict)
    production: Production = Field(default_factory=Production)
    cbam: Cbam | None = None
    sinks: list[Sink] = Field(default_factory=list)
    kafka: Kafka | None = Field(default=None, description="the kafka runtime (collect, process, sink)")
    http: Http = Field(default_factory=Http)
    files: Files = Field(default_factory=Files, description="the state directory's points files")
    reasons: ReasonTree = Field(default_factory=ReasonTree, description="stop reason codes, defined once")

    def machines(self) -> list[tuple[Site, Line, Machine]]:
        """Every machine with the site and line it belongs to, in file order."""
        return [(site, line, m) for site in self.sites for line in site.lines for m in line.machines]
