"""The operations LocalKMS serves: every row of the operation table that has a handler here.

A handler is the function of an operation module named like the operation's boto3 method
(``symmetric.generate_data_key`` for GenerateDataKey); nothing lists operations by hand. Rows of
the table without one (custom key stores, GetKeyLastUsage, ...) are not served: the client has
no such method and the endpoint answers UnknownOperationException, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType, ModuleType

from ..engine.runtime import Handler, Plan
from ..model.operations import OPERATIONS
from . import aliases, asymmetric, grants, imports, keyagreement, keyops, lifecycle, macs, multiregion, symmetric

__all__ = ["PLANS", "PLANS_BY_METHOD"]

_MODULES: tuple[ModuleType, ...] = (aliases, asymmetric, grants, imports, keyagreement, keyops, lifecycle, macs,
                                    multiregion, symmetric)


def _handler(method: str) -> Handler | None:
    found = [module for module in _MODULES if callable(getattr(module, method, None))]
    if len(found) > 1:
        raise RuntimeError(f"envelope: internal error: {method} is defined in {found[0].__name__} "
                           f"and {found[1].__name__}")
    if not found:
        return None
    handler: Handler = getattr(found[0], method)
    return handler


def _plans() -> dict[str, Plan]:
    plans: dict[str, Plan] = {}
    for name, operation in OPERATIONS.items():
        handler = _handler(operation.method)
        if handler is not None:
            plans[name] = Plan(operation, handler)
    return plans


# Operation name ("GenerateDataKey") -> its plan; boto3 method name ("generate_data_key") -> the same.
PLANS: Mapping[str, Plan] = MappingProxyType(_plans())
PLANS_BY_METHOD: Mapping[str, Plan] = MappingProxyType({p.operation.method: p for p in PLANS.values()})
