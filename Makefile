# Developer shortcuts. The product is the `regress` command; see README.md.
PY ?= .venv/bin/python
REGRESS ?= .venv/bin/regress
SAMPLE_OLD = tests/testdata/report/ps-loop-old.json
SAMPLE_NEW = tests/testdata/report/ps-loop-new.json

.PHONY: test lint screenshot

test:
	$(PY) -m pytest

lint:
	$(PY) -m ruff check regress tests bench
	$(PY) -m ruff format --check regress tests bench
	$(PY) -m mypy

# Render the sample ps-loop comparison (real differ on the sample captures) as
# HTML and text, then screenshot it in headless Chromium at desktop and phone
# width: reports/sample-report-{desktop,phone}.png. Fails on any console error
# or network request.
screenshot:
	$(REGRESS) report $(SAMPLE_OLD) $(SAMPLE_NEW) -o reports/sample-report.html
	$(REGRESS) report $(SAMPLE_OLD) $(SAMPLE_NEW) --text reports/sample-report.txt
	PYTHONPATH=tests $(PY) -m support.chromium reports/sample-report.html reports
