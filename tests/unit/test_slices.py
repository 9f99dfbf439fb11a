import numpy as np
import pytest

from training.evaluate import expected_calibration_error
from training.slices import is_alert, is_non_english, is_short, rare, slice_masks


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("vpn down", True),
        ("Problem. Still broken.", True),
        ("Since this morning the dashboard shows error 500 when I open project P-123.", False),
    ],
)
def test_short(text: str, expected: bool) -> None:
    assert is_short(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ich habe mein Passwort vergessen und die E-Mail kommt nicht an.", True),
        ("Je ne peux pas me connecter avec mon compte depuis ce matin.", True),
        ("Не могу войти в систему", True),
        ("I cannot log in to the portal since this morning, please help.", False),
        ("outlook calendar sync", False),
        ("", False),
    ],
)
def test_non_english(text: str, expected: bool) -> None:
    assert is_non_english(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("event: critical:HostName_221.company.com the value of mountpoint threshold for /oracle is 98", True),
        ("Job Job_1424 failed in job_scheduler at: 10/31/2016 05:14:00", True),
        ("This message was automatically generated, do not reply.", True),
        ("The job application form on our site fails to load", False),
        ("I was charged twice, please refund one.", False),
    ],
)
def test_alert(text: str, expected: bool) -> None:
    assert is_alert(text) is expected


def test_slice_masks_and_rare_targets() -> None:
    masks = slice_masks(
        ["vpn down", "job x failed at 5", "Passwort vergessen und nicht"], np.array(["", "a", "b"]), {"b"}
    )
    assert masks["short"].tolist() == [True, True, True]
    assert masks["alerts"].tolist() == [False, True, False]
    assert masks["non_english"].tolist() == [False, False, True]
    assert masks["rare_targets"].tolist() == [False, False, True]
    assert rare({"a": 100, "b": 3}, below=50) == {"b"}


def test_expected_calibration_error() -> None:
    y = np.array([1, 0] * 50, dtype=float)
    assert expected_calibration_error(y, np.full(100, 0.5)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(100, 0.9)) == pytest.approx(0.4)
