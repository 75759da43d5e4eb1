"""SIG — score-based instruction generation (Score2Instruct style).

experts.py (scores per dimension) → build.py (levels, records) with cot.py (hierarchical CoT),
instructions.py (question types), validate.py (rating protection), datasets.py (adapters),
paths.py (safe relative video paths), bench.py (S2I-style evaluation set); synth.py writes an
offline graded corpus. Import the submodules directly; nothing heavy loads here.
"""
