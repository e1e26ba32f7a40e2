# `make test` and `make demo` create .venv on first use (see scripts/bootstrap.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mbrl-bound-installed

.PHONY: test demo lint clean

$(STAMP): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV) editable
	touch $(STAMP)

# One pytest-xdist worker per core; a file's tests stay on one worker (shared fixtures).
test: $(STAMP)
	$(PY) -m pytest -q -rs -n auto --dist loadfile

# A small bound run on InvertedPendulum-v5 (about 25 s on 2 CPU cores): mbrl's MBPO
# settings with a smaller budget, model and SAC.
demo: $(STAMP)
	$(VENV)/bin/mbrl-bound algorithm=bound overrides=mbpo_inv_pendulum_v5 \
	    overrides.num_steps=1000 algorithm.initial_exploration_steps=250 \
	    dynamics_model.hid_size=64 +overrides.num_epochs_train_model=20 \
	    overrides.effective_model_rollouts_per_step=40 overrides.num_sac_updates_per_step=2 \
	    overrides.sac_hidden_size=64 root_dir=./exp/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf exp outputs multirun .pytest_cache
