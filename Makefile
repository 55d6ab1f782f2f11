# The two commands of the README. Both set up what they need first (idempotent):
# Debian packages, .venv with the compiled extension, npm tools.
.PHONY: run test bench setup

setup:
	@bash scripts/bootstrap.sh

run: setup            ## the local devnet (anvil + contracts + sequencer + poster)
	.venv/bin/optrollup devnet $(ARGS)

test: setup           ## the whole suite, accelerated and with the pure-Python twin
	@bash scripts/test.sh $(ARGS)

bench: setup          ## pytest-benchmark suites (not part of `make test`)
	.venv/bin/python -m pytest benchmarks -p no:cacheprovider $(ARGS)
