"""Directed tests of the grade-mix tiers (synth/pasting/tiers.py): the paper's fundus tiers, the single
CT tier of the types present, the ratio checks and their one-line messages."""

from __future__ import annotations

import pytest

from lesionpaste.errors import LesionPasteError
from lesionpaste.synth.pasting.tiers import (
    FUNDUS_RATIOS,
    Tier,
    default_tiers,
    make_tiers,
    parse_ratios,
)

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate

FULL_FUNDUS = {"MA": 9, "HE": 4, "SE": 2, "EX": 3}


def test_the_fundus_tiers_are_the_papers_with_80_10_5_5():
    tiers = make_tiers("fundus", FULL_FUNDUS)
    assert [t.name for t in tiers] == ["MA", "MA+HE", "MA+HE+SE", "MA+HE+SE+EX"]
    assert [t.ratio for t in tiers] == [0.8, 0.1, 0.05, 0.05]
    assert tiers[3] == Tier(("MA", "HE", "SE", "EX"), 0.05)


def test_a_ct_bank_has_one_tier_of_the_types_it_holds():
    assert make_tiers("ct", {"GGO": 5, "CON": 0}) == [Tier(("GGO",), 1.0)]
    assert make_tiers("ct", {"GGO": 5, "CON": 2}) == [Tier(("GGO", "CON"), 1.0)]
    assert make_tiers("ct", {"COVID": 1}) == [Tier(("COVID",), 1.0)]  # one lesion is enough
    assert default_tiers("ct", ["GGO"]) == ((("GGO",),), (1.0,))
    assert default_tiers("fundus", ["MA"])[1] == FUNDUS_RATIOS


def test_ratios_given_replace_the_defaults_in_order():
    tiers = make_tiers("fundus", FULL_FUNDUS, " 0.7, 0.2,0.1,0")
    assert [t.ratio for t in tiers] == [0.7, 0.2, 0.1, 0.0]
    assert parse_ratios(None, 4, FUNDUS_RATIOS) == FUNDUS_RATIOS
    assert parse_ratios("1", 1, (0.5,)) == (1.0,)


def test_a_sum_within_a_millionth_of_one_is_accepted_and_beyond_it_refused():
    assert parse_ratios("0.8,0.1,0.05,0.0500005", 4, FUNDUS_RATIOS)[3] == 0.0500005
    with pytest.raises(LesionPasteError) as err:
        parse_ratios("0.8,0.1,0.05,0.051", 4, FUNDUS_RATIOS)
    assert (
        str(err.value) == "--ratios '0.8,0.1,0.05,0.051': ratios must sum to 1 (they sum to 1.001)"
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("0.8;0.2", "--ratios '0.8;0.2': expected comma-separated numbers"),
        ("0.8,0.2", "--ratios '0.8,0.2': 2 value(s) given but the bank has 4 tier(s)"),
        ("1.1,-0.1,0,0", "--ratios '1.1,-0.1,0,0': ratios must be finite and non-negative"),
        ("nan,0,0,0", "--ratios 'nan,0,0,0': ratios must be finite and non-negative"),
        ("inf,0,0,0", "--ratios 'inf,0,0,0': ratios must be finite and non-negative"),
    ],
)
def test_bad_ratios_are_refused_with_one_line_naming_the_problem(text, message):
    with pytest.raises(LesionPasteError) as err:
        parse_ratios(text, 4, FUNDUS_RATIOS)
    assert str(err.value) == message


def test_a_tier_needing_types_the_bank_lacks_is_refused_unless_its_ratio_is_zero():
    counts = {"MA": 3, "HE": 2}  # no SE or EX at all, not even a zero count
    with pytest.raises(LesionPasteError) as err:
        make_tiers("fundus", counts)
    assert str(err.value) == (
        "tier MA+HE+SE (ratio 0.05) needs lesion type(s) SE, which the bank does not hold; "
        "give it ratio 0 with --ratios, or build the bank from an image that has them"
    )
    assert [t.ratio for t in make_tiers("fundus", counts, "0.9,0.1,0,0")] == [0.9, 0.1, 0, 0]
    with pytest.raises(LesionPasteError, match="tier MA\\+HE\\+SE\\+EX \\(ratio 0.1\\) needs "
                       "lesion type\\(s\\) EX,"):  # fmt: skip
        make_tiers("fundus", {**counts, "SE": 1}, "0.8,0.1,0,0.1")
    with pytest.raises(LesionPasteError, match="needs lesion type\\(s\\) SE, EX,"):
        make_tiers("fundus", {**counts, "SE": 0, "EX": 0}, "0.8,0.1,0,0.1")


@pytest.mark.parametrize(
    "text, message",
    [
        ("0.8,0.2", "2 value.s. given"),
        ("0.8,0.1,0.2,-0.1", "non-negative"),
        ("0.5,0.1,0.1,0.1", "sum to 1"),
        ("a,b,c,d", "comma-separated"),
        ("nan,0,0,1", "finite"),
    ],
)
def test_bad_ratios_are_refused(text, message):
    with pytest.raises(LesionPasteError, match=message):
        parse_ratios(text, 4, (0.8, 0.1, 0.05, 0.05))


def test_a_tier_needing_a_missing_type_is_an_error_naming_it():
    counts = {"MA": 5, "HE": 3, "EX": 4, "SE": 0}
    with pytest.raises(LesionPasteError, match="MA\\+HE\\+SE.*SE"):
        make_tiers("fundus", counts)
    tiers = make_tiers("fundus", counts, "0.9,0.1,0,0")  # a zero ratio is fine
    assert [t.ratio for t in tiers] == [0.9, 0.1, 0.0, 0.0]
