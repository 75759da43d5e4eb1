"""SIG — score-based instruction generation (Score2Instruct style).

experts.py (scores per dimension) → build.py (levels, records) with cot.py (hierarchical CoT),
instructions.py (question types), validate.py (rating protection), bench.py (S2I-style evaluation set).
The datasets it reads and the synthetic corpus live in ``llmvqa.corpus``. Import the submodules directly;
nothing heavy loads here.
"""
