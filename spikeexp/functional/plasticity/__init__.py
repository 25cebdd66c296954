"""Plasticity rules, one file each; every rule file defines a :class:`PlasticityRule` ``RULE``.

Rules are discovered from this package, so adding a rule is adding one file here (plus its
config in ``conf/plasticity/`` and tests). :data:`RULES` maps config names to rules:

* ``stdp``: pair-based STDP, additive or multiplicative, hard bounds (:mod:`.stdp`);
* ``triplet``: triplet STDP of Pfister & Gerstner 2006 (:mod:`.triplet`);
* ``mstdp``: reward-modulated STDP with an eligibility trace (:mod:`.mstdp`);
* ``stp``: Tsodyks-Markram short-term facilitation and depression (:mod:`.stp`).

Shared pieces: trace conventions (:mod:`.traces`), dense/conv geometry (:mod:`.connection`),
weight dependence and bounds (:mod:`.bounds`), the reference sequence loop (:mod:`.sequence`),
conversions to Norse and SpikingJelly (:mod:`.interop`).
"""

from __future__ import annotations

import importlib
import pkgutil

from spikeexp.functional.plasticity.base import PlasticityRule
from spikeexp.functional.plasticity.connection import DENSE, Conv2d, Dense

_SHARED = {"base", "bounds", "connection", "interop", "sequence", "traces"}


def _discover() -> dict[str, PlasticityRule]:
    rules: dict[str, PlasticityRule] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in _SHARED or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        rule = getattr(module, "RULE", None)
        if isinstance(rule, PlasticityRule):
            rules[rule.name] = rule
    return rules


RULES: dict[str, PlasticityRule] = _discover()

__all__ = ["DENSE", "RULES", "Conv2d", "Dense", "PlasticityRule"]
