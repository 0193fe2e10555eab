"""The Jupyter server extension: the app that owns one monitor and one TensorBoard
per server (:mod:`.app`), the REST API (:mod:`.handlers`) and the authenticated
TensorBoard proxy (:mod:`.proxy`). Imports jupyter_server; nothing else does."""
