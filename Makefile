# LesionPaste: every target sets up its own virtual environment in .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS ?= dev,ct,dask,lite,cam,onnx

DEMO_DATA := demo/data/idrid
DEMO_OUT  ?= demo/out
DEMO_REPORT ?= demo/report.html

.PHONY: venv test bench demo lint clean train-eyeq train-mosmed fuzz faults mutate gpu-check paper-eyepacs clients

# ---- make train-eyeq: the paper's EyeQ workflow (variables may come from the environment)
IDRID_ID   ?= idrid_48
IDRID_ROOT ?= $(LP_IDRID_ROOT)
EYEQ_ROOT  ?= $(LP_EYEQ_ROOT)
ARCH       ?= vgg16
EPOCHS     ?= 50
SIZE       ?= 256
BATCH      ?= 64
DEVICE     ?= auto
JOBS       ?= 2
SYNTH_OPTS ?=
TRAIN_OPTS ?=
WORK       ?= work/eyeq-$(IDRID_ID)
# EyeQ: Label_EyeQ_{train,test}.csv with train/ and test/ image folders. Otherwise one
# EyePACS-style labels.csv (+ images/): its grade-0 images are split 80/20 by a fixed hash, the
# twins made from the 80% and the evaluation made of everything else.
EYEQ_TRAIN = $(if $(wildcard $(EYEQ_ROOT)/Label_EyeQ_train.csv),--normals $(EYEQ_ROOT)/Label_EyeQ_train.csv --images $(EYEQ_ROOT)/train,--normals $(EYEQ_ROOT)/labels.csv --split train)
EYEQ_TEST  = $(if $(wildcard $(EYEQ_ROOT)/Label_EyeQ_test.csv),--images $(EYEQ_ROOT)/test --labels $(EYEQ_ROOT)/Label_EyeQ_test.csv --quality good,--images $(EYEQ_ROOT)/images --labels $(EYEQ_ROOT)/labels.csv --split rest)

# ---- make train-mosmed: the paper's MosMed protocol, 5-fold cross-validation by study
MOSMED_ID    ?= study_0255
MOSMED_ROOT  ?= $(LP_MOSMED_ROOT)
CT_EPOCHS    ?= 100
FOLDS        ?= 5
PER_STUDY    ?= 8
MOSMED_WORK  ?= work/mosmed-$(MOSMED_ID)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

venv: $(STAMP)

## Run the test suite (pytest's "no tests collected", exit 5, counts as a failure), one worker
## per core (at most TEST_WORKERS), each test file on one worker (its module fixtures made once).
TEST_WORKERS ?= 4
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --maxprocesses $(TEST_WORKERS) --dist loadfile; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; exit $$rc

## Benchmarks: each prints a table with ratios against a baseline measured in the same run.
bench: $(STAMP)
	$(BIN)/python bench/bench_bank.py
	$(BIN)/python bench/bench_synth.py
	$(BIN)/python bench/bench_train.py --arch resnet18 --size 64 --device cpu --maps
	$(BIN)/python bench/bench_train.py --arch smallcnn --size 64 --device cpu
	$(BIN)/python bench/bench_train.py --arch efficientnet_lite0 --size 256 --batch-size 32 \
		--images 128 --steps 3 --device cpu --freeze 5
	$(BIN)/python bench/bench_inference.py
	$(BIN)/python bench/bench_predict.py

## The GPU check: CUDA tests, training benchmarks, a short real-data run, torchrun, --maps;
## every figure into $(OUT)/gpu_check.json (or ./gpu_check.json) and a table. About 8 minutes
## on one H100/H200. GPU_CHECK_OPTS="--device cpu --tiny" runs it with tiny settings on a CPU.
GPU_CHECK_OPTS ?= --device cuda
## The exports read by their real clients: anomalib (MVTecAD, Folder) and Hugging Face datasets,
## installed into a side venv (.venv-clients) that also sees .venv's packages; then the export
## tests, which skip those clients where they are not installed (as in make test)
CLIENTS := .venv-clients
clients: $(STAMP)
	test -x $(CLIENTS)/bin/python || $(PYTHON) -m venv $(CLIENTS)
	echo "import site; site.addsitedir('$(abspath $(VENV))/lib/python$$($(BIN)/python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')/site-packages')" \
		> "$$($(CLIENTS)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/lesionpaste_venv.pth"
	$(CLIENTS)/bin/python -m pip install --quiet anomalib datasets
	$(CLIENTS)/bin/python -m pytest -q -p no:cacheprovider tests/test_export.py -rs

gpu-check: $(STAMP)
	$(BIN)/python bench/gpu_check.py $(GPU_CHECK_OPTS)

## The paper's protocol alone (VGG16 fully fine-tuned, 50 epochs, on the protocol's tuning part;
## the supervised baseline the same way; per grade on its test part): one GPU
paper-eyepacs: $(STAMP)
	$(BIN)/python bench/gpu_check.py --only paper $(GPU_CHECK_OPTS)

## The main job end to end on data bundled in the repo (CPU, a few minutes): a bank from
## IDRiD_03, twins of the training children of CHASE_DB1 (split by patient), EfficientNet-Lite0
## with the --maps decoder, then two tests: where (pixel AUROC of the maps against the lesion
## masks of held-out IDRiD images, next to Grad-CAM) and whether (held-out children against
## their twins made with IDRiD_13's lesions, never seen in training). demo/out/summary.json.
DEMO_TRAIN ?= --arch efficientnet_lite0 --epochs 60 --batch-size 8 --lr 0.01 --freeze 5 \
	--maps --val-fraction 0.25 --device cpu
## CHASE_DB1's photographs are used as they are, with the lesions' colours matched to them
DEMO_SYNTH ?= --size 256 --preprocess none --match-colour
## then the detector at work: lp-predict on the IDRiD photographs (raw, diseased), and the same
## through its ONNX export (lp-export): demo/out/predictions/predictions.html
DEMO_PHOTOS := $(DEMO_DATA)/A. Segmentation/1. Original Images/a. Training Set
demo: $(STAMP)
	mkdir -p $(DEMO_OUT)
	date +%s > $(DEMO_OUT)/started
	$(BIN)/lp-bank build idrid_03 --root $(DEMO_DATA) --out $(DEMO_OUT)/idrid_03.h5 --overwrite
	$(BIN)/lp-bank build idrid_13 --root $(DEMO_DATA) --out $(DEMO_OUT)/idrid_13.h5 --overwrite
	$(BIN)/lp-bank info $(DEMO_OUT)/idrid_03.h5 --json > $(DEMO_OUT)/bank.json
	$(BIN)/lp-bank info $(DEMO_OUT)/idrid_13.h5 --json > $(DEMO_OUT)/bank13.json
	$(BIN)/lp-bank preview $(DEMO_OUT)/idrid_03.h5 -o $(DEMO_OUT)/bank_sheet.png --overwrite
	$(BIN)/lp-synth --bank $(DEMO_OUT)/idrid_03.h5 --normals demo/data/chase_db1 --split train \
		--split-fraction 0.5 --ratios 0.8,0.1,0.05,0.05 $(DEMO_SYNTH) --out $(DEMO_OUT)/twins \
		--overwrite -j 2
	$(BIN)/lp-synth verify $(DEMO_OUT)/twins
	$(BIN)/lp-synth preview $(DEMO_OUT)/twins -o $(DEMO_OUT)/twins.png --overwrite
	$(BIN)/lp-synth --bank $(DEMO_OUT)/idrid_13.h5 --normals demo/data/chase_db1 --split rest \
		--split-fraction 0.5 $(DEMO_SYNTH) --out $(DEMO_OUT)/unseen --overwrite -j 2
	$(BIN)/lp-synth prep --images $(DEMO_DATA) --bank $(DEMO_OUT)/idrid_03.h5 \
		--like $(DEMO_OUT)/twins --out $(DEMO_OUT)/where --overwrite
	$(BIN)/lp-train $(DEMO_OUT)/twins --out $(DEMO_OUT)/run $(DEMO_TRAIN) --overwrite
	$(BIN)/lp-eval $(DEMO_OUT)/run $(DEMO_OUT)/where --out $(DEMO_OUT)/run/eval-where --maps \
		--device cpu --overwrite
	$(BIN)/lp-eval $(DEMO_OUT)/run $(DEMO_OUT)/unseen --out $(DEMO_OUT)/run/eval-whether \
		--device cpu --overwrite
	$(BIN)/lp-predict $(DEMO_OUT)/run "$(DEMO_PHOTOS)" -o $(DEMO_OUT)/predictions --overwrite \
		--device cpu
	$(BIN)/lp-export $(DEMO_OUT)/run --format onnx -o $(DEMO_OUT)/export --overwrite
	$(BIN)/lp-predict $(DEMO_OUT)/export "$(DEMO_PHOTOS)" -o $(DEMO_OUT)/predictions-onnx \
		--overwrite -q
	$(BIN)/python demo/report.py $(DEMO_OUT) $(DEMO_REPORT)

## The paper's EyeQ workflow; each step is skipped when its output is already there.
train-eyeq: $(WORK)/run/eval/metrics.json
	@cat $(WORK)/run/eval/metrics.json

$(WORK)/bank.h5: | $(STAMP)
	@test -n "$(IDRID_ROOT)" || { echo "set IDRID_ROOT (or LP_IDRID_ROOT) to the IDRiD tree" >&2; exit 2; }
	$(BIN)/lp-bank build $(IDRID_ID) --root $(IDRID_ROOT) --out $@ --overwrite

$(WORK)/synth/dataset.json: $(WORK)/bank.h5
	@test -n "$(EYEQ_ROOT)" || { echo "set EYEQ_ROOT (or LP_EYEQ_ROOT) to the EyeQ folder" >&2; exit 2; }
	$(BIN)/lp-synth --bank $< $(EYEQ_TRAIN) --size $(SIZE) -j $(JOBS) $(SYNTH_OPTS) \
		--out $(WORK)/synth --overwrite

$(WORK)/test/dataset.json: $(WORK)/synth/dataset.json
	$(BIN)/lp-synth prep $(EYEQ_TEST) --bank $(WORK)/bank.h5 --like $(WORK)/synth -j $(JOBS) \
		--out $(WORK)/test --overwrite

$(WORK)/run/checkpoint.pt: $(WORK)/synth/dataset.json
	$(BIN)/lp-train $(WORK)/synth --out $(WORK)/run --arch $(ARCH) --epochs $(EPOCHS) \
		--batch-size $(BATCH) --size $(SIZE) --device $(DEVICE) $(TRAIN_OPTS)

$(WORK)/run/eval/metrics.json: $(WORK)/run/checkpoint.pt $(WORK)/test/dataset.json
	$(BIN)/lp-eval $(WORK)/run $(WORK)/test --out $(WORK)/run/eval --device $(DEVICE) --overwrite

## The paper's MosMed protocol: a bank from one annotated study, twins of CT-0 slices, an
## evaluation set of CT-0 slices (0) and lesion slices (1), 5-fold cross-validation by study.
train-mosmed: $(MOSMED_WORK)/run/cv.json
	@cat $(MOSMED_WORK)/run/cv.json | $(BIN)/python -c "import json, sys; \
	  print(json.dumps(json.load(sys.stdin)['auc'], indent=2))"

$(MOSMED_WORK)/bank.h5: | $(STAMP)
	@test -n "$(MOSMED_ROOT)" || { echo "set MOSMED_ROOT (or LP_MOSMED_ROOT) to the MosMed folder" >&2; exit 2; }
	$(BIN)/lp-bank build $(MOSMED_ID) --root $(MOSMED_ROOT) --out $@ --overwrite

$(MOSMED_WORK)/synth/dataset.json: $(MOSMED_WORK)/bank.h5
	$(BIN)/lp-synth --bank $< --normals $(MOSMED_ROOT) --per-study $(PER_STUDY) --size $(SIZE) \
		-j $(JOBS) $(SYNTH_OPTS) --out $(MOSMED_WORK)/synth --overwrite

$(MOSMED_WORK)/eval/dataset.json: $(MOSMED_WORK)/synth/dataset.json
	$(BIN)/lp-synth prep --images $(MOSMED_ROOT) --per-study $(PER_STUDY) --bank $(MOSMED_WORK)/bank.h5 \
		--like $(MOSMED_WORK)/synth -j $(JOBS) --out $(MOSMED_WORK)/eval --overwrite

$(MOSMED_WORK)/run/cv.json: $(MOSMED_WORK)/synth/dataset.json $(MOSMED_WORK)/eval/dataset.json
	$(BIN)/lp-train $(MOSMED_WORK)/synth --out $(MOSMED_WORK)/run --eval $(MOSMED_WORK)/eval \
		--folds $(FOLDS) --arch $(ARCH) --epochs $(CT_EPOCHS) --batch-size $(BATCH) --size $(SIZE) \
		--device $(DEVICE) $(TRAIN_OPTS)

## A longer fuzzing of the readers of shared files (bank, dataset.json, manifest, labels, masks).
fuzz: $(STAMP)
	LP_FUZZ_EXAMPLES=2000 $(BIN)/python -m pytest -q tests/test_fuzz_readers.py

## A longer fault loop: each tool SIGKILLed KILL_ROUNDS times at seeded random points.
KILL_ROUNDS ?= 40
KILL_SEED   ?= 1
faults: $(STAMP)
	LP_KILL_ROUNDS=$(KILL_ROUNDS) LP_KILL_SEED=$(KILL_SEED) $(BIN)/python -m pytest -q -s \
	    tests/test_faults.py -k killed

## Mutation testing of the modules whose bugs change results ([mutmut] in setup.cfg lists them);
## not part of make test (35 minutes from a fresh clone on 2 cores). Incremental: a rerun retests what changed.
## Prints the score per module and every surviving mutant (tests/mutation_score.py).
SHARED_DATA ?= $(abspath ../shared/data)
mutate: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS),mutate]'
	LP_SHARED_DATA=$(SHARED_DATA) $(BIN)/mutmut run > mutants.log 2>&1 || { tail -40 mutants.log; exit 1; }
	$(BIN)/python tests/mutation_score.py

lint: $(STAMP)
	$(BIN)/ruff check lesionpaste bank_builder synth train tests bench

clean:
	rm -rf $(DEMO_OUT) demo/report.html .pytest_cache build *.egg-info mutants mutants.log
