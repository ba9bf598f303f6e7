import pytest

from neurontools.daemon.runtime.core_selection import CoresBusy, CoreSelectionError, parse_visible_cores, select_cores


def test_visible_core_forms():
    assert parse_visible_cores("3", 24) == [3]
    assert parse_visible_cores("0-3", 24) == [0, 1, 2, 3]
    assert parse_visible_cores("2,3", 24) == [2, 3]
    assert parse_visible_cores("0-1,2", 24) == [0, 1, 2]


@pytest.mark.parametrize("text, message", [
    ("0,2", "not contiguous"), ("24", "cores 0-23"), ("3-1", "backwards"), ("a", "malformed"), ("1,", "malformed"),
])
def test_bad_visible_cores(text, message):
    with pytest.raises(CoreSelectionError, match=message):
        parse_visible_cores(text, 24)


def test_taken_core_names_its_owner():
    with pytest.raises(CoresBusy, match="NeuronCore 3 is already in use by pid 1234"):
        select_cores("2-3", 0, 24, {3: "pid 1234"})


def test_num_cores_takes_the_first_contiguous_free_run():
    assert select_cores("", 2, 8, {0: "pid 1", 2: "pid 2"}) == [3, 4]
    with pytest.raises(CoresBusy, match="no 4 contiguous free"):
        select_cores("", 4, 6, {2: "pid 1"})


def test_default_is_every_core():
    assert select_cores("", 0, 4, {}) == [0, 1, 2, 3]
    with pytest.raises(CoresBusy):
        select_cores("", 0, 4, {1: "pid 9"})
