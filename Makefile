# The same commands for people and CI. `make help` lists them.
.PHONY: help setup demo test stop check unit security hapi-start hapi-stop

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup:  ## install everything (Debian packages when missing, .venv with the project)
	scripts/setup.sh

demo:  ## main job: HAPI sandbox + iop-bridge on SQLite + the demo step-down slice
	scripts/demo.sh

test:  ## the whole suite as CI runs it: checks, unit, component, live (HAPI started here)
	scripts/test.sh

stop:  ## stop the servers `make demo` started
	scripts/stop.sh

check:  ## ruff, mypy, import-linter only
	scripts/setup.sh && .venv/bin/ruff check . && .venv/bin/mypy && .venv/bin/lint-imports

unit:  ## fast tiers only (no HAPI): unit + component
	scripts/setup.sh && .venv/bin/pytest -m "not live"

security:  ## the security review as tests: tests/security (live: HAPI must be up), access matrix, schemathesis
	scripts/setup.sh && .venv/bin/pytest tests/security tests/component/api/test_access_matrix.py tests/component/api/test_schemathesis.py

hapi-start:  ## start the HAPI sandbox on 127.0.0.1:8090 (HAPI_PORT to change)
	sandbox/hapi/start.sh

hapi-stop:  ## stop the HAPI sandbox
	sandbox/hapi/stop.sh
