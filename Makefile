# `make test` and `make demo` create .venv on first use (see scripts/bootstrap.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mbrl-bound-installed

.PHONY: test demo lint clean

$(STAMP): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV) editable
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -rs

# A small bound run on InvertedPendulum-v5 (about two minutes on 2 CPU cores).
demo: $(STAMP)
	$(VENV)/bin/mbrl-bound algorithm=bound overrides=mbpo_inv_pendulum_v5 \
	    overrides.num_steps=1000 algorithm.initial_exploration_steps=250 \
	    overrides.effective_model_rollouts_per_step=40 overrides.num_sac_updates_per_step=2 \
	    root_dir=./exp/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf exp outputs multirun .pytest_cache
