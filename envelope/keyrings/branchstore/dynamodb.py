"""The ESDK key store's DynamoDB table through any boto3 DynamoDB client (ESDK spec branch-key-store.md).

Items are written exactly as the ESDK's KeyStore writes them (TransactWriteItems with its condition
expressions), so either side reads what the other made.
"""

from __future__ import annotations

from typing import Any

from ...errors import KeyringError
from .records import Item

__all__ = ["DynamoDBTable"]

_KEY_SCHEMA = [{"AttributeName": "branch-key-id", "KeyType": "HASH"}, {"AttributeName": "type", "KeyType": "RANGE"}]


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    return str(error.get("Code")) if isinstance(error, dict) else type(exc).__name__


def _to_ddb(item: Item) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, value in item.items():
        if name == "hierarchy-version":
            out[name] = {"N": value}
        elif isinstance(value, bytes):
            out[name] = {"B": value}
        else:
            out[name] = {"S": value}
    return out


def _from_ddb(item: dict[str, dict[str, Any]]) -> Item:
    out: Item = {}
    for name, value in item.items():
        if "S" in value:
            out[name] = str(value["S"])
        elif "N" in value:
            out[name] = str(value["N"])
        elif "B" in value:
            out[name] = bytes(value["B"])
        else:
            raise KeyringError(f"branch key store item attribute {name!r} has an unexpected DynamoDB type")
    return out


class DynamoDBTable:
    """A `Table` in DynamoDB (hash key branch-key-id, range key type, both strings)."""

    def __init__(self, table_name: str, client: Any) -> None:
        if not isinstance(table_name, str) or not table_name:
            raise ValueError("table_name must be a non-empty str")
        missing = [m for m in ("describe_table", "create_table", "get_item", "transact_write_items")
                   if not callable(getattr(client, m, None))]
        if missing:
            raise TypeError(f"ddb_client must have boto3's DynamoDB methods; missing: {', '.join(missing)}")
        self.name = table_name
        self._client = client

    def _call(self, method: str, *, conflict: str = "", **kwargs: Any) -> dict[str, Any]:
        """Call the client; a failure is a KeyringError naming the DynamoDB error code (``conflict``
        explains a failed condition expression)."""
        try:
            response = getattr(self._client, method)(**kwargs)
        except Exception as exc:  # noqa: BLE001 - a foreign client: translate at the boundary
            code = _error_code(exc)
            why = f"{conflict} ({code})" if conflict and code == "TransactionCanceledException" else code
            raise KeyringError(f"DynamoDB {method} on {self.name!r} failed: {why}") from None
        return dict(response)

    def create(self) -> str:
        # spec CreateKeyStore: DescribeTable; on ResourceNotFoundException, CreateTable.
        try:
            table = self._client.describe_table(TableName=self.name)["Table"]
        except Exception as exc:  # noqa: BLE001
            if _error_code(exc) != "ResourceNotFoundException":
                raise KeyringError(f"DynamoDB DescribeTable on {self.name!r} failed: {_error_code(exc)}") from None
            table = self._call("create_table", TableName=self.name, KeySchema=_KEY_SCHEMA, AttributeDefinitions=[
                {"AttributeName": "branch-key-id", "AttributeType": "S"},
                {"AttributeName": "type", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")["TableDescription"]
            return str(table["TableArn"])
        schema = sorted((k["AttributeName"], k["KeyType"]) for k in table.get("KeySchema", []))
        if schema != sorted((k["AttributeName"], k["KeyType"]) for k in _KEY_SCHEMA):
            raise KeyringError(f"table {self.name!r} exists without the key store's key schema "
                               "(branch-key-id HASH, type RANGE)")
        return str(table["TableArn"])

    def get(self, branch_key_id: str, item_type: str) -> Item | None:
        response = self._call("get_item", TableName=self.name, ConsistentRead=True,
                              Key={"branch-key-id": {"S": branch_key_id}, "type": {"S": item_type}})
        item = response.get("Item")
        return _from_ddb(item) if item else None

    def put_new(self, items: list[Item]) -> None:
        puts = [{"Put": {"TableName": self.name, "Item": _to_ddb(item),
                         "ConditionExpression": "attribute_not_exists(#bkid)",
                         "ExpressionAttributeNames": {"#bkid": "branch-key-id"}}} for item in items]
        self._call("transact_write_items", conflict=f"branch key {items[0]['branch-key-id']!r} already exists",
                   TransactItems=puts)

    def put_version(self, decrypt_only: Item, active: Item, old_enc: bytes) -> None:
        # spec VersionKey: the ACTIVE item is replaced only if its enc is still the one read.
        puts = [{"Put": {"TableName": self.name, "Item": _to_ddb(decrypt_only),
                         "ConditionExpression": "attribute_not_exists(#bkid)",
                         "ExpressionAttributeNames": {"#bkid": "branch-key-id"}}},
                {"Put": {"TableName": self.name, "Item": _to_ddb(active),
                         "ConditionExpression": "attribute_exists(#bkid) AND #enc = :encOld",
                         "ExpressionAttributeNames": {"#bkid": "branch-key-id", "#enc": "enc"},
                         "ExpressionAttributeValues": {":encOld": {"B": old_enc}}}}]
        self._call("transact_write_items", conflict=f"branch key {active['branch-key-id']!r} was versioned "
                   "concurrently; retry", TransactItems=puts)
