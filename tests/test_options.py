"""vqcodec.options: the one encoder-options value -- defaults, each check, the cross-check, the names."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

import vqcodec
from vqcodec import coders, limits, options, pillow_plugin
from vqcodec.errors import OptionError
from vqcodec.options import EncodeOptions


def test_defaults_are_the_documented_ones():
    o = EncodeOptions()
    assert (o.k, o.seed, o.rdo, o.coder, o.layout, o.level, o.max_pixels) == (
        limits.DEFAULT_K, 0, options.DEFAULT_RDO, "auto", None, None, limits.DEFAULT_MAX_PIXELS)


@pytest.mark.parametrize("name,value,message", [
    ("k", 1, "k must be an integer from 2 to 65536, got 1"),
    ("k", 65537, "k must be an integer from 2 to 65536"),
    ("k", 16.0, "k must be an integer"),
    ("k", True, "k must be an integer"),
    ("seed", -1, "seed must be an integer >= 0"),
    ("rdo", float("nan"), "rdo must be a number from 0"),
    ("rdo", -0.1, "rdo must be a number from 0"),
    ("rdo", "1", "rdo must be a number"),
    ("coder", "lzma", "lzma"),
    ("coder", 2, "coder must be one of"),
    ("layout", "rows", "layout must be one of"),
    ("level", 0, "level must be a zstd level from 1 to 22"),
    ("level", 23, "level must be a zstd level from 1 to 22"),
    ("max_pixels", 0, "max_pixels must be a positive integer or None"),
])
def test_every_bad_value_names_its_option(name, value, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(")):
        EncodeOptions(**{name: value})
    with pytest.raises(OptionError):
        options.check(name, value)  # what the command line calls on a typed value


def test_values_are_normalised_once():
    o = EncodeOptions(k=np.int64(64), level=np.int32(9), rdo=1, coder=None)
    assert type(o.k) is int and o.k == 64 and type(o.level) is int and type(o.rdo) is float
    assert o.coder == "auto"


def test_frozen_and_replace_rechecks():
    o = EncodeOptions(k=16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.k = 32  # type: ignore[misc]
    assert o.replace(k=32).k == 32 and o.k == 16
    with pytest.raises(OptionError, match="k must be"):
        o.replace(k=1)
    with pytest.raises(OptionError, match="unknown encode option 'colours'"):
        o.replace(colours=8)


def test_coder_and_layout_cross_check_follows_the_registry():
    ctx = coders.by_name("ctx")
    wrong = next(name for i, name in options.packing.LAYOUTS.items() if i not in ctx.layouts)
    with pytest.raises(OptionError, match="coder 'ctx' needs layout"):
        EncodeOptions(coder="ctx", layout=wrong)
    for i in ctx.layouts:
        EncodeOptions(coder="ctx", layout=options.packing.LAYOUTS[i])  # accepted


def test_from_mapping_refuses_a_misspelt_name_with_the_list():
    with pytest.raises(OptionError, match="unknown encode option 'kk'; the options are k, seed"):
        EncodeOptions.from_mapping({"kk": 4})
    assert EncodeOptions.from_mapping({"k": 4}).k == 4


def test_one_list_of_names_everywhere():
    assert options.NAMES == tuple(f.name for f in dataclasses.fields(EncodeOptions))
    assert set(options.NAMES) == set(options.CHECKS)
    params = inspect.signature(vqcodec.encode).parameters
    assert set(options.NAMES) <= set(params)  # encode() shows every option in help()
    assert set(pillow_plugin.SAVE_OPTIONS) == set(options.NAMES) - {"max_pixels"}  # a reader limit


def test_a_misspelt_keyword_to_encode_names_it():
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(TypeError, match="colours"):
        vqcodec.encode(img, colours=8)  # type: ignore[call-arg]
    with pytest.raises(OptionError, match="unknown encode option 'colours'"):
        vqcodec.codec.encode_pixels(img, colours=8)


def test_dither_with_blocks_is_refused_by_name():
    with pytest.raises(OptionError, match="dither diffuses the error of single pixels; it does not apply to 2x2"):
        EncodeOptions(dither=0.5, block="2x2")
    assert EncodeOptions(dither=0, block="2x2").block == (2, 2)
