"""Names a Linen module's own field may not take: the members of
``flax.linen.Module`` (flax 0.12).

An ``apply`` parameter that becomes a field keeps its name, and a field
shadows the Module member of that name: ``init`` makes
``Layer(features=2).init(...)`` call the initializer, ``scope`` is overwritten
by the bound Scope, ``variables`` hides the property. The list is
``dir(flax.linen.Module)``, the dataclass fields every subclass gets
(``parent``, ``name``) and the attributes a bound instance sets (``scope``,
``_state``, ``_id``, ``_parent_ref``); ``tests/test_member_names.py`` checks
it against the installed flax.
"""

from __future__ import annotations

LINEN_MODULE_MEMBERS = frozenset({
    # public methods and properties of flax.linen.Module
    "apply", "bind", "clone", "copy", "get_variable", "has_rng", "has_variable", "init", "init_with_output",
    "is_initializing", "is_mutable_collection", "lazy_init", "make_rng", "module_paths", "param", "path",
    "perturb", "put_variable", "setup", "sow", "tabulate", "unbind", "variable", "variables",
    # dataclass fields of every subclass, and what a bound instance sets
    "parent", "name", "scope",
    # private members Linen reads on every instance
    "_call_wrapped_method", "_customized_dataclass_transform", "_find_compact_name_scope_methods",
    "_initialization_allowed", "_module_checks", "_name_taken", "_register_submodules", "_try_setup",
    "_validate_setup", "_wrap_module_attributes", "_state", "_id", "_parent_ref",
})


def member_clash(field: str) -> str | None:
    """The TODO for an ``apply`` parameter that would become the field ``field``
    and shadow the Linen Module member of that name."""
    if field not in LINEN_MODULE_MEMBERS:
        return None
    return (f"apply takes a parameter `{field}`, which would become a field shadowing Linen's Module.{field} "
            f"(flax.linen.Module uses that name itself): rename the parameter by hand, at the definition and "
            f"every use")
