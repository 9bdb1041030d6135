"""Byte-reproducible skops files.

skops names the arrays inside its zip after `id()` of the Python objects (memory addresses),
stamps every entry with the current time, and names raw-bytes entries with random UUIDs, so
the same fitted model gives different bytes on every save. `canonical_skops` renumbers those
names in the order the schema first mentions them and fixes the timestamps: the same model
then gives the same bytes in every process and every clone, and skops loads it unchanged.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

_EPOCH = (1980, 1, 1, 0, 0, 0)
_SCHEMA = "schema.json"


def canonical_skops(data: bytes) -> bytes:
    """The same skops archive with deterministic entry names, order and timestamps."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        schema = json.loads(source.read(_SCHEMA))
        numbers: dict[int, int] = {}
        files: dict[str, str] = {}
        canonical = _renumber(schema, numbers, files)
        entries = {new: source.read(old) for old, new in files.items()}
    unknown = set(zipfile.ZipFile(io.BytesIO(data)).namelist()) - set(files) - {_SCHEMA}
    if unknown:  # a format change in skops: refuse rather than silently drop content
        raise ValueError(f"skops archive has entries the schema does not name: {sorted(unknown)}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as target:
        schema_entry = (_SCHEMA, json.dumps(canonical, indent=1).encode())
        for name, payload in [schema_entry, *sorted(entries.items())]:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, payload)
    return buffer.getvalue()


def _renumber(node: Any, numbers: dict[int, int], files: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_renumber(item, numbers, files) for item in node]
    if not isinstance(node, dict):
        return node
    result = {}
    for key, value in node.items():
        if key == "__id__" and isinstance(value, int) and not isinstance(value, bool):
            result[key] = numbers.setdefault(value, len(numbers))
        elif key == "file" and isinstance(value, str):
            result[key] = files.setdefault(value, _file_name(value, numbers, len(files)))
        else:
            result[key] = _renumber(value, numbers, files)
    return result


def _file_name(old: str, numbers: dict[int, int], position: int) -> str:
    stem, dot, suffix = old.rpartition(".")
    if stem.isdigit():  # named after an object id: share the renumbering of `__id__`
        return f"{numbers.setdefault(int(stem), len(numbers))}.{suffix}"
    return f"entry-{position}{dot}{suffix}"
