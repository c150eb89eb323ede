"""Many scenes through dask.distributed: ``python -m psdnet_qgis batch JOBS.csv --out-dir DIR``.

- :mod:`.jobs`: the jobs CSV -> checked ``Job`` objects (standard library only at import);
- :mod:`.runner`: one ``engine.run.pansharpen`` per scene on a local or remote dask cluster
  (dask imported only inside its functions);
- :mod:`.cli`: the ``batch`` subcommand's options and the run they start.
"""
