"""Write demo/report.html from the outputs of `make demo` (a smoke-scale run)."""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path


def main(out_dir: str = "demo/out", report: str = "demo/report.html") -> None:
    out = Path(out_dir)
    page = Path(report)
    metrics = json.loads((out / "run/eval/metrics.json").read_text())
    log = [json.loads(line) for line in (out / "run/log.jsonl").read_text().splitlines()]
    twins = json.loads((out / "twins/dataset.json").read_text())
    evaluation = json.loads((out / "eval/dataset.json").read_text())
    bank = json.loads((out / "bank.json").read_text())
    rel = lambda p: html.escape(str(Path(p).relative_to(page.parent)))
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{e['auc']:.3f}</td>"
        f"<td>[{e['ci_low']:.3f}, {e['ci_high']:.3f}]</td><td>{e['n_pos']}</td>"
        f"<td>{e['n_neg']}</td></tr>"
        for name, e in metrics["auc"].items()
    )
    epochs = "".join(
        f"<tr><td>{e['epoch']}</td><td>{e['loss']:.4f}</td><td>{e.get('val_auc', float('nan')):.3f}</td>"
        f"<td>{e['images_per_s']:.1f}</td></tr>" for e in log
    )
    counts = ", ".join(f"{t} {n}" for t, n in bank["counts"].items())
    cam = out / "run/eval/cam.png"
    page.write_text(f"""<!doctype html>
<html><head><meta charset="utf-8"><title>LesionPaste demo report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}}
img{{max-width:100%;border:1px solid #ccc}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}.note{{background:#fff4d6;padding:1em}}</style>
</head><body>
<h1>LesionPaste demo</h1>
<p class="note"><b>This is a smoke-scale run</b>, made by <code>make demo</code> in a few minutes on
a CPU: one annotated IDRiD image, {twins['counts']['normal']} normal CHASE_DB1 photographs and
their twins, a pretrained EfficientNet-Lite0 trained for {len(log)} epochs at
{twins['config']['size']}x{twins['config']['size']} pixels, and {evaluation['counts']['images']}
evaluation images. The evaluation's abnormal images
(IDRiD) come from another camera and population than its normal ones (CHASE_DB1, children), so
its AUC says that the pipeline runs end to end, not how well the method detects disease. The
paper's results need EyeQ and MosMed at full scale (<code>make train-eyeq</code>).</p>
<h2>1. The lesion bank</h2>
<p>{bank['n_lesions']} lesions ({html.escape(counts)}) from {html.escape(bank['sources'][0]['id'])},
preprocessed with Ben Graham's recipe.</p>
<img src="{rel(out / 'bank_sheet.png')}" alt="lesion bank contact sheet">
<h2>2. Normal images and their anomalous twins</h2>
<p>Left of each pair the normal image, right its twin with the pasted lesions outlined
(tiers by the paper's 80/10/5/5 grade mix; microaneurysms are about one pixel at this size).</p>
<img src="{rel(out / 'twins.png')}" alt="twin grid">
<h2>3. Training</h2>
<table><tr><th>epoch</th><th>loss</th><th>validation AUC (synthetic)</th><th>images/s</th></tr>
{epochs}</table>
<h2>4. Evaluation on images the model never saw</h2>
<table><tr><th>comparison</th><th>AUC</th><th>DeLong 95% interval</th><th>abnormal</th>
<th>normal</th></tr>{rows}</table>
<img src="{rel(out / 'run/eval/roc.png')}" alt="ROC curve">
<h2>5. Grad-CAM and Grad-CAM++</h2>
{'<img src="' + rel(cam) + '" alt="Grad-CAM panels">' if cam.exists() else '<p>(not made)</p>'}
</body></html>
""", encoding="utf-8")
    print(f"demo: the report is {page}")


if __name__ == "__main__":
    main(*sys.argv[1:])
