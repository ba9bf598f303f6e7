"""Turn a report document into a Frame, or say in one line why it is not a report."""

from __future__ import annotations

import time

from pydantic import ValidationError

from neurontools.monitor.report_json import loads_report
from neurontools.top.sources.frame import Frame
from neurontools.top.sources.report_documents import Document


class NotAReport(ValueError):
    pass


def frame_of(document: Document, notice: str = "") -> Frame:
    if document.text is None:
        raise NotAReport(document.problem)
    try:
        report = loads_report(document.text)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        raise NotAReport(f"the report on line {document.first_line} is not a neuron-monitor report "
                         f"({where}: {first['msg']})") from None
    return Frame(report, produced_at=time.time(), notice=notice)
