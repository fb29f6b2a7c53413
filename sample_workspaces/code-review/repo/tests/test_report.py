from inventory import Item, format_report


def test_the_report_marks_items_to_reorder() -> None:
    report = format_report(
        [Item("T1", "tea", 2, 5, 20), Item("C1", "coffee", 40, 10, 20)]
    ).splitlines()
    assert report[0].startswith("C1") and "REORDER" not in report[0]
    assert report[1].startswith("T1") and report[1].endswith("REORDER")
