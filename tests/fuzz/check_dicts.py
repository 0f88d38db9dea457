#!/usr/bin/env python3
"""The fuzz dictionaries name every key their parser knows: state.dict every field name that
core/state.cc writes or reads, config.dict every key of the settings table ("key:"). A key
missing from a dictionary is one libFuzzer's mutations rarely spell, so its checks go
unfuzzed; last time 80 state keys had gone missing unnoticed. Exits 1 naming what is missing."""
import pathlib
import re
import sys

top = pathlib.Path(__file__).resolve().parents[2]


def dict_words(name):
    words = set()
    for line in (top / "tests/fuzz" / name).read_text().splitlines():
        m = re.match(r'^"((?:[^"\\]|\\.)*)"', line)
        if m:
            words.add(m.group(1))
    return words


def state_keys():
    text = (top / "src/core/state.cc").read_text()
    # v.Field("name", ...) and v.FieldIf(cond, "name", ...): the first string literal of the call.
    return set(re.findall(r'\bField(?:If)?\([^";]*?"([a-z_0-9]+)"', text))


def config_keys():
    text = (top / "src/core/option_table.cc").read_text()
    return {k + ":" for k in re.findall(r'\.key = "([a-z_0-9]+)"', text)}


failed = False
for name, keys in (("state.dict", state_keys()), ("config.dict", config_keys())):
    if len(keys) < 20:
        print(f"check_dicts: found only {len(keys)} keys for {name}: has the source changed form?")
        failed = True
        continue
    missing = sorted(keys - dict_words(name))
    if missing:
        print(f"check_dicts: tests/fuzz/{name} lacks " + " ".join(f'"{k}"' for k in missing))
        failed = True
    else:
        print(f"check_dicts: tests/fuzz/{name} names all {len(keys)} keys")
sys.exit(1 if failed else 0)
