"""--cli-input-json / --cli-input-yaml (parameters from a document) and --generate-cli-skeleton.

Both work from an operation's service-model shapes (botocore's ``OperationModel`` interface:
``input_shape``/``output_shape`` with ``members``, ``type_name``, ``enum``), so any operation
table that can name its shapes gets them.
https://docs.aws.amazon.com/cli/latest/userguide/cli-usage-skeleton.html
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .exits import CLIError, ExitCode
from .kms_args import read_text_value
from .output import to_jsonable

__all__ = ["input_document", "skeleton"]


def _load_yaml(text: str, flag: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise CLIError(f"{flag} needs PyYAML", ExitCode.AWS_CONFIG,
                       hint="pip install 'envelope-crypto[cli]' (or pip install pyyaml)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CLIError(f"{flag}: invalid YAML: {exc}", ExitCode.AWS_USAGE) from None


def input_document(json_text: str | None, yaml_text: str | None) -> dict[str, Any]:
    """The parameters given by --cli-input-json or --cli-input-yaml (a string or file://FILE)."""
    if json_text is not None and yaml_text is not None:
        raise CLIError("--cli-input-json and --cli-input-yaml cannot be used together", ExitCode.AWS_USAGE)
    if json_text is None and yaml_text is None:
        return {}
    if json_text is not None:
        text = read_text_value(json_text)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CLIError(f"--cli-input-json: invalid JSON: {exc}", ExitCode.AWS_USAGE) from None
        flag = "--cli-input-json"
    else:
        data = _load_yaml(read_text_value(yaml_text or ""), "--cli-input-yaml")
        flag = "--cli-input-yaml"
    if not isinstance(data, dict):
        raise CLIError(f"{flag}: expected an object of parameters", ExitCode.AWS_USAGE)
    return data


class _Generator:
    """botocore's ArgumentGenerator, with the first enum value instead of a random one so that a
    skeleton is the same on every run."""

    def __init__(self, use_member_names: bool) -> None:
        from botocore.utils import ArgumentGenerator  # type: ignore[import-untyped]

        class _First(ArgumentGenerator):  # type: ignore[misc]
            def _generate_skeleton(self, shape: Any, stack: list[str], name: str = "") -> Any:
                if shape.type_name == "string" and shape.enum and not use_member_names:
                    return shape.enum[0]
                return super()._generate_skeleton(shape, stack, name)

        self._inner = _First(use_member_names=use_member_names)

    def generate(self, shape: Any) -> Any:
        return self._inner.generate_skeleton(shape)


def skeleton(operation_model: Any, kind: str) -> Any:
    """The skeleton --generate-cli-skeleton prints: input (JSON text), yaml-input (YAML text), or
    output (a sample response, to print in the --output format)."""
    if kind == "output":
        shape = operation_model.output_shape
        return {} if shape is None else _Generator(use_member_names=True).generate(shape)
    shape = operation_model.input_shape
    data: Mapping[str, Any] = {} if shape is None else _Generator(use_member_names=False).generate(shape)
    if kind == "yaml-input":
        try:
            import yaml
        except ImportError:
            raise CLIError("--generate-cli-skeleton yaml-input needs PyYAML", ExitCode.AWS_CONFIG,
                           hint="pip install 'envelope-crypto[cli]' (or pip install pyyaml)") from None
        required = set(getattr(shape, "required_members", ()) or ())
        lines: list[str] = []
        for key, value in data.items():
            block = yaml.safe_dump({key: to_jsonable(value)}, default_flow_style=False, sort_keys=False)
            head, _, tail = block.partition("\n")
            lines.append(head + ("  # [REQUIRED]" if key in required else "") + "\n" + tail)
        return "".join(lines)
    return json.dumps(to_jsonable(data), indent=4) + "\n"
