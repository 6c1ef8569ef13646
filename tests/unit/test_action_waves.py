"""`actions.waves`: runs that share an order or customer go to later waves, in list order."""

from retento.triggers.actions import waves


def test_runs_sharing_an_entity_are_split_in_list_order():
    runs = [[("order", 1), ("customer", 10)],   # 0
            [("order", 2), ("customer", 10)],   # 1: same customer as 0
            [("order", 3), ("customer", None)],  # 2: no customer: shares nothing
            [("order", 1), ("customer", 11)],   # 3: same order as 0
            [("order", 4), ("customer", None)],  # 4
            [("order", 2), ("customer", 12)]]   # 5: same order as 1 (wave 1) -> wave 2
    assert waves(runs) == [[0, 2, 4], [1, 3], [5]]


def test_no_sharing_is_one_wave_and_empty_is_none():
    assert waves([[("order", n)] for n in range(5)]) == [[0, 1, 2, 3, 4]]
    assert waves([]) == []
