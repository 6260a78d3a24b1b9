"""The aws CLI's global options anywhere on the line, yaml output, --cli-input-json/yaml, skeletons,
--no-paginate and the aws CLI's return codes, against the embedded service.

https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-options.html (global options)
https://docs.aws.amazon.com/cli/latest/userguide/cli-usage-skeleton.html
https://docs.aws.amazon.com/cli/latest/topic/return-codes.html
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from envelope_cli.globalopts import split_global_options
from envelope_cli.kms_table import OPERATIONS, PAGINATORS
from envelope_cli.main import build_parser

yaml = pytest.importorskip("yaml")


@pytest.mark.parametrize("argv,rest", [
    (["--output", "text", "kms", "list-aliases"], ["kms", "list-aliases"]),
    (["kms", "--output", "text", "list-aliases"], ["kms", "list-aliases"]),
    (["kms", "list-aliases", "--output", "text"], ["kms", "list-aliases"]),
    (["kms", "list-aliases", "--output=text", "--key-id", "k"], ["kms", "list-aliases", "--key-id", "k"]),
], ids=["before-service", "between", "after-operation", "equals-form"])
def test_split_in_every_position(argv: list[str], rest: list[str]) -> None:
    opts, remaining, path = split_global_options(argv, build_parser())
    assert opts.output == "text" and remaining == rest and path == ["kms", "list-aliases"]


def test_a_commands_own_option_wins() -> None:
    # `envelope encrypt --output FILE` and `kms serve --region A --region B` keep their own meaning.
    opts, rest, _ = split_global_options(["encrypt", "--output", "x.enc", "--region", "eu-west-1", "f"],
                                         build_parser())
    assert opts.output is None and opts.region is None and "--output" in rest and "--region" in rest
    opts, rest, _ = split_global_options(["--region", "eu-west-1", "kms", "serve", "--region", "us-east-1"],
                                         build_parser())
    assert opts.regions == ["eu-west-1"] and rest == ["kms", "serve", "--region", "us-east-1"]


def test_options_in_every_position_print_the_same(cli) -> None:
    key_id = json.loads(cli("kms", "create-key").out)["KeyMetadata"]["KeyId"]
    assert cli("kms", "create-alias", "--alias-name", "alias/pos", "--target-key-id", key_id).code == 0
    # Only the aliases with a key: ListAliases also lists AWS's predefined ones without TargetKeyId.
    query = "Aliases[?TargetKeyId].AliasName"
    outputs = {cli(*argv).text for argv in (
        ("--output", "text", "--query", query, "kms", "list-aliases"),
        ("kms", "--output", "text", "--query", query, "list-aliases"),
        ("kms", "list-aliases", "--output", "text", "--query", query),
        ("--output", "text", "kms", "--query", query, "list-aliases"),
    )}
    assert outputs == {"alias/pos\n"}


def test_service_options_do_not_apply_to_encrypt(cli, plain: Path) -> None:
    r = cli("--query", "x", "encrypt", "plain.txt")
    assert r.code == 2 and "--query applies to `envelope kms`" in r.err


def test_yaml_and_yaml_stream(cli) -> None:
    made = [json.loads(cli("kms", "create-key").out)["KeyMetadata"]["KeyId"] for _ in range(3)]
    listed = cli("kms", "list-keys", "--output", "yaml")
    assert listed.code == 0 and yaml.safe_load(listed.out) == {"Keys": [
        {"KeyId": k, "KeyArn": f"arn:aws:kms:us-east-1:111122223333:key/{k}"} for k in made]}
    assert listed.text.startswith("Keys:\n- KeyId: ")  # block style, list items at the key's indent
    # yaml-stream: one list item per page (two calls of two and one keys here)
    stream = yaml.safe_load(cli("kms", "list-keys", "--output", "yaml-stream", "--page-size", "2").out)
    assert [[k["KeyId"] for k in page["Keys"]] for page in stream] == [made[:2], made[2:]]
    described = yaml.safe_load(cli("kms", "describe-key", "--key-id", made[0], "--output", "yaml").out)
    assert isinstance(described["KeyMetadata"]["CreationDate"], str)  # ISO 8601 text, as aws CLI v2
    assert cli("kms", "describe-key", "--key-id", made[0], "--output", "off").out == b""


def test_output_from_the_environment_and_the_profile(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # https://docs.aws.amazon.com/cli/latest/userguide/cli-usage-output-format.html: --output, then
    # AWS_DEFAULT_OUTPUT, then the profile's `output` setting
    config = tmp_path / "config"
    config.write_text("[default]\noutput = text\n[profile tabular]\noutput = table\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    argv = ("kms", "generate-random", "--number-of-bytes", "3", "--query", "length(Plaintext)")
    assert cli(*argv).text == "4\n"  # text, from the default profile
    monkeypatch.setenv("AWS_PROFILE", "tabular")
    assert cli(*argv).text.startswith("-")  # a table
    monkeypatch.setenv("AWS_DEFAULT_OUTPUT", "json")
    assert cli(*argv).text == "4\n"
    assert cli(*argv, "--output", "yaml").text == "4\n...\n"


def test_no_paginate_prints_the_raw_page(cli) -> None:
    for _ in range(2):
        cli("kms", "create-key")
    raw = json.loads(cli("kms", "list-keys", "--no-paginate").out)
    assert "Truncated" in raw and len(raw["Keys"]) == 2
    r = cli("kms", "list-keys", "--no-paginate", "--max-items", "1")
    assert r.code == 252 and "--no-paginate" in r.err


def test_cli_input_json_and_yaml(cli, tmp_path: Path) -> None:
    key_id = json.loads(cli("kms", "create-key").out)["KeyMetadata"]["KeyId"]
    (tmp_path / "in.json").write_text(json.dumps({"KeyId": key_id, "Plaintext": "aGk=",
                                                  "EncryptionContext": {"app": "x"}}))
    r = cli("kms", "encrypt", "--cli-input-json", "file://in.json", "--query", "KeyId", "--output", "text")
    assert r.code == 0, r.err
    blob = json.loads(cli("kms", "encrypt", "--cli-input-json", "file://in.json").out)["CiphertextBlob"]
    (tmp_path / "dec.yaml").write_text(f"CiphertextBlob: {blob}\nEncryptionContext:\n  app: wrong\n")
    # the command line wins over the document
    r = cli("kms", "decrypt", "--cli-input-yaml", "file://dec.yaml", "--encryption-context", "app=x")
    assert r.code == 0 and json.loads(r.out)["Plaintext"] == "aGk="
    r = cli("kms", "decrypt", "--cli-input-yaml", "file://dec.yaml")
    assert r.code == 254 and "InvalidCiphertextException" in r.err
    r = cli("kms", "describe-key", "--cli-input-json", '{"KeyId": "k", "Bogus": 1}')
    assert r.code == 252 and 'Unknown parameter in input: "Bogus"' in r.err
    r = cli("kms", "describe-key", "--cli-input-json", "{}")
    assert r.code == 252 and "the following arguments are required: --key-id" in r.err


def test_generate_cli_skeleton(cli) -> None:
    # input: every parameter with an empty value, from the service model (botocore's ArgumentGenerator)
    skeleton = json.loads(cli("kms", "encrypt", "--generate-cli-skeleton").out)
    assert skeleton["KeyId"] == "" and skeleton["EncryptionContext"] == {"KeyName": ""}
    assert set(OPERATIONS["encrypt"].params) <= set(skeleton)
    assert json.loads(cli("kms", "--generate-cli-skeleton", "input", "create-key").out)["Tags"] == [
        {"TagKey": "", "TagValue": ""}]
    as_yaml = cli("kms", "encrypt", "--generate-cli-skeleton", "yaml-input").text
    assert "KeyId: ''  # [REQUIRED]\n" in as_yaml and yaml.safe_load(as_yaml)["Plaintext"] is None  # as aws prints a blob
    # output: a sample response in the --output format; required parameters are still checked
    assert cli("kms", "describe-key", "--generate-cli-skeleton", "output").code == 252
    sample = cli("kms", "describe-key", "--key-id", "k", "--generate-cli-skeleton", "output",
                 "--query", "KeyMetadata.KeyId", "--output", "text")
    assert sample.code == 0 and sample.text == "KeyId\n"
    # the skeleton is fed back as --cli-input-json
    assert json.loads(cli("kms", "generate-random", "--cli-input-json",
                          json.dumps({"NumberOfBytes": 8})).out)["Plaintext"]


@pytest.mark.parametrize("argv,code", [
    (["kms", "list-keys", "--bogus"], 252),
    (["kms", "describe-key", "--key-id", "alias/none"], 254),
    (["kms", "list-keys", "--profile", "no-such-profile"], 253),
    (["kms", "list-keys", "--endpoint-url", "http://127.0.0.1:9", "--region", "us-east-1",
      "--cli-connect-timeout", "1"], 255),
    (["kms", "list-keys", "--kms", "embedded", "--endpoint-url", "http://127.0.0.1:9"], 252),
    (["kms", "list-keys", "--cli-read-timeout", "soon"], 252),
    (["kms", "list-keys", "--endpoint-url", "http://127.0.0.1:9"], 253),
    (["encrypt", "--bogus"], 2),
], ids=["unknown-option", "service-error", "unknown-profile", "unreachable", "contradiction", "bad-value",
        "no-region", "encrypt-keeps-its-codes"])
def test_aws_return_codes(cli, argv: list[str], code: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    r = cli(*argv)
    assert r.code == code, r.err


def test_no_credentials_is_a_configuration_error(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    r = cli("kms", "list-keys", "--endpoint-url", "http://127.0.0.1:9", "--region", "us-east-1")
    assert r.code == 253 and "Unable to locate credentials" in r.err and "create-access-key" in r.err


def test_paginators_match_botocore() -> None:
    # The paging configuration the CLI uses is the one botocore ships for KMS (paginators-1.json).
    botocore_session = pytest.importorskip("botocore.session")
    model = botocore_session.get_session().get_paginator_model("kms")
    for name, config in PAGINATORS.items():
        method = OPERATIONS[name].method
        api = "".join(part.capitalize() for part in method.split("_"))
        assert model.get_paginator(api) == config, name


def test_debug_logs_the_client_choice_not_secrets(cli) -> None:
    r = cli("--debug", "kms", "generate-random", "--number-of-bytes", "16")
    assert r.code == 0 and "calling the embedded KMS" in r.err
    assert json.loads(r.out)["Plaintext"] not in r.err
