"""`autoc devices` lists every profile a search can name: shipped and calibrated, with the space
each covers and its held-out validation figures."""
from dataclasses import replace

from autoc.cli import main
from autoc.latency.profile import load_profile, save_profile
from autoc.latency.shipped import shipped_path


def rows(out: str) -> dict[tuple[str, str], list[str]]:
    """(device, kind) -> the row's cells split on runs of two or more spaces."""
    import re

    table = {}
    for line in out.splitlines()[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 7:
            table[cells[0], cells[1]] = cells
    return table


def test_devices_lists_the_shipped_profiles_with_their_space_source_and_validation(tmp_path, capsys):
    assert main(["devices", "--runs-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["device", "kind", "space", "within", "10%", "tau", "held", "out", "source"]
    table = rows(out)
    assert set(table) == {("note10", "shipped"), ("pixel2", "shipped"), ("pixel3", "shipped"), ("raspi4", "shipped")}
    pixel3 = table["pixel3", "shipped"]
    assert pixel3[2:6] == ["fbnet-cifar", "100.0%", "1.000", "4000"]
    assert "fbnet_latency_pixel3_raspi4_pixel2.csv.gz, fitted on 1000" in pixel3[6]
    note10 = table["note10", "shipped"]
    assert note10[2:6] == ["ofa-mbv3 at 160/176/192/208/224 px", "-", "-", "0"]
    assert note10[6].startswith("ofa-lut: 160_lookup_table.yaml") and "224_lookup_table.yaml" in note10[6]
    assert "no calibrated profiles under" in out
    assert not (tmp_path / "runs").exists()  # listing writes nothing


def test_devices_lists_calibrated_profiles_a_host_one_covering_any_space_and_marks_replaced_shipped_ones(
        tmp_path, capsys):
    devices = tmp_path / "runs" / "devices"
    shipped = load_profile(shipped_path("raspi4"))
    save_profile(replace(shipped, validation={"n": 3, "within_10pct": 2 / 3, "mape_pct": 5.0, "kendall_tau": 0.5, "worst": []}), devices / "raspi4.json")
    save_profile(replace(shipped, device="host", space={}), devices / "host-t2.json")
    (devices / "broken.json").write_text("{not json")
    assert main(["devices", "--runs-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    table = rows(out)
    assert table["raspi4", "calibrated"][2:6] == ["fbnet-cifar", "66.7%", "0.500", "3"]
    assert ("raspi4", "shipped (replaced)") in table
    assert table["host (--threads 2)", "calibrated"][2] == "any"
    assert "unreadable: device profile" in table["broken", "calibrated"][6]
    assert "no calibrated profiles" not in out
