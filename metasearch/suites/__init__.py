"""Task suites, loaders and splits.

>>> from metasearch.suites import get_suite, split_tasks
>>> splits = split_tasks(get_suite("arith").load(), seed=0, n_val=20, n_test=50)
>>> len(splits.validation), len(splits.test)
(20, 50)
"""

from metasearch.suites.loaders import FieldMap, load_hf, load_tasks, read_rows
from metasearch.suites.registry import Suite, get_suite, list_suites
from metasearch.suites.splits import Splits, load_split, split_tasks
from metasearch.suites.task import Task

__all__ = [
    "FieldMap",
    "Splits",
    "Suite",
    "Task",
    "get_suite",
    "list_suites",
    "load_hf",
    "load_split",
    "load_tasks",
    "read_rows",
    "split_tasks",
]
