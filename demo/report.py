"""Write ``demo/out/summary.json`` and ``demo/report.html`` from the files ``make demo`` wrote.

The report reads top to bottom as the method's story: the bank, the twins, the training, then
the two tests, each with what it measures and what it does not, and what to run next.

``summary.json`` keys:

- ``localisation``: ``auroc``, ``ci_low``, ``ci_high`` (pixel AUROC of the run's anomaly maps
  against the real lesions of the held-out IDRiD images, bootstrap 95% interval by image),
  ``aupro`` with ``aupro_ci_low``/``aupro_ci_high``, ``n_images``, ``gradcam_auroc`` (the same
  for Grad-CAM), ``by_type`` (pixel AUROC per lesion type);
- ``detection``: ``auc``, ``ci_low``, ``ci_high`` (DeLong), ``n_pos``, ``n_neg``: held-out
  children's photographs against their twins made with another annotated image's lesions;
- ``wall_seconds``: the run's wall time, from the install-free start of ``make demo``.
"""

from __future__ import annotations

import html
import json
import sys
import time
from pathlib import Path


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def summary(out: Path) -> dict:
    """The two tests' estimates and intervals, from the evaluation folders.

    Args:
        out: the demo's output folder.

    Returns:
        ``summary.json``'s content (see the module's docstring).
    """
    pixel = _json(out / "run" / "eval-where" / "metrics.json")["pixel"]
    maps, cam = pixel["maps"], pixel.get("gradcam", {})
    detection = _json(out / "run" / "eval-whether" / "metrics.json")["auc"]["0v1"]
    started = float((out / "started").read_text().strip())
    return {
        "localisation": {
            "auroc": maps["auroc"],
            "ci_low": maps["auroc_ci_low"],
            "ci_high": maps["auroc_ci_high"],
            "aupro": maps["aupro"],
            "aupro_ci_low": maps["aupro_ci_low"],
            "aupro_ci_high": maps["aupro_ci_high"],
            "n_images": pixel["n_images"],
            "gradcam_auroc": cam.get("auroc"),
            "by_type": {t: (e or {}).get("auroc") for t, e in maps["by_type"].items()},
        },
        "detection": {k: detection[k] for k in ("auc", "ci_low", "ci_high", "n_pos", "n_neg")},
        "wall_seconds": round(time.time() - started, 1),
    }


def _verdict(low: float, high: float) -> str:
    if low > 0.5:
        return "its interval lies above 0.5: better than chance"
    if high < 0.5:
        return "its interval lies below 0.5: worse than chance"
    return "its interval includes 0.5: at this scale the demo cannot tell it from chance"


def _type_rows(out: Path) -> str:
    pixel = _json(out / "run" / "eval-where" / "metrics.json")["pixel"]
    rows = []
    for kind in ("maps", "gradcam", "gradcam++"):
        entry = pixel.get(kind) or {}
        cells = [f"<td>{html.escape(kind)}</td>"]
        for t in ["all", *pixel["types"]]:
            e = entry if t == "all" else (entry.get("by_type") or {}).get(t)
            cells.append(
                f"<td>{e['auroc']:.3f} [{e['auroc_ci_low']:.3f}, {e['auroc_ci_high']:.3f}]</td>"
                if e and e.get("auroc") is not None
                else "<td>-</td>"
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    header = "".join(f"<th>{html.escape(t)}</th>" for t in ["map", "all", *pixel["types"]])
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def page(out: Path, report: Path, s: dict) -> str:
    """The report's HTML.

    Args:
        out: the demo's output folder.
        report: where the page goes (image links are relative to it).
        s: ``summary``'s result.

    Returns:
        The HTML text.
    """
    log = [json.loads(line) for line in (out / "run/log.jsonl").read_text().splitlines()]
    twins, bank = _json(out / "twins/dataset.json"), _json(out / "bank.json")
    unseen_bank = _json(out / "bank13.json")

    def img(path: str, alt: str) -> str:
        rel = html.escape(str((out / path).relative_to(report.parent)))
        return f'<img src="{rel}" alt="{html.escape(alt)}">'

    curve = "".join(
        f"<tr><td>{e['epoch']}</td><td>{e['loss']:.4f}</td>"
        f"<td>{e.get('val_auc', float('nan')):.3f}</td></tr>"
        for e in log
    )
    loc, det = s["localisation"], s["detection"]
    counts = ", ".join(f"{t} {n}" for t, n in bank["counts"].items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>LesionPaste demo</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:auto}} img{{max-width:100%}}
td,th{{padding:2px 8px;border-bottom:1px solid #ddd}} .box{{border:1px solid #999;padding:6px}}
</style></head><body>
<h1>LesionPaste on bundled data ({s["wall_seconds"]:.0f} s)</h1>
<p>One annotated photograph, a few dozen normal ones, a CPU: what the method learns, measured
on images it never saw. Every figure below is computed by this run
(<code>demo/out/summary.json</code>).</p>
<h2>1. The lesion bank</h2>
<p>{bank["n_lesions"]} lesions ({html.escape(counts)}) cut from
{html.escape(bank["sources"][0]["id"])}, preprocessed with Ben Graham's recipe.</p>
{img("bank_sheet.png", "lesion bank")}
<h2>2. Normal photographs and their anomalous twins</h2>
<p>{twins["counts"]["normal"]} CHASE_DB1 photographs of healthy children (the patients of the
training split) and one twin each, lesions pasted with the paper's 80/10/5/5 grade mix at
{twins["config"]["size"]}x{twins["config"]["size"]}; {_normals_sentence(twins["config"])}</p>
{img("twins.png", "twins")}
<h2>3. Training</h2>
<p>EfficientNet-Lite0 (ImageNet weights, first stages frozen) with the dense decoder of
<code>--maps</code>, trained on the twins and their pasted masks.</p>
<table><tr><th>epoch</th><th>loss</th><th>validation AUC (held-out twin pairs)</th></tr>
{curve}</table>
<h2>4. Test one: where are the lesions?</h2>
<p><b>Measures</b> whether the anomaly map lights up real lesions: pixel AUROC of the map
against the IDRiD graders' masks of {loc["n_images"]} photographs that are not the bank's source
(inside the field of view; 95% bootstrap interval by image). <b>Does not measure</b> detection
of disease in a screening population: these are all diseased eyes of one camera.</p>
<p>Pixel AUROC {loc["auroc"]:.3f} [{loc["ci_low"]:.3f}, {loc["ci_high"]:.3f}]:
{_verdict(loc["ci_low"], loc["ci_high"])}. AUPRO (to 30% FPR) {loc["aupro"]:.3f}
[{loc["aupro_ci_low"]:.3f}, {loc["aupro_ci_high"]:.3f}].</p>
{_type_rows(out)}
{img("run/eval-where/maps.png", "maps")}
<h2>5. Test two: is it there?</h2>
<p><b>Measures</b> detection of lesions the model never saw, within one camera and
population: {det["n_neg"]} held-out children's photographs (other patients than the training
ones) against their twins made with the lesions of another annotated image,
{html.escape(unseen_bank["sources"][0]["id"])}. <b>Does not measure</b> real disease: the
anomalies are pasted.</p>
<p>AUC {det["auc"]:.3f} [{det["ci_low"]:.3f}, {det["ci_high"]:.3f}] (DeLong):
{_verdict(det["ci_low"], det["ci_high"])}.</p>
{img("run/eval-whether/roc.png", "ROC")}
<h2>What next</h2>
<p class="box">At scale: <code>make train-eyeq</code> runs the paper's EyeQ workflow;
<code>docs/results.md</code> gives the results on real EyePACS images, with their commands.</p>
</body></html>
"""


def _normals_sentence(config: dict) -> str:
    """How the twins' normal photographs were prepared, from the dataset's configuration."""
    if config.get("normals_preprocess") == "none":
        how = "the photographs are used as they are"
    else:
        how = "the photographs get the bank's recipe"
    if config.get("match_colour"):
        how += ", and the lesions' colours are matched to theirs (<code>--match-colour</code>)"
    return how + "."


def main(out_dir: str = "demo/out", report: str = "demo/report.html") -> None:
    """Write ``summary.json`` into the output folder and the report page.

    Args:
        out_dir: the demo's output folder.
        report: the report page to write.
    """
    out, target = Path(out_dir), Path(report)
    s = summary(out)
    (out / "summary.json").write_text(json.dumps(s, indent=2, sort_keys=True) + "\n")
    target.write_text(page(out, target, s), encoding="utf-8")
    loc, det = s["localisation"], s["detection"]
    print(
        f"demo: where: pixel AUROC {loc['auroc']:.3f} [{loc['ci_low']:.3f}, "
        f"{loc['ci_high']:.3f}] (Grad-CAM {loc['gradcam_auroc']:.3f}); whether: AUC "
        f"{det['auc']:.3f} [{det['ci_low']:.3f}, {det['ci_high']:.3f}]; report {target}"
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
