"""Metadata that the Dagster UI shows for every asset: schema, row count, preview, plots.

A user should rarely need a notebook to know what an asset holds: these helpers turn a table or a
figure into metadata values. Only ``dagster`` is imported at module level; ``pyarrow`` and
``matplotlib`` are imported where they are used.
"""

from __future__ import annotations

import base64
import io
import math
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    import pyarrow as pa

PREVIEW_ROWS = 5
_MAX_CELL = 40


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """The Arrow schema as a Dagster ``TableSchema`` (shown as the asset's columns)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=field.name, type=str(field.type), description=None)
            for field in schema
        ]
    )


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A GitHub-flavoured markdown table (no extra dependency such as ``tabulate``)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def preview(table: pa.Table, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """The first rows of ``table`` as a markdown table."""
    head = table.slice(0, rows).to_pylist()
    return dg.MetadataValue.md(markdown_table(head, table.column_names))


def table_metadata(table: pa.Table) -> dict[str, Any]:
    """Row count, column schema and preview of an Arrow table, under Dagster's standard keys."""
    return {
        "dagster/row_count": dg.MetadataValue.int(table.num_rows),
        "dagster/column_schema": column_schema(table.schema),
        "preview": preview(table),
    }


def figure_markdown(figure: Any, *, alt: str = "figure", dpi: int = 80) -> dg.MetadataValue:
    """A matplotlib figure embedded as a PNG in markdown metadata (the UI renders it inline)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as its text ("nan", "inf"): what strict JSON (an
    HTTP answer, a ``--json`` report) can carry."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
