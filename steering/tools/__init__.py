"""Command-line tools around the sampler: train the ERD network, benchmark it, tune stop rules.

Each is a console command and a module: ``smart-scan-train`` (``python -m steering.tools.train``),
``smart-scan-bench`` (``python -m steering.tools.bench``), ``smart-scan-tune``
(``python -m steering.tools.tune``). They need the ``tools`` extra (scikit-image's bundled images,
python-adaptive for the benchmark's baseline).
"""
