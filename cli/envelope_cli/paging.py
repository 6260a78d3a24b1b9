"""The aws CLI's automatic pagination (--max-items, --starting-token, --page-size, --no-paginate),
for any operation that has a botocore-shaped paginator config, against any client.

botocore's own PageIterator does the paging, so the pages, the merged result and the NextToken a
user sees are the aws CLI's to the byte, whether the client is the embedded service or boto3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from .exits import CLIError, ExitCode

__all__ = ["PAGING_FLAGS", "Pages", "paginate"]

# The aws CLI's pagination flags (https://docs.aws.amazon.com/cli/latest/userguide/cli-usage-pagination.html).
PAGING_FLAGS = {"max_items": "--max-items", "starting_token": "--starting-token", "page_size": "--page-size"}


@dataclass(slots=True)
class Pages:
    """A paginated response: iterate for the pages; `full()` merges them as the aws CLI prints them."""

    iterator: Any  # botocore.paginate.PageIterator

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.iterator)

    @property
    def result_keys(self) -> list[Any]:
        return list(self.iterator.result_keys)

    @property
    def non_aggregate_part(self) -> dict[str, Any]:
        return dict(self.iterator.non_aggregate_part)

    @property
    def resume_token(self) -> str | None:
        token = self.iterator.resume_token
        return None if token is None else str(token)

    def full(self) -> dict[str, Any]:
        return dict(self.iterator.build_full_result())

    def page_result(self, index: int, page: Mapping[str, Any]) -> dict[str, Any]:
        """What the text and yaml-stream formats print of one page: its result keys (plus, on the
        first page, the keys that are not paged), as awscli's TextFormatter does."""
        from botocore.utils import set_value_from_jmespath  # type: ignore[import-untyped]

        current = self.non_aggregate_part if index == 0 else {}
        for key in self.result_keys:
            set_value_from_jmespath(current, key.expression, key.search(page))
        return current


def paginate(method: Callable[..., Any], config: Mapping[str, Any], params: dict[str, Any], *,
             max_items: int | None, starting_token: str | None, page_size: int | None) -> Pages:
    """Page through ``method`` as boto3's paginator for ``config`` (a paginators-1.json entry) would."""
    try:
        from botocore.exceptions import PaginationError  # type: ignore[import-untyped]
        from botocore.paginate import Paginator  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - botocore comes with the cli extra
        raise CLIError("paging needs botocore (pip install 'envelope-crypto[cli]')", ExitCode.AWS_CONFIG) from None
    limit_key = config.get("limit_key")
    # Paginator reads the model only for the limit key's type (KMS's Limit is an integer).
    model = SimpleNamespace(input_shape=SimpleNamespace(
        members={limit_key: SimpleNamespace(type_name="integer")} if limit_key else {}))
    paging: dict[str, Any] = {}
    if max_items is not None:
        paging["MaxItems"] = max_items
    if starting_token is not None:
        paging["StartingToken"] = starting_token
    if page_size is not None:
        paging["PageSize"] = page_size
    try:
        iterator = Paginator(method, dict(config), model).paginate(**params, PaginationConfig=paging)
    except PaginationError as exc:
        raise CLIError(str(exc), ExitCode.USAGE) from None
    return Pages(_checked(iterator, PaginationError))


class _checked:
    """A PageIterator whose bad --starting-token becomes a usage error (the aws CLI's 252)."""

    def __init__(self, inner: Any, error: type[Exception]) -> None:
        self._inner = inner
        self._error = error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            yield from self._inner
        except (self._error, ValueError) as exc:
            if "token" not in str(exc).lower():
                raise
            raise CLIError(f"bad --starting-token: {exc}", ExitCode.USAGE) from None

    def build_full_result(self) -> dict[str, Any]:
        try:
            return dict(self._inner.build_full_result())
        except (self._error, ValueError) as exc:
            if "token" not in str(exc).lower():
                raise
            raise CLIError(f"bad --starting-token: {exc}", ExitCode.USAGE) from None
