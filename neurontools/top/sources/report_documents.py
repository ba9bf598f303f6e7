"""Split a neuron-monitor recording into report documents, one JSON object each.

neuron-monitor writes one compact report per line (NDJSON); recordings people keep (and the
reference's captures) are often pretty-printed instead. Both are read by tracking the brace depth
line by line, with string literals removed first so braces inside names do not count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')


@dataclass(frozen=True)
class Document:
    first_line: int  # 1-based line number, for messages
    text: str | None  # the JSON text; None when the lines were not a JSON object
    problem: str = ""  # why it is not a report document


def documents(lines: Iterable[str]) -> Iterator[Document]:
    buffer: list[str] = []
    depth = 0
    start = 0
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not buffer:
            if not stripped:
                continue
            if not stripped.startswith("{"):
                yield Document(number, None, f"line {number} is not a JSON object")
                continue
            start = number
        buffer.append(line)
        bare = _STRING_LITERAL.sub("", stripped)
        depth += bare.count("{") - bare.count("}")
        if depth <= 0:
            yield Document(start, "".join(buffer))
            buffer.clear()
            depth = 0
    if buffer:
        yield Document(start, None, f"the report starting on line {start} is cut off")
