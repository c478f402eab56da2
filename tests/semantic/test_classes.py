"""semantic.classes.check_label_range: the one label-range check (numpy and torch, custom error types)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from data.imageio import ImageReadError
from semantic.classes import check_label_range


@pytest.mark.parametrize("wrap", [np.asarray, torch.as_tensor])
def test_accepts_classes_and_the_ignore_index(wrap):
    check_label_range(wrap(np.array([[0, 14], [255, 3]])), 15, 255, "x", "hint")


@pytest.mark.parametrize("wrap", [np.asarray, torch.as_tensor])
def test_names_the_bad_values(wrap):
    label = wrap(np.array([[0, 15], [-1, 200], [15, 255]]))
    with pytest.raises(ValueError) as exc:
        check_label_range(label, 15, 255, "a.png", "check the class list")
    assert str(exc.value) == ("a.png: label values [-1, 15, 200] are outside the class list 0..14 "
                              "(ignore index 255); check the class list")


def test_error_type_and_at_most_eight_values():
    with pytest.raises(ImageReadError, match=r"label values \[20, 21, 22, 23, 24, 25, 26, 27\] are outside"):
        check_label_range(np.arange(20, 40), 15, 255, "b.png", "hint", error=ImageReadError)
