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


def _open_new_catalog(uri: str, barrier) -> None:
    from quire_assets.catalog import open_catalog

    barrier.wait()  # all open it at the same moment
    with open_catalog(uri) as catalog:
        catalog.upsert("studies", [{"study_instance_uid": "x"}])


def test_processes_opening_a_new_catalog_at_once_all_succeed(tmp_path):
    """Runs forked side by side may both create the catalog: switching a new database to WAL fails
    at once for all but one of them unless the switch is tried again (3 of 120 failed before)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    failed = 0
    for trial in range(20):
        barrier = context.Barrier(6)
        uri = f"sqlite:///{tmp_path / str(trial) / 'catalog.db'}"
        processes = [context.Process(target=_open_new_catalog, args=(uri, barrier)) for _ in range(6)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        failed += sum(p.exitcode != 0 for p in processes)
    assert failed == 0
