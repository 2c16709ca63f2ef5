"""Run profiles and the validation of a chapter's parameters.

smoke: CPU, tiny subsets, few steps; exercises every code path (CI).
reduced: the document's protocol cut down (fewer steps, smaller sets) to finish
       in about an hour on a 2-core CPU; the largest honest run without a GPU.
full:  the document's protocol (epochs, sizes, data), meant for a GPU.
book:  render mode of `make book`: the recorded full run where one exists,
       else the recorded reduced run, else a fresh smoke run; every table and
       caption says which it shows.
"""
from __future__ import annotations

import os
from dataclasses import fields, replace

from .errors import UnknownChoiceError

PROFILES = ("smoke", "reduced", "full", "book")
TRAINING_PROFILES = ("smoke", "reduced", "full")
BOOK_PREFERENCE = ("full", "reduced")  # recorded runs the book shows, best first


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise UnknownChoiceError("profile", profile, PROFILES)
    return profile


def unknown_training_profile(profile: str) -> UnknownChoiceError:
    """The error for a profile an experiment cannot train with ('book' only renders)."""
    return UnknownChoiceError("training profile", profile, TRAINING_PROFILES)


def check_training_profile(profile: str) -> str:
    if profile not in TRAINING_PROFILES:
        raise unknown_training_profile(profile)
    return profile


def env_default(name: str, default: str) -> str:
    """Chapter parameter defaults come from HYPERBOOK_<NAME> so nbval and JupyterLab pick smoke."""
    return os.environ.get(f"HYPERBOOK_{name.upper()}", default)


def env_flag(name: str, default: bool) -> bool:
    value = env_default(name, "1" if default else "0").strip().lower()
    if value not in ("0", "1", "true", "false", "yes", "no"):
        raise UnknownChoiceError(f"HYPERBOOK_{name.upper()} value", value, ("0", "1"))
    return value in ("1", "true", "yes")


def with_overrides(config, overrides: dict | None):
    """Return a copy of a frozen config dataclass with `overrides` applied; unknown keys are an error."""
    if not overrides:
        return config
    valid = {f.name for f in fields(config)}
    for key in overrides:
        if key not in valid:
            raise UnknownChoiceError(f"parameter of {type(config).__name__}", key, valid)
    return replace(config, **overrides)
