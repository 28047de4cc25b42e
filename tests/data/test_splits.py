"""Held-out unlabelled patients for annotation-free pretraining on a store without a validation split."""

from sidepair.data.splits import hold_out_groups


def test_held_out_by_patient_deterministic_and_never_empty():
    cases = {f"c{i}": f"p{i // 3}" for i in range(30)}  # 10 patients of 3 slices
    kept, held = hold_out_groups(cases, seed=1)
    assert (kept, held) == hold_out_groups(cases, seed=1)
    assert sorted(kept + held) == sorted(cases) and len({cases[c] for c in held}) == 2  # 15 % of 10
    assert not {cases[c] for c in kept} & {cases[c] for c in held}  # a patient is on one side only
    assert len(hold_out_groups({"a": "p0", "b": "p1"})[1]) == 1
    assert hold_out_groups({"a": "p0", "b": "p0"}) == (["a", "b"], [])  # one patient: nothing to hold out
