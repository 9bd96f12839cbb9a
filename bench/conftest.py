# Benchmarks live outside tests/ so that `pytest tests` never collects them; run them
# with `pytest bench --benchmark-only`.  bench/ is put on sys.path for `import harness`.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
