"""A plain-text stock report."""

from __future__ import annotations

from inventory.stock import Item, needs_reorder


def format_report(items: list[Item]) -> str:
    """One line per item, by name, with a mark on the ones to reorder."""
    lines = []
    for item in sorted(items, key=lambda i: i.name):
        mark = "  REORDER" if needs_reorder(item) else ""
        lines.append(f"{item.sku:<6} {item.name:<20} {item.on_hand:>5}{mark}")
    # TODO: add the value of the stock once items carry a unit price.
    return "\n".join(lines)
