"""Fuzzing the trailer and FIT parsers: only routerkit's typed errors escape, sizes are honoured.

A small example count runs in ``make test``; ``make reliability`` (ROUTERKIT_RELIABILITY=1)
runs the same properties with >= 10,000 examples each.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.firmware.trust.bad_images.make_corpus import META
from toolkit.errors import ImageFormatError
from toolkit.firmware import fdt
from toolkit.firmware.image import FOOTER_SIZE, Footer, parse, read_fit, seal
from toolkit.firmware.signify import SecretKey

RELIABILITY = os.environ.get("ROUTERKIT_RELIABILITY") == "1"
KEY = SecretKey.generate()


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _check_parse(data: bytes) -> None:
    try:
        image = parse(data)
    except ImageFormatError:
        return
    # Accepted: every declared size is exactly honoured.
    f = image.footer
    assert f.fit_size + f.meta_size + f.sig_size + FOOTER_SIZE == len(data) == image.size
    assert data[f.fit_size : f.fit_size + f.meta_size] == image.meta_bytes
    assert image.metadata["fit_size"] == f.fit_size


def _check_fit(data: bytes) -> None:
    try:
        info = read_fit(data)
    except ImageFormatError:
        return
    for image in info.images:
        assert image.data_offset >= 0 and image.data_offset + image.data_size <= len(data)


def _mutate(base: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    data = bytearray(base)
    for pos, cut, insert in edits:
        at = pos % (len(data) + 1)
        data[at : at + cut] = insert
    return bytes(data)


EDITS = st.lists(
    st.tuples(st.integers(0, 1 << 20), st.integers(0, 8), st.binary(max_size=8)),
    min_size=1,
    max_size=4,
)


def _footer_strategy(body: bytes) -> st.SearchStrategy[bytes]:
    sizes = st.tuples(st.integers(0, 10**12 - 1), st.integers(0, 10**8 - 1), st.integers(0, 9999))
    near = st.tuples(st.integers(0, len(body)), st.integers(0, len(body)), st.integers(0, 300))
    return st.one_of(sizes, near).map(lambda s: body + Footer(*s).to_bytes())


def _run(prop: Callable[[bytes], None], strategy: st.SearchStrategy[bytes], examples: int) -> None:
    @_settings(examples)
    @given(strategy)
    def run(data: bytes) -> None:
        prop(data)

    run()


def _properties(
    tiny_fit: bytes,
) -> dict[str, tuple[Callable[[bytes], None], st.SearchStrategy[bytes]]]:
    good = seal(tiny_fit, META, KEY)
    return {
        "trailer_random_bytes": (_check_parse, st.binary(max_size=4096)),
        "trailer_mutated_image": (_check_parse, EDITS.map(lambda e: _mutate(good, e))),
        "trailer_forged_footer": (_check_parse, _footer_strategy(good[:-FOOTER_SIZE])),
        "fit_random_bytes": (_check_fit, st.binary(max_size=4096)),
        "fit_mutated": (_check_fit, EDITS.map(lambda e: _mutate(tiny_fit, e))),
        "fit_header_fields": (
            _check_fit,
            st.binary(min_size=40, max_size=40).map(
                lambda h: fdt.FDT_MAGIC.to_bytes(4, "big") + h[4:] + tiny_fit[40:]
            ),
        ),
    }


NAMES = [
    "trailer_random_bytes",
    "trailer_mutated_image",
    "trailer_forged_footer",
    "fit_random_bytes",
    "fit_mutated",
    "fit_header_fields",
]


@pytest.mark.parametrize("name", NAMES)
def test_parsers_raise_only_typed_errors(name: str, tiny_fit: bytes) -> None:
    prop, strategy = _properties(tiny_fit)[name]
    _run(prop, strategy, 150)


@pytest.mark.reliability
@pytest.mark.skipif(not RELIABILITY, reason="long run: ROUTERKIT_RELIABILITY=1 (make reliability)")
@pytest.mark.parametrize("name", NAMES)
def test_parsers_raise_only_typed_errors_10k(name: str, tiny_fit: bytes) -> None:
    prop, strategy = _properties(tiny_fit)[name]
    _run(prop, strategy, 10_000)


def test_a_valid_image_survives_the_property(tiny_fit: bytes) -> None:
    """The property must be able to accept: the unmodified image parses and its FIT reads."""
    good = seal(tiny_fit, META, KEY)
    _check_parse(good)
    assert parse(good).size == len(good)
    assert len(read_fit(tiny_fit).images) == 2
