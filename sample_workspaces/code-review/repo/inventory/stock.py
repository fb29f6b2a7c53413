"""Stock levels and reorder decisions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    """One product on the shelf."""

    sku: str
    name: str
    on_hand: int
    reorder_point: int
    reorder_quantity: int


def needs_reorder(item: Item) -> bool:
    """Whether the item has fallen to its reorder point: at or below it."""
    return item.on_hand < item.reorder_point


def reorder_list(items: list[Item]) -> list[tuple[str, int]]:
    """``(sku, quantity)`` for every item that needs reordering, sorted by sku."""
    return sorted((item.sku, item.reorder_quantity) for item in items if needs_reorder(item))
