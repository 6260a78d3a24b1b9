"""The regions of the AWS partition (``arn:aws:``) that have KMS: the regions the embedded KMS
serves. A name outside this table is refused before any database file is made for it.

Generated from botocore's endpoint data (the same source as the aws CLI's region list) by
``python -m envelope.kms.model.regions``; tests/kms/test_regions.py compares it with the installed
botocore. Regenerate when botocore lists a new region.
"""

from __future__ import annotations

import difflib
import re
import sys

__all__ = ["REGIONS", "check_region"]

# botocore 1.44.18, partition "aws", service "kms".
REGIONS = frozenset({
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
})

_REGION_NAME = re.compile(r"^[a-z]{2}(?:-[a-z0-9]+)+-\d{1,2}$")


def check_region(name: str) -> None:
    """Raise ValueError unless ``name`` is a region of `REGIONS` (with a "did you mean" when one
    is close, as for a mistyped ``us-esat-1``)."""
    if name in REGIONS:
        return
    if not isinstance(name, str) or not _REGION_NAME.match(name):
        raise ValueError(f"not a region name: {name!r}")
    close = difflib.get_close_matches(name, sorted(REGIONS), n=2, cutoff=0.8)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else \
        " (the regions of the AWS partition that have KMS)"
    raise ValueError(f"unknown region {name!r}{hint}")


def _generate() -> str:
    """This module's source with the table rebuilt from the installed botocore."""
    import botocore  # type: ignore[import-untyped]
    import botocore.session  # type: ignore[import-untyped]

    regions = botocore.session.get_session().get_available_regions("kms", partition_name="aws")
    with open(__file__, encoding="utf-8") as f:
        source = f.read()
    head, rest = source.split("# botocore ", 1)
    tail = rest.split("})\n", 1)[1]
    table = "".join(f'    "{r}",\n' for r in sorted(regions))
    return f'{head}# botocore {botocore.__version__}, partition "aws", service "kms".\nREGIONS = frozenset({{\n{table}}})\n{tail}'


if __name__ == "__main__":
    sys.stdout.write(_generate())
