"""The engine: run sources, the monitor and its log dir, the catalog of what it
captured, and the TensorBoard process. No Jupyter, tornado or ipywidgets here
(``tests/test_architecture.py`` checks it), so the command line, the server extension
and a kernel all build on it alike.

Data flows one way: sources (:mod:`.runs`, :mod:`.runsdir`, :mod:`.objectstore`)
→ the monitor (:mod:`.monitor`; :mod:`.targets` and :mod:`.scheduler` decide what a
pass reads and when, fed by :mod:`.fswatch` and :mod:`.watchplan`; :mod:`.logsync`
writes, with :mod:`.mirror`, :mod:`.summaries`, :mod:`.hparams`, :mod:`.naming`, and
a large first index in a child process, :mod:`.indexchild`) →
the log dir (:mod:`.layout`, :mod:`.tfevent`) → TensorBoard (:mod:`.tbprocess`,
reading the :mod:`.view` of the runs chosen) and the catalog (:mod:`.catalog`,
:mod:`.thumbnails`) that the REST API and the panel read.
"""
