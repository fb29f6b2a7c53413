"""A small shop's inventory: stock levels, reorder decisions and a stock report."""

from inventory.report import format_report
from inventory.stock import Item, needs_reorder, reorder_list

__all__ = ["Item", "format_report", "needs_reorder", "reorder_list"]
