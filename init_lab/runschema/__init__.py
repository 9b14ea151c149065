"""The run schema: what a run directory records, declared once.

``axes``: the grid axes (name, values' type, label in a trial id, column in every frame and file);
``columns``: the columns of every per-trial table and of summary.csv; ``records``: the typed rows and
records (an epoch, a logged step, a trial's record, the manifest) with one serializer each, and the
sweep's status. Every layer above uses these; nothing here imports TensorFlow or pandas.
"""
