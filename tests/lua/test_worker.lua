error("not written yet")
