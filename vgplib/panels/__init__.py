"""The book layer's figures and live panels: one module ``chNN`` per chapter (for example
``vgplib.panels.ch02``) and one per back-matter page that needs code (``practice``: the practice
questions' self-checks).

A module holds the chapter's ``make_figure() -> (fig, update)`` functions, its panel factories
decorated with :func:`vgplib.widgets.register_panel` (each returns a new :class:`~vgplib.widgets.LivePanel`)
and the matching scrubbers. :func:`vgplib.widgets.all_panels` imports every module here, so a new
chapter file is picked up by the slider corner-sweep test and by ``bench/bench_panels.py`` with no
other edit. Notebooks call the same functions (``ch02.matrix_panel()``), so what the reader sees is
what the tests and the benchmark drive.
"""
