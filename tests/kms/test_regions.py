"""The embedded KMS serves the AWS partition's KMS regions: the table matches botocore's endpoint
data, and a bad or unknown region is refused before anything is written to the data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from envelope.kms import LocalKMS
from envelope.kms.model import regions
from envelope.kms.model.regions import REGIONS, _generate


def test_table_matches_the_installed_botocore() -> None:
    botocore_session = pytest.importorskip("botocore.session")
    listed = botocore_session.get_session().get_available_regions("kms", partition_name="aws")
    assert sorted(REGIONS) == sorted(listed), "regenerate: python -m envelope.kms.model.regions"
    assert "us-east-1" in REGIONS and "eu-west-1" in REGIONS
    # The committed module is what the generator writes (the header line names the botocore version).
    assert _generate().split("REGIONS = ")[1] == Path(regions.__file__).read_text().split("REGIONS = ")[1]


@pytest.mark.parametrize(("name", "message"), [
    ("us-esat-1", "unknown region 'us-esat-1'; did you mean 'us-west-1' or 'us-east-1'?"),
    ("xx-nowhere-9", "unknown region 'xx-nowhere-9' (the regions of the AWS partition that have KMS)"),
    ("US-EAST-1", "not a region name: 'US-EAST-1'"),
    ("", "not a region name: ''"),
], ids=["typo", "unknown", "uppercase", "empty"])
def test_bad_region_leaves_nothing_behind(tmp_path: Path, name: str, message: str) -> None:
    data = tmp_path / "data"
    with pytest.raises(ValueError) as raised:
        LocalKMS(path=data, region=name)
    assert str(raised.value) == message
    assert not data.exists()  # no directory, root key or database file
    kms = LocalKMS(path=data)
    before = sorted(p.name for p in data.iterdir())
    with pytest.raises(ValueError, match="region"):
        kms.for_region(name)
    assert sorted(p.name for p in data.iterdir()) == before  # no file for the bad region


def test_cli_region_typo_leaves_no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from envelope_cli.main import main

    monkeypatch.setenv("ENVELOPE_DATA_DIR", str(tmp_path / "data"))
    assert main(["kms", "list-keys", "--region", "eu-wset-1"]) == 252  # usage error, numbered as aws does
    assert not (tmp_path / "data").exists()
    assert "unknown region 'eu-wset-1'; did you mean 'eu-west-1'?" in capsys.readouterr().err
