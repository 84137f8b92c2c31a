"""Keywords of a module definition that are already Linen fields.

A built-in's ``.partial`` written inside ``nn.Model(...)`` reaches the usage rules
after LU201 rewrote it, its keywords under their Linen names
(``nn.Dense.partial(features=2, bias=False)`` -> ``use_bias=False``). ``split_usage``
walks the legacy ``apply`` parameters only, so such a keyword was dropped without a
finding (``nn.Dense(features=2)`` applied a kernel with a bias); it is kept as
written, and any other keyword the module does not take is a TODO.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.rules._cst import kwarg


def linen_named(bound: dict[str, cst.BaseExpression], spec, given: set[str]) -> tuple[list[cst.Arg], str | None]:
    """The keywords of ``bound`` (what the definition fixed) that are Linen fields of ``spec``'s
    module but not legacy parameters, as constructor keywords; or why they cannot be kept.
    ``given``: the Linen fields the legacy arguments fill."""
    if spec.forward is not None:
        return [], None  # a wrapper's ``**kwargs``: split_usage packs what it forwards
    kept: list[cst.Arg] = []
    for key, value in bound.items():
        if key in spec.legacy:
            continue
        if key not in spec.linen_fields or key in given:
            return [], (f"the module definition fixes {key}=, which its legacy apply does not take "
                        "(or gives twice): convert this use by hand")
        kept.append(kwarg(key, value))
    return kept, None
