"""Exports JSON Schema of the envelope and every payload, so other teams can build against them."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from dialguard.events.envelope import Envelope
from dialguard.events.payloads import PAYLOADS


def all_schemas() -> dict[str, object]:
    """Every schema by name, the envelope first."""
    out: dict[str, object] = {"Envelope": Envelope.model_json_schema()}
    out.update({name: model.model_json_schema() for name, model in PAYLOADS.items()})
    return out


def main(argv: list[str] | None = None) -> None:
    """Write one `<Name>.schema.json` per model into the folder given (default docs/schemas)."""
    target = Path((argv or sys.argv[1:] or ["docs/schemas"])[0])
    target.mkdir(parents=True, exist_ok=True)
    for name, schema in all_schemas().items():
        (target / f"{name}.schema.json").write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2))
    print(f"wrote {len(all_schemas())} schemas to {target}")


if __name__ == "__main__":
    main()
