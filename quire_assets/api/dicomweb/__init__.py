"""DICOMweb over the catalog: QIDO-RS searches and WADO-RS retrieval (``routes.py``), served by
``quire serve`` beside the API at ``/dicomweb``."""
