"""The names of LesionPaste's own files, and the marks inside them: spelled here once and used
by their writers, their readers and the output guard (which recognises an earlier output before
``--overwrite`` replaces it).

The layouts themselves (which of these names each kind of output holds) are the output guard's,
``lesionpaste.outputs``; the dataset's schema is ``lesionpaste.dataset_format``'s.
"""

# ---- the marks that say a file is ours
#: ``dataset.json``'s ``format``: a synthetic dataset or an evaluation set.
DATASET_FORMAT = "lesionpaste-dataset"
#: The bank file's (HDF5) ``format`` attribute.
BANK_FORMAT = "lesionpaste-bank"
#: PNG pictures the tools write carry this ``tEXt`` chunk (keyword ``Software``).
PNG_SOFTWARE = b"LesionPaste"
#: ``lesionpaste-export.json``'s ``format``: a dataset exported into another tool's layout.
EXPORT_FORMAT = "lesionpaste-export"

# ---- a dataset (lp-synth)
#: the dataset's record: its format, schema, configuration and every file's digest
DATASET_RECORD = "dataset.json"
#: one row per image: its path, label, tier, pair and digests
MANIFEST = "manifest.csv"
#: one record per pasted lesion (synthetic datasets)
PASTES = "pastes.jsonl"
#: one record per ground-truth mask (evaluation sets with masks)
MASKS_RECORD = "masks.jsonl"
#: the card: a dataset's, a run's (its model card) and an exported model's
CARD = "README.md"
#: a synthesis in progress: its resolved configuration, in the hidden ``.NAME.partial`` folder
JOB_CONFIG = "config.json"

# ---- a dataset exported into another tool's layout (lp-synth export)
#: the export's record: the layout, the source dataset's digests, every file
EXPORT_RECORD = "lesionpaste-export.json"
#: the source dataset's ``dataset.json``, copied
EXPORT_DATASET_COPY = "lesionpaste-dataset.json"
#: the source dataset's card, copied
EXPORT_CARD = "LESIONPASTE_CARD.md"
#: the imagefolder layout's table (read by Hugging Face ``datasets``)
EXPORT_METADATA = "metadata.jsonl"
#: the imagefolder layout's Hugging Face dataset card: the features (label names, column types)
EXPORT_HF_CARD = CARD

# ---- a run (lp-train)
#: the run's resolved configuration
RUN_CONFIG = "config.json"
#: the last finished epoch's model, optimizer and schedule
CHECKPOINT = "checkpoint.pt"
#: the kept epoch's checkpoint (``--keep-best``)
BEST = "best.pt"
#: one JSON line per epoch: losses, validation figures, the learning rate
LOG = "log.jsonl"
#: where the pretrained weights came from, in words
WEIGHTS_SOURCE = "weights_source.txt"
#: a run with maps: its image score and pixel threshold, chosen on validation pairs
MAPS_RECORD = "maps.json"
#: the operating thresholds set on synthetic validation
THRESHOLDS = "thresholds.json"
#: the run's input contract: how a new image is prepared for it
CONTRACT_FILE = "contract.json"
#: the run's latest evaluation, summarised for its model card
EVALUATION_RECORD = "evaluation.json"
#: cross-validation (``--folds``): a fold's record, and the summary over folds
FOLD_RECORD = "fold.json"
CV_RECORD = "cv.json"

# ---- an evaluation (lp-eval, lp-knn)
#: every image's path, label and score
SCORES = "scores.csv"
#: the AUCs with their intervals, operating points and pixel metrics
METRICS = "metrics.json"
#: the pictures: the ROC curves, Grad-CAM panels, anomaly maps
ROC_PICTURE = "roc.png"
CAM_PICTURE = "cam.png"
MAPS_PICTURE = "maps.png"

# ---- predictions (lp-predict)
#: the prediction's record: the detector, its contract, the thresholds, what was scored
PREDICTION_RECORD = "prediction.json"
PREDICTIONS_CSV = "predictions.csv"
PREDICTIONS_HTML = "predictions.html"
#: PNG folders: thumbnails, and anomaly maps (runs with maps)
THUMBS_DIR = "thumbs"
MAPS_DIR = "maps"

# ---- an exported model (lp-export)
#: the exported model's description, beside its one model file
MODEL_RECORD = "model.json"
#: each exported model format's one file name
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
