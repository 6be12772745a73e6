"""Two processes write different accessions into one SQLite catalog at the same time."""

from __future__ import annotations

import multiprocessing

from quire_assets.catalog import open_catalog


def _writer(uri: str, accession: str, n: int, barrier) -> None:
    catalog = open_catalog(uri)
    barrier.wait()  # both start writing at once
    for round_ in range(3):
        study = f"{accession}.study"
        series = [{"series_instance_uid": f"{accession}.s", "study_instance_uid": study, "num_instances": n,
                   "partition_key": accession, "modality": "CT"}]
        instances = [{"sop_instance_uid": f"{accession}.{i}", "series_instance_uid": f"{accession}.s",
                      "study_instance_uid": study, "partition_key": accession, "uri": f"/x/{accession}/{i}",
                      "round": round_} for i in range(n)]
        studies = [{"study_instance_uid": study, "accession_number": accession, "patient_id": f"P-{accession}",
                    "partition_key": accession, "num_series": 1, "num_instances": n, "modalities": ["CT"]}]
        catalog.replace_partitions([accession], instances, series, studies, [])
    catalog.close()


def test_two_processes_write_at_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    open_catalog(uri).close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(uri, acc, 3000, barrier)) for acc in ("ACC-A", "ACC-B")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    catalog = open_catalog(uri)
    assert catalog.count("instances") == 6000
    assert catalog.count("instances", {"partition_key": "ACC-A", "round": 2}) == 3000
    assert catalog.count("patients") == 2
    assert catalog.integrity()["ok"]
