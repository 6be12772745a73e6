"""What researchers own in the catalog, without Dagster: their keys (``researchers``), their
collections (``collections``), their requests by accession number (``requests``), the runs a
request or an arrival of files needs (``planning``, as plain data), and cohort exports
(``exports``). The sensors, the API's job worker and the ``quire`` command all call these."""
