"""The worker refuses a faust-streaming its workarounds over faust internals were not verified with."""

from __future__ import annotations

import faust
import pytest

from pipeline.adapters.faust_config import VERIFIED_FAUST_VERSIONS, check_faust_version
from pipeline.errors import SetupError


def test_the_installed_faust_is_a_verified_one() -> None:
    check_faust_version(faust.__version__)


def test_another_version_is_refused_with_what_to_do() -> None:
    with pytest.raises(SetupError, match=r"faust-streaming 0\.16\.0 is installed.*verified only with"):
        check_faust_version("0.16.0")
    assert "0.16.0" not in VERIFIED_FAUST_VERSIONS
