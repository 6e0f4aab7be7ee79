from __future__ import annotations

import pytest

from rebalancer.core.errors import ChainError, ConfigError, RebalancerError, UserRejectedError
from rebalancer.core.redact import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://eth-mainnet.g.alchemy.com/v2/SECRETKEY123",
            "https://eth-mainnet.g.alchemy.com/***",
        ),
        ("https://mainnet.infura.io/v3/abcdef0123456789", "https://mainnet.infura.io/***"),
        ("https://rpc.example.org/?apikey=SECRET", "https://rpc.example.org/***"),
        ("https://user:SECRET@rpc.example.org", "https://rpc.example.org"),
        ("https://rpc.ankr.com", "https://rpc.ankr.com"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("not a url", "<unparseable url>"),
        ("http://127.0.0.1:8545:", "http://127.0.0.1:8545:"),
        (
            "https://user:SECRET@rpc.example.org:8899/x?k=SECRET:",
            "https://rpc.example.org:8899/***:",
        ),
    ],
)
def test_redact_url_hides_keys(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "SECRET" not in redact_url(url)


def test_exit_codes_one_per_branch() -> None:
    assert ConfigError("x").exit_code == 2
    assert ChainError("x").exit_code == 4
    assert UserRejectedError("x").exit_code == 5
    assert issubclass(ChainError, RebalancerError)


def test_scrub_keeps_host_and_port_before_a_colon() -> None:
    from rebalancer.core.redact import scrub

    line = "node at http://127.0.0.1:8545: connection refused; https://h.example/v2/SECRET."
    assert scrub(line) == (
        "node at http://127.0.0.1:8545: connection refused; https://h.example/***."
    )


def test_a_corrupt_aggregator_answer_is_refused_exit_3() -> None:
    from pydantic import BaseModel

    from rebalancer.core.errors import AggregatorError, CorruptResponseError
    from rebalancer.dex.http import parse

    class Swap(BaseModel):
        tx: dict[str, str]

    for garbage in ({"dstAmount": "1"}, "garbage", [1, 2]):
        try:
            parse(Swap, garbage, "1inch API")
        except CorruptResponseError as exc:
            assert exc.exit_code == 3 and isinstance(exc, AggregatorError)
            assert "1inch API answered an unexpected Swap" in exc.message
        else:
            raise AssertionError("a corrupt answer was accepted")
