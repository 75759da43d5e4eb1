"""Corpora and datasets that SIG, training and evaluation share.

datasets.py (readers of rated-video datasets: CSV/JSON lists, KoNViD/LIVE-VQC/... layouts) with paths.py
(safe relative video paths); synth.py (the offline graded synthetic corpus) from sources.py (real and
procedural source clips) and degradations.py (the degradations and their targets); chains.py (degradation
chains: a clip ranked below its less degraded self). Import the submodules directly; nothing heavy loads here.
"""
