"""The engine: run sources, the monitor and its log dir, the catalog of what it
captured, and the TensorBoard process. No Jupyter, tornado or ipywidgets here
(``tests/test_architecture.py`` checks it), so the command line, the server extension
and a kernel all build on it alike.

Data flows one way: sources (:mod:`.runs`) → the monitor (:mod:`.monitor`, with
:mod:`.mirror`, :mod:`.summaries`, :mod:`.hparams`, :mod:`.naming`) → the log dir
(:mod:`.layout`, :mod:`.tfevent`) → TensorBoard (:mod:`.tbprocess`) and the
catalog (:mod:`.catalog`) that the REST API and the panel read.
"""
