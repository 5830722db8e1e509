"""Exercise self-checks of the chapter-5 panel module (vgplib.panels.ch05)."""

import math

import numpy as np

from vgplib.panels import ch05


def test_overflow_count_reference():
    # 1.5^k first exceeds float32's largest number at k = 219 (ln(3.4e38) / ln 1.5 = 218.8).
    assert ch05.float32_overflow_count(1.5) == 219
    assert math.floor(math.log(float(np.finfo(np.float32).max)) / math.log(1.5)) + 1 == 219


def test_check_overflow_count_accepts_integral_numbers(capsys):
    assert ch05.check_overflow_count(219)
    assert ch05.check_overflow_count(np.int64(219))
    assert ch05.check_overflow_count(219.0)             # e.g. from np.ceil or np.floor(...) + 1
    assert ch05.check_overflow_count(np.float32(219.0))
    out = capsys.readouterr().out
    assert out.count("Correct") == 4


def test_check_overflow_count_rejects_wrong_answers(capsys):
    assert not ch05.check_overflow_count(218)
    assert not ch05.check_overflow_count(220.0)
    assert not ch05.check_overflow_count(218.8)         # the real-valued bound is not the count
    assert not ch05.check_overflow_count(219.5)
    assert not ch05.check_overflow_count("219")
    assert not ch05.check_overflow_count(True)
    assert not ch05.check_overflow_count(float("nan"))
    assert not ch05.check_overflow_count(float("inf"))
    assert not ch05.check_overflow_count(None)
    out = capsys.readouterr().out
    assert out.count("Correct") == 0 and out.count("Not yet") == 8 and out.count("No answer yet") == 1
