from inventory import Item, needs_reorder, reorder_list


def item(sku: str, on_hand: int, reorder_point: int = 5) -> Item:
    return Item(sku, f"item {sku}", on_hand, reorder_point, reorder_quantity=20)


def test_an_item_above_its_reorder_point_is_not_reordered() -> None:
    assert not needs_reorder(item("A1", on_hand=9))


def test_an_item_below_its_reorder_point_is_reordered() -> None:
    assert needs_reorder(item("A1", on_hand=2))


def test_an_item_at_its_reorder_point_is_reordered() -> None:
    assert needs_reorder(item("A1", on_hand=5))


def test_the_reorder_list_is_sorted_by_sku() -> None:
    items = [item("B2", 0), item("A1", 1), item("C3", 50)]
    assert reorder_list(items) == [("A1", 20), ("B2", 20)]
