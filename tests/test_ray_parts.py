"""How `stvup batch --ray` cuts a video into parts (no Ray needed: the plan is plain arithmetic)."""

from __future__ import annotations

from stvup.batching.distributed import plan_parts


def test_a_fresh_video_is_cut_into_about_one_part_per_worker():
    # 80 output frames in segments of 12: 7 segments; 2 workers take 4 + 3 of them.
    assert plan_parts(80, 12, 2, set()) == [(0, 48), (48, None)]
    assert plan_parts(80, 12, 3, set()) == [(0, 36), (36, 72), (72, None)]
    # More workers than segments: one segment each, the last to the end.
    assert plan_parts(30, 12, 8, set()) == [(0, 12), (12, 24), (24, None)]


def test_an_unknown_length_is_one_part_to_the_end():
    assert plan_parts(None, 12, 4, set()) == [(0, None)]


def test_done_segments_are_not_made_again():
    # The first part is complete: only the second runs.
    assert plan_parts(80, 12, 2, {0, 1, 2, 3}) == [(48, None)]
    # A partly done part starts at its first missing segment.
    assert plan_parts(80, 12, 2, {0, 1}) == [(24, 48), (48, None)]


def test_the_last_part_runs_even_when_the_estimate_says_all_is_done():
    # The header may undercount: reading to the end is the only way to know there is nothing more.
    assert plan_parts(80, 12, 2, set(range(7))) == [(84, None)]
