"""How ``benchmarks/bench_face_weight.py`` turns measured builds into a chosen face weight."""

from __future__ import annotations

import math

import pytest

from benchmarks.bench_face_weight import Measured, choose, gains, margin, verdict


def _build(target: str, weight: float, overall: float, face: float, share: float = 0.1
           ) -> Measured:
    return Measured(target, weight, overall=overall, face_required=face, face_all=face,
                    face_share=share)


def _results() -> list[Measured]:
    return [
        _build("a", 1, 0.100, 0.050), _build("a", 2, 0.101, 0.032),  # -36 %, +1 %
        _build("a", 3, 0.102, 0.027), _build("a", 4, 0.1035, 0.024),  # -46 % / +2 %, +3.5 %
        _build("b", 1, 0.100, 0.040), _build("b", 2, 0.1005, 0.020),  # -50 %, +0.5 %
        _build("b", 3, 0.101, 0.018), _build("b", 4, 0.1015, 0.016),
        _build("close", 1, 0.100, 0.050, share=0.5), _build("close", 3, 0.110, 0.045, 0.5),
        _build("nobody", 1, 0.100, math.nan, share=0.0), _build("nobody", 3, 0.100, math.nan),
    ]


def test_gains_are_against_the_unweighted_build_of_the_same_target():
    by_key = {(g.target, g.weight): g for g in gains(_results())}
    assert by_key[("a", 3)].face == pytest.approx(-0.46)
    assert by_key[("a", 3)].overall == pytest.approx(0.02)
    assert by_key[("close", 3)].close_up and by_key[("close", 3)].met
    assert ("nobody", 3) not in by_key  # no face: nothing to hold


def test_the_weight_is_chosen_by_its_worst_target_not_its_mean():
    all_gains = gains(_results())
    # W 2 misses a's faces, W 4 a's overall limit; W 3 is inside both on both targets.
    assert choose(all_gains, ["a", "b", "close"]) == 3
    assert min(margin(g) for g in all_gains if g.weight == 3 and not g.close_up) > 0
    # On b alone every weight meets the goal; the overall limit is nearest at every
    # weight (2.5, 2 and 1.5 points away), so the smallest weight is furthest inside.
    assert choose(all_gains, ["b"]) == 2
    assert choose(all_gains, ["nobody"]) is None
    text = verdict(all_gains, 2, ["a", "b", "close"])
    assert text.startswith("met on 1 of 2 held targets; missed: a; worst a (-36.0%")
    text = verdict(all_gains, 3, ["a", "b", "close"])
    assert text.startswith("met on 2 of 2") and "close-ups (reported only): close" in text
