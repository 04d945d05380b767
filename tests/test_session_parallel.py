"""Session-parallel mini-batches (docs/protocols.md §5), step by step on hand-built sessions.

The sessions below have lengths 3, 1, 5, 2, 4 and item ids that tell where they come from:
  s0 = 1 2 3   s1 = 4   s2 = 5 6 7 8 9   s3 = 10 11   s4 = 12 13 14 15
"""

from __future__ import annotations

import numpy as np
import pytest

from seqrec_cli.data.session_parallel import count_steps, session_parallel
from seqrec_cli.sequences import Sequences

SESSIONS = [[1, 2, 3], [4], [5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15]]


def _steps(seqs, order, batch_size, final_step=False):
    return [
        {
            "inputs": s.inputs.tolist(),
            "targets": s.targets.tolist(),
            "reset": s.reset.tolist(),
            "keep": None if s.keep is None else s.keep.tolist(),
            "rows": s.rows.tolist(),
            "positions": s.positions.tolist(),
        }
        for s in session_parallel(seqs, np.asarray(order), batch_size, final_step)
    ]


def _step(inputs, targets, reset, rows, positions, keep=None):
    return dict(inputs=inputs, targets=targets, reset=reset, keep=keep, rows=rows, positions=positions)


def test_training_pass_step_by_step():
    seqs = Sequences.from_lists(SESSIONS)
    steps = _steps(seqs, np.arange(5), batch_size=2)
    T, F = True, False
    expected = [
        # slots start with s0 and s2 (s1 has one event: nothing to predict, skipped); both rows reset
        _step([1, 5], [2, 6], [T, T], rows=[0, 2], positions=[0, 0]),
        _step([2, 6], [3, 7], [F, F], rows=[0, 2], positions=[1, 1]),
        # s0 is done (its last item is only a target): s3 takes slot 0, which is reset
        _step([10, 7], [11, 8], [T, F], rows=[3, 2], positions=[0, 2]),
        # s3 is done after one step: s4 takes slot 0
        _step([12, 8], [13, 9], [T, F], rows=[4, 2], positions=[0, 3]),
        # s2 is done and no session is left: slot 1 is dropped, the batch shrinks to row 0 only
        _step([13], [14], [F], rows=[4], positions=[1], keep=[0]),
        _step([14], [15], [F], rows=[4], positions=[2]),
    ]
    assert steps == expected


def test_final_step_pass_step_by_step():
    """final_step=True: every session (even of length 1) gets one step fed its last item, target 0."""
    seqs = Sequences.from_lists(SESSIONS)
    steps = _steps(seqs, np.arange(5), batch_size=2, final_step=True)
    T, F = True, False
    expected = [
        _step([1, 4], [2, 0], [T, T], rows=[0, 1], positions=[0, 0]),
        _step([2, 5], [3, 6], [F, T], rows=[0, 2], positions=[1, 0]),
        _step([3, 6], [0, 7], [F, F], rows=[0, 2], positions=[2, 1]),
        _step([10, 7], [11, 8], [T, F], rows=[3, 2], positions=[0, 2]),
        _step([11, 8], [0, 9], [F, F], rows=[3, 2], positions=[1, 3]),
        _step([12, 9], [13, 0], [T, F], rows=[4, 2], positions=[0, 4]),
        _step([13], [14], [F], rows=[4], positions=[1], keep=[0]),
        _step([14], [15], [F], rows=[4], positions=[2]),
        _step([15], [0], [F], rows=[4], positions=[3]),
    ]
    assert steps == expected


def test_keep_compaction_drops_the_right_rows():
    """Three slots; the middle and first sessions end before the last one: keep names survivors."""
    seqs = Sequences.from_lists([[1, 2], [3, 4, 5], [6, 7, 8, 9]])
    steps = _steps(seqs, [0, 1, 2], batch_size=3)
    assert [s["rows"] for s in steps] == [[0, 1, 2], [1, 2], [2]]
    assert [s["keep"] for s in steps] == [None, [1, 2], [1]]
    assert [s["inputs"] for s in steps] == [[1, 3, 6], [4, 7], [8]]
    assert [s["targets"] for s in steps] == [[2, 4, 7], [5, 8], [9]]
    assert [s["reset"] for s in steps] == [[True] * 3, [False, False], [False]]


def test_order_is_followed_and_length_one_sessions_contribute_nothing():
    seqs = Sequences.from_lists(SESSIONS)
    steps = _steps(seqs, [4, 1, 3, 0, 2], batch_size=1)
    started = [s["rows"][0] for s in steps if s["reset"][0]]
    assert started == [4, 3, 0, 2]  # s1 (one event) never takes a slot
    assert all(4 not in s["inputs"] and 4 not in s["targets"] for s in steps)
    # batch size 1: every new session resets the single row
    assert sum(s["reset"][0] for s in steps) == 4


def test_empty_and_all_single_event_inputs():
    seqs = Sequences.from_lists([[1], [2], [3]])
    assert _steps(seqs, [0, 1, 2], 2) == []
    assert len(_steps(seqs, [0, 1, 2], 2, final_step=True)) == 2  # 3 one-step sessions in 2 slots
    assert _steps(Sequences.from_lists([[1, 2]]), np.array([], dtype=np.int64), 4) == []


def _check_pass(lists, order, batch_size, final_step):
    """Replay a pass as a hidden-state consumer would and check every invariant."""
    seqs = Sequences.from_lists(lists)
    seen: dict[tuple[int, int], int] = {}  # (session, target position) -> times predicted
    finals: dict[int, int] = {}
    state = None  # per row: (session, position of the last input), carried like a hidden state
    started: list[int] = []
    for step in session_parallel(seqs, np.asarray(order), batch_size, final_step):
        b = len(step.inputs)
        assert 1 <= b <= batch_size
        assert len(step.targets) == len(step.reset) == len(step.rows) == len(step.positions) == b
        if state is None:
            assert step.reset.all() and step.keep is None
        else:
            if step.keep is not None:
                assert len(step.keep) == b and (np.diff(step.keep) > 0).all()
                state = [state[k] for k in step.keep]
            else:
                assert len(state) == b
        for i in range(b):
            sess, pos = int(step.rows[i]), int(step.positions[i])
            if step.reset[i]:
                assert pos == 0, "a reset row must start its session"
                started.append(sess)
            else:
                assert state[i] == (sess, pos - 1), "a row continued with another session's state"
            seq = lists[sess]
            assert step.inputs[i] == seq[pos]
            if step.targets[i] == 0:
                assert final_step and pos == len(seq) - 1
                finals[sess] = finals.get(sess, 0) + 1
            else:
                assert step.targets[i] == seq[pos + 1]
                seen[(sess, pos + 1)] = seen.get((sess, pos + 1), 0) + 1
        state = [(int(r), int(p)) for r, p in zip(step.rows, step.positions)]
    expected = {(s, j) for s in range(len(lists)) for j in range(1, len(lists[s]))}
    assert set(seen) == expected
    assert all(v == 1 for v in seen.values()), "an event was a target more than once"
    min_len = 1 if final_step else 2
    assert started == [s for s in order if len(lists[s]) >= min_len], "sessions must start in the given order"
    if final_step:
        assert finals == {s: 1 for s in range(len(lists))}
    else:
        assert finals == {}


def test_exactly_once_on_the_hand_built_sessions():
    for bs in (1, 2, 3, 5, 8):
        for final in (False, True):
            _check_pass(SESSIONS, list(range(5)), bs, final)


@pytest.mark.parametrize("seed", range(8))
def test_exactly_once_random_property(seed):
    rng = np.random.default_rng(seed)
    for _ in range(25):
        n = int(rng.integers(1, 40))
        lengths = rng.integers(1, 9, size=n)
        lengths[rng.random(n) < 0.2] = 1  # plenty of single-event sessions
        next_id = iter(range(1, 10_000))
        lists = [[next(next_id) for _ in range(int(length))] for length in lengths]
        order = rng.permutation(n).tolist()
        batch_size = int(rng.integers(1, 12))
        _check_pass(lists, order, batch_size, final_step=bool(rng.integers(0, 2)))


def test_count_steps_is_events_over_batch():
    seqs = Sequences.from_lists(SESSIONS)
    assert count_steps(seqs, 2) == 5  # 10 targets / 2
    assert count_steps(seqs, 2, final_step=True) == 8  # 15 steps-events / 2, rounded up
    assert count_steps(Sequences.from_lists([[1]]), 4) == 1  # never 0 (progress bars divide by it)
