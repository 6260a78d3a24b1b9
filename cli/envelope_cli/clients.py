"""Which KMS the CLI calls: the embedded service (default) or boto3 with the standard credential chain.

boto3 is chosen by ``--kms aws``, or when an endpoint or profile is given (``--endpoint-url``,
``--profile``, ``$AWS_ENDPOINT_URL_KMS``, ``$AWS_ENDPOINT_URL``); ``--kms embedded`` forces the
embedded service. ``$ENVELOPE_KMS`` (embedded | aws) sets the default. Both clients take and
return boto3's shapes, so every command and keyring works with either.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import envelope

from .exits import CLIError, ExitCode
from .globalopts import GlobalOptions

__all__ = ["call", "configure_debug", "default_region", "is_remote", "kms_client", "local_kms", "region_of",
           "sts_identity"]

_DEFAULT_REGION = "us-east-1"

_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL")
_CHOICES = ("embedded", "aws")


def is_remote(opts: GlobalOptions) -> bool:
    """True when the calls go through boto3: ``--kms`` if given; else an endpoint or profile flag;
    else ``$ENVELOPE_KMS``; else an endpoint variable; else the embedded service."""
    if opts.kms is not None:
        if opts.kms == "embedded" and (opts.endpoint_url or opts.profile):
            raise CLIError("--endpoint-url and --profile name a remote KMS; they cannot go with --kms embedded",
                           ExitCode.AWS_USAGE)
        return opts.kms == "aws"
    if opts.endpoint_url or opts.profile:
        return True
    choice = os.environ.get("ENVELOPE_KMS")
    if choice:
        if choice not in _CHOICES:
            raise CLIError(f"ENVELOPE_KMS={choice!r}: expected embedded or aws", ExitCode.AWS_CONFIG)
        return choice == "aws"
    return any(os.environ.get(name) for name in _ENDPOINT_VARIABLES)


def region_of(opts: GlobalOptions) -> str | None:
    return opts.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def configure_debug(opts: GlobalOptions) -> Callable[[], None]:
    """--debug: log envelope's and botocore's steps to stderr; returns the function that undoes it.

    botocore's wire dumps (request and response bodies, which carry plaintext and data keys) stay
    off: secrets never reach a log.
    """
    if not opts.debug:
        return lambda: None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    changed: list[tuple[logging.Logger, int]] = []
    for name, level in (("envelope", logging.DEBUG), ("envelope_cli", logging.DEBUG), ("botocore", logging.DEBUG),
                        ("boto3", logging.DEBUG), ("botocore.endpoint", logging.INFO),
                        ("botocore.parsers", logging.INFO), ("botocore.hooks", logging.INFO),
                        ("urllib3.connectionpool", logging.INFO)):
        logger = logging.getLogger(name)
        changed.append((logger, logger.level))
        logger.setLevel(level)
    top = [logging.getLogger(name) for name in ("envelope", "envelope_cli", "botocore", "boto3")]
    for logger in top:
        logger.addHandler(handler)

    def undo() -> None:
        for logger in top:
            logger.removeHandler(handler)
        for logger, level in changed:
            logger.setLevel(level)

    return undo


_log = logging.getLogger("envelope_cli")
_remote_cache: dict[tuple[Any, ...], Any] = {}


def _boto3_client(opts: GlobalOptions, service: str, region: str | None) -> Any:
    try:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]
        from botocore.exceptions import BotoCoreError  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - boto3 comes with the cli extra
        raise CLIError("calling a KMS endpoint needs boto3", ExitCode.AWS_CONFIG,
                       hint="pip install 'envelope-crypto[cli]'") from None
    verify: bool | str | None = False if opts.no_verify_ssl else opts.ca_bundle
    # The credential chain reads the environment: a client is reused only while it is unchanged.
    environment = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    key = (service, opts.profile, region, opts.endpoint_url, verify, opts.cli_read_timeout, opts.cli_connect_timeout,
           environment)
    if key in _remote_cache:
        return _log_remote(_remote_cache[key], service, opts)
    config: dict[str, Any] = {}
    # 0 means "no timeout" to the aws CLI; botocore takes None for that.
    if opts.cli_read_timeout is not None:
        config["read_timeout"] = opts.cli_read_timeout or None
    if opts.cli_connect_timeout is not None:
        config["connect_timeout"] = opts.cli_connect_timeout or None
    try:
        session = boto3.session.Session(profile_name=opts.profile, region_name=region)
        client = session.client(service, endpoint_url=opts.endpoint_url, verify=verify, config=Config(**config))
    except BotoCoreError as exc:  # unknown profile, no region, bad endpoint URL
        raise _config_error(exc) from None
    _remote_cache[key] = client
    return _log_remote(client, service, opts)


def _log_remote(client: Any, service: str, opts: GlobalOptions) -> Any:
    _log.debug("calling %s through boto3: endpoint %s, region %s, profile %s", service,
               client.meta.endpoint_url, client.meta.region_name, opts.profile or "(default chain)")
    return client


def kms_client(opts: GlobalOptions, region: str | None = None) -> Any:
    """The KMS client the options select: LocalKMS (embedded) or a boto3 KMS client."""
    region = region or region_of(opts)
    if is_remote(opts):
        if opts.principal:
            raise CLIError("--principal applies to the embedded service only", ExitCode.AWS_USAGE,
                           hint="with --endpoint-url or --profile the caller is whoever the credentials name")
        return _boto3_client(opts, "kms", region)
    _log.debug("calling the embedded KMS: region %s", region or "(default)")
    return local_kms(region, opts.principal)


def sts_identity(opts: GlobalOptions) -> dict[str, Any]:
    """GetCallerIdentity from the endpoint, or the embedded client's principal."""
    if is_remote(opts):
        return dict(call(_boto3_client(opts, "sts", region_of(opts)).get_caller_identity, {},
                         "GetCallerIdentity"))
    client = kms_client(opts)
    arn = client.principal
    user_id = client.account if arn.endswith(":root") else arn.rsplit("/", 1)[-1]
    return {"UserId": user_id, "Account": client.account, "Arn": arn}


def default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or _DEFAULT_REGION


_clients: dict[tuple[str | None, str, str | None], Any] = {}


def local_kms(region: str | None = None, principal: str | None = None) -> Any:
    """The embedded KMS client for ``region``, calling as ``principal`` or $ENVELOPE_PRINCIPAL.

    One client per data directory, region and principal per process.
    """
    region = region or default_region()
    principal = principal or os.environ.get("ENVELOPE_PRINCIPAL") or None
    cache_key = (os.environ.get("ENVELOPE_DATA_DIR"), region, principal)
    if cache_key not in _clients:
        try:
            from envelope.kms import LocalKMS
        except ImportError as exc:  # pragma: no cover - depends on the build
            raise CLIError(f"the embedded KMS is not available: {exc}", ExitCode.KEY) from None
        if principal is None:
            _clients[cache_key] = LocalKMS(region=region)
        else:
            parts = principal.split(":")
            if len(parts) < 6 or not parts[4]:
                raise CLIError(f"not an IAM principal ARN: {principal!r}", ExitCode.USAGE,
                               hint="for example arn:aws:iam::111122223333:role/App")
            _clients[cache_key] = LocalKMS(region=region, account=parts[4], principal=principal)
    return _clients[cache_key]


def _config_error(exc: BaseException) -> CLIError:
    from botocore.exceptions import NoCredentialsError, NoRegionError

    hint = None
    if isinstance(exc, NoRegionError):
        hint = "pass --region, or set AWS_REGION / AWS_DEFAULT_REGION or the profile's region"
    elif isinstance(exc, NoCredentialsError):
        hint = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or pass --profile; for an `envelope kms serve`, "
                "`envelope kms create-access-key` makes a key")
    return CLIError(str(exc), ExitCode.AWS_CONFIG, hint=hint)


def call(method: Callable[..., Any], params: dict[str, Any], operation: str) -> Any:
    """Call ``method`` and turn any client's failure into the aws CLI's message and return code."""
    try:
        return method(**params)
    except envelope.KMSError as exc:  # the embedded service
        raise CLIError(f"An error occurred ({exc.code}) when calling the {operation} operation: "
                       f"{Exception.__str__(exc)}", ExitCode.AWS_SERVICE, hint=exc.hint) from None
    except CLIError:
        raise
    except Exception as exc:  # botocore's exceptions are translated, others re-raised
        translated = translate(exc)
        if translated is exc:
            raise
        raise translated from None


def translate(exc: Exception) -> Exception:
    """botocore's exceptions as the aws CLI reports them; anything else unchanged."""
    try:
        from botocore.exceptions import (
            ClientError,
            NoCredentialsError,
            NoRegionError,
            ParamValidationError,
            PartialCredentialsError,
            ProfileNotFound,
        )
    except ImportError:  # pragma: no cover
        return exc
    if isinstance(exc, ClientError):
        return CLIError(str(exc), ExitCode.AWS_SERVICE)
    if isinstance(exc, ParamValidationError):
        return CLIError(str(exc).strip(), ExitCode.AWS_USAGE)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError, ProfileNotFound, NoRegionError)):
        return _config_error(exc)
    from botocore.exceptions import BotoCoreError

    if isinstance(exc, BotoCoreError):  # connection refused, timeouts, SSL failures
        return CLIError(str(exc), ExitCode.AWS_FAILURE)
    return exc
