"""Generation batches shuffled by whole groups (grpo/group_shuffle.py)."""

import torch

from grpo.group_shuffle import group_permutation, groups_shuffled_whole, shuffle_by_group


def grouped_batch(groups: int = 4, size: int = 3) -> dict:
    prompt_ids = torch.arange(groups).repeat_interleave(size)[:, None].repeat(1, 5)
    return {"prompt_ids": prompt_ids, "advantages": torch.arange(groups * size, dtype=torch.float),
            "num_items_in_batch": torch.tensor(7), "texts": [f"row {i}" for i in range(groups * size)],
            "images": None}


def test_groups_move_whole_and_every_row_stays_with_its_values():
    torch.manual_seed(0)
    batch = grouped_batch()
    orders = set()
    for _ in range(20):
        shuffled = shuffle_by_group(batch, 3, row_shuffle=None)
        groups = shuffled["prompt_ids"][:, 0].view(4, 3)
        assert (groups == groups[:, :1]).all()  # each run of 3 rows is one group
        rows = shuffled["advantages"].long()
        assert torch.equal(shuffled["prompt_ids"][:, 0], rows // 3)  # rows keep their own values
        assert shuffled["texts"] == [f"row {i}" for i in rows.tolist()]
        assert shuffled["num_items_in_batch"] == 7 and shuffled["images"] is None
        orders.add(tuple(groups[:, 0].tolist()))
    assert len(orders) > 5  # the group order is random


def test_rows_that_are_not_whole_groups_get_trls_row_shuffle():
    batch = grouped_batch()
    batch["prompt_ids"][4, 0] = 99  # a row of group 1 with another prompt
    called = []
    shuffle_by_group(batch, 3, row_shuffle=lambda b: called.append(b) or b)
    assert called == [batch]
    assert shuffle_by_group(grouped_batch(), 5, row_shuffle=lambda b: "rows") == "rows"  # 12 rows, groups of 5


def test_permutation_covers_every_row_once():
    order = group_permutation(12, 4)
    assert sorted(order.tolist()) == list(range(12))
    assert all(order[i + 1] == order[i] + 1 for i in range(12) if i % 4 != 3)


def test_trls_shuffle_is_replaced_only_inside_the_context():
    from trl.trainer import grpo_trainer

    original = grpo_trainer.shuffle_sequence_dict
    with groups_shuffled_whole(3):
        shuffled = grpo_trainer.shuffle_sequence_dict(grouped_batch())
        groups = shuffled["prompt_ids"][:, 0].view(4, 3)
        assert (groups == groups[:, :1]).all()
    assert grpo_trainer.shuffle_sequence_dict is original
