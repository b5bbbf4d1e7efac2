# The two commands a fresh machine needs (see README.md):
#   make run    install everything, then run the main job on the embedded defaults
#   make test   install everything, then run the test suite
NB201_TABLE ?= $(abspath ../shared/data/nb201/nb201_tabular.csv.gz)
export NAS_NB201_TABLE ?= $(NB201_TABLE)

.PHONY: install install-test run test bench-nb201

install:
	bash scripts/install.sh

# The install and Debian's chromium for the dashboard's browser tests (apt-get: root or sudo).
install-test:
	bash scripts/install.sh --browser

run: install
	bash scripts/demo.sh examples/mnist1d-random.yaml

# Three workers on a 2-core machine (the Ray and subprocess tests wait on other processes
# part of the time: 594 s against 648-675 s with two, BENCHMARKS.md), each taking whole test
# files (module fixtures stay in one process): every test already has its own database,
# port, Ray instance and temporary folders. Files go out in collection order, the longest
# first (tests/conftest.py), not xdist's most-tests-first.
test: install-test
	.venv/bin/python -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder --durations=15

bench-nb201: install
	.venv/bin/python bench/nb201_random.py
