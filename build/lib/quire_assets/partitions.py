"""The accession partitions, shared by assets, jobs and sensors.

A partition key is the accession number verbatim. Studies without one are keyed
``no-accession:<StudyInstanceUID>``; files with neither (non-DICOM files, junk) share
``no-accession:other-files``. Both are longer than the 16 characters an AccessionNumber may hold.
"""

from dagster import DynamicPartitionsDefinition

accession_partitions = DynamicPartitionsDefinition(name="accessions")
