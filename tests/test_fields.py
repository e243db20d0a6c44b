import pytest

from vipcli.errors import InvalidInput
from vipcli.fields import check_id_number, mask_id, mask_phone, normalize_phone


@pytest.mark.parametrize("text", [
    "13800138000", "+86 138 0013 8000", "138-0013-8000", "+8613800138000", "0086 13800138000",
    "１３８００１３８０００", "(138)0013-8000",
])
def test_phone_normalised(text):
    assert normalize_phone(text) == "13800138000"


@pytest.mark.parametrize("text", ["12800138000", "1380013800", "138001380001", "", "phone", "+1 13800138000",
                                  "13800138000x"])
def test_phone_refused(text):
    with pytest.raises(InvalidInput):
        normalize_phone(text)


def test_id_number_check_digit():
    assert check_id_number("11010519491231002X") == "11010519491231002X"
    assert check_id_number("11010519491231002x") == "11010519491231002X"
    with pytest.raises(InvalidInput, match="check"):
        check_id_number("110105194912310021")
    with pytest.raises(InvalidInput, match="birth date"):
        check_id_number(_with_check("11010519491331002"))  # month 13


def _with_check(body):
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights)) % 11]


def test_masks():
    assert mask_phone("13800138000") == "138****8000"
    assert mask_id("11010519491231002X") == "110105********002X"
