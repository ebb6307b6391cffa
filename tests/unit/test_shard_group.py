"""`--shard-group k/n`: which shards a process takes first."""

from __future__ import annotations

import pytest

from bus.brokers.amqp.topology import ShardGroup, shard_names


def test_n_groups_split_the_shards_between_them_each_shard_once() -> None:
    groups = [ShardGroup.parse(f"{k}/3") for k in range(3)]
    taken = [[i for i in range(8) if g.prefers(i)] for g in groups]
    assert taken == [[0, 3, 6], [1, 4, 7], [2, 5]]


def test_a_process_beyond_the_groups_size_prefers_no_shard_and_stands_by_for_all() -> None:
    assert not any(ShardGroup(3, 3).prefers(i) for i in range(8))


@pytest.mark.parametrize("text", ["3/3", "1", "a/3", "-1/3", "1/0", "1/65"])
def test_a_shard_group_that_is_no_k_of_n_is_refused_saying_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="k/n"):
        ShardGroup.parse(text)


def test_the_intake_queue_is_sharded_like_every_queue() -> None:
    assert shard_names("renkei.intake", 3) == ["renkei.intake.shard0", "renkei.intake.shard1", "renkei.intake.shard2"]
