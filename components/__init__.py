"""genloop components: plain Python for every stage, importable without Prefect.

Nothing here imports prefect, flows/ or deploy/, and heavy libraries are imported inside
the functions that need them.
"""
