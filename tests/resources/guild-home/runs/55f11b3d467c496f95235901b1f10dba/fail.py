print("failing on purpose")
raise SystemExit(3)
