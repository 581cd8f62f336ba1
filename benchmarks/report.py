"""The docs' Performance page from the benchmark results of each backend.

Reads ``benchmarks/results/<backend>.json`` (written by ``run.py`` / ``nox -s bench``),
``benchmarks/results/peers_<backend>.json`` when present (``peers.py`` / ``nox -s
bench_peers``: convviz side by side with the peer libraries) and
``benchmarks/results/notes.rst`` (hand-written: where the time goes for each missed
target), writes ``docs/performance.rst`` (the machine, the targets table, the median
times, the peers tables) and ``docs/_static/performance.png`` (a bar chart of the
ratios against their targets). The docs build only includes these files; it runs no
benchmark.

    python benchmarks/report.py [--results DIR] [--docs DIR]
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np
from matplotlib.figure import Figure

HERE = pathlib.Path(__file__).resolve().parent
BACKENDS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
COLORS = {"tensorflow": "#e8710a", "jax": "#1a73e8", "torch": "#9334e6"}
CHART = "performance.png"
LOADED = "†"  # marks a number measured while the load average exceeded the core count
# The versions the peers tables name, per framework.
PEER_VERSIONS = {
    "tensorflow": ("keras", "tensorflow", "tf-keras-vis"),
    "torch": ("keras", "torch", "grad-cam", "torchcam", "captum"),
}


def load(folder: pathlib.Path) -> dict[str, dict]:
    """backend -> payload, for each full (not --quick) result file present."""
    found = {}
    for backend in BACKENDS:
        path = folder / f"{backend}.json"
        if path.exists():
            payload = json.loads(path.read_text())
            if not payload.get("quick"):
                found[backend] = payload
    return found


def load_peers(folder: pathlib.Path) -> dict[str, dict]:
    """backend -> payload of ``peers_<backend>.json``, for each full result file present."""
    found = {}
    for backend in BACKENDS:
        path = folder / f"peers_{backend}.json"
        if path.exists():
            payload = json.loads(path.read_text())
            if not payload.get("quick") and (payload.get("results") or payload.get("failed")):
                found[backend] = payload
    return found


def under_load(rec: dict) -> bool:
    """True if ``rec`` was measured under load (records written before the quiet-machine
    protocol have no ``under_load`` key: False)."""
    return bool(rec.get("under_load"))


def target_rows(results: dict[str, dict]) -> list[tuple[str, str, dict]]:
    """(target name, model, {backend: target dict}) in the order the benchmarks ran.

    Each target dict also says ``under_load``, from its record.
    """
    rows: dict[tuple[str, str], dict] = {}
    for backend, payload in results.items():
        for rec in payload["results"]:
            for t in rec["targets"]:
                rows.setdefault((t["name"], rec["model"]), {})[backend] = {
                    **t, "under_load": under_load(rec)
                }
    first: dict[str, int] = {}
    for name, _ in rows:
        first.setdefault(name, len(first))
    # Grouped by target (in order of first appearance); sorted() is stable, so the
    # models keep the order they ran in.
    ranked = sorted(rows, key=lambda key: first[key[0]])
    return [(name, model, rows[(name, model)]) for name, model in ranked]


def _cell(t: dict | None) -> str:
    if t is None:
        return "--"
    mark = f" {LOADED}" if t.get("under_load") else ""
    return f"{t['value']:.2f} {'✓' if t['met'] else '✗ missed'}{mark}"


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-2:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _list_table(header: list[str], rows: list[list[str]], widths: str) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    return lines + [""]


def _machine_lines(results: dict[str, dict]) -> list[str]:
    first = next(iter(results.values()))["machine"]
    lines = [
        f"All numbers come from one run per backend on **{first['cpu']}**"
        f"{' (a virtual machine)' if first.get('virtual') else ''}, "
        f"{first['cores']} cores, {first['ram_gib']} GiB RAM, {first['os']}, "
        f"Python {first['python']}, no GPU. The machine was shared with other work while "
        "the benchmarks ran, so the load average (runnable processes; above the core "
        "count means the benchmark did not have the CPU to itself) is given with each run:",
        "",
    ]
    for backend, payload in results.items():
        m = payload["machine"]
        wanted = ("keras", {"torch": "torch", "jax": "jaxlib"}.get(backend, "tensorflow"), "numpy")
        versions = ", ".join(f"{k} {m['versions'][k]}" for k in wanted if k in m["versions"])
        lines.append(
            f"- {BACKENDS[backend]}: {m['date']}, load average {m['load_average']} at the "
            f"start and {payload['load_average_end']} at the end, "
            f"{payload['wall_seconds'] / 60:.0f} min; {versions}."
        )
    return lines + [""]


def times_rows(results: dict[str, dict]) -> list[list[str]]:
    rows: dict[tuple[str, str], dict] = {}
    for backend, payload in results.items():
        for rec in payload["results"]:
            if rec["times"]:
                rows.setdefault((rec["benchmark"], rec["model"]), {})[backend] = rec
    out = []
    for (bench, model), by in rows.items():
        cells = []
        for backend in results:
            rec = by.get(backend)
            if rec is None:
                cells.append("--")
                continue
            cell = "; ".join(f"{k} {_fmt_time(v)}" for k, v in rec["times"].items())
            cells.append(f"{cell} {LOADED}" if under_load(rec) else cell)
        out.append([bench, model, *cells])
    return out


def loaded_note(records) -> list[str]:
    """The footnote under a table, if one of its ``records`` is marked (else no lines).

    Examples
    --------
    >>> loaded_note([{"under_load": False}, {"times": {}}])
    []
    >>> loaded_note([{"under_load": True, "load": {"repeated": 3}}])[0][:60]
    '† measured while the load average exceeded the core count, e'
    """
    loaded = [rec for rec in records if under_load(rec)]
    if not loaded:
        return []
    retried = any(rec.get("load", {}).get("repeated") for rec in loaded)
    return [
        f"{LOADED} measured while the load average exceeded the core count"
        + (", even after the rounds under load were timed again." if retried else "."),
        "",
    ]


def protocol_sentence(results: dict[str, dict]) -> str:
    """How loaded rounds were handled, from the records' settings ('' for older records)."""
    loads = [rec["load"] for rec in _records(results, "times") if "load" in rec]
    if not loads:
        return ""
    retries = max(load.get("retries", 0) for load in loads)
    pause = max(load.get("pause", 0.0) for load in loads)
    if retries:
        rule = (
            "a round during which it exceeded the core count is timed again (after "
            f"{pause:g} s, up to {retries} time{'s' * (retries != 1)}), and a number whose "
            f"rounds stayed loaded is marked {LOADED}."
        )
    else:
        rule = f"a number measured while it exceeded the core count is marked {LOADED}."
    return " The 1-minute load average is read before and after each round of timed calls; " + rule


def _records(results: dict[str, dict], key: str) -> list[dict]:
    """Every record, of every backend, with a non-empty ``key`` (targets or times)."""
    return [rec for payload in results.values() for rec in payload["results"] if rec[key]]


def memory_lines(results: dict[str, dict]) -> list[str]:
    lines = []
    for backend, payload in results.items():
        for rec in payload["results"]:
            if rec["benchmark"] == "sparsity memory":
                mem = ", ".join(f"{k} {v:.1f} MiB" for k, v in rec["memory_mib"].items())
                lines.append(f"- {BACKENDS[backend]}, {rec['model']}: {mem}.")
    if lines:
        lines = [
            "Peak memory of ``convviz.sparsity`` over a stream (resident set size above "
            "its level before the call; Python allocations, numpy included, from "
            "``tracemalloc``):",
            "",
            *lines,
            "",
        ]
    return lines


def _fmt_difference(value: float) -> str:
    return "0" if value == 0 else f"{value:.2g}"


def _peer_cells(rec: dict) -> list[str]:
    """Peer, method, model, setting, peer time, convviz time, ratio, max difference."""
    mark = f" {LOADED}" if under_load(rec) else ""
    unit = "" if rec.get("unit", "per call") == "per call" else f" {rec['unit']}"
    ratio = rec["ratios"]["peer/convviz"]
    target = next(iter(rec["targets"]), None)
    ratio_cell = f"{ratio:.2f}" + ("" if target is None else
                                   f" {'✓' if target['met'] else '✗ missed'} (≥ {target['limit']:g})")
    setting = rec["setting"] + (f"; smaller: {rec['smaller']}" if rec.get("smaller") else "")
    difference = _fmt_difference(rec["max_difference"])
    if rec.get("same_definition_difference") is not None:
        difference += f" (peer's definition: {_fmt_difference(rec['same_definition_difference'])})"
    return [
        f"{rec['peer']} ``{rec['api']}``", rec["method"], rec["model"], setting,
        f"{_fmt_time(rec['times']['peer'])}{unit}{mark}", f"{_fmt_time(rec['times']['convviz'])}{unit}{mark}",
        ratio_cell, difference,
    ]


def peers_lines(peers: dict[str, dict]) -> list[str]:
    """The "Side by side with the peers" section: one table per framework (none, and no
    section, without peer results)."""
    if not peers:
        return []
    lines = [
        "Side by side with the peers",
        "---------------------------",
        "",
        "What a researcher choosing a tool asks: how does convviz compare with what I use "
        "now? Each row runs a peer library and convviz in one process (``benchmarks/peers.py``), "
        "on the same machine, the same weights and the same images, timed in interleaved "
        "repetitions (medians, warm-up calls excluded). The ratio is the peer's time over "
        "convviz's: above 1, convviz is faster. The last column is the largest difference "
        "between the two libraries' results, so that speed is never bought with another "
        "answer: for maps, both min-max scaled, at the resolution the peer returns them; for "
        "attributions, the relative L2 error; for deletion/insertion, the per-image AUC; for "
        "filter patterns, the objective reached. Where a peer defines a method otherwise "
        "(the difference is then large), the same harness also computes the peer's own "
        "definition with convviz's machinery, outside the timing: that difference is given "
        "in parentheses, and the row's note says what differs.",
        "",
        "PyTorch: the PyTorch EfficientNet-Lite0 of ``efficientnet_lite_pytorch`` with the "
        "same ImageNet checkpoint as convviz's Lite0, run as its users run it, against "
        "convviz on the PyTorch backend. TensorFlow: tf-keras-vis on the very same Keras "
        "models, against convviz on the TensorFlow backend. A setting marked *smaller* is "
        "smaller than the suite's batch of 16 at full size because the peer would take "
        "minutes there.",
        "",
    ]
    for backend, payload in peers.items():
        m = payload["machine"]
        title = BACKENDS[backend]
        wanted = PEER_VERSIONS.get(backend, ("keras",))
        versions = ", ".join(f"{k} {m['versions'][k]}" for k in wanted if k in m.get("versions", {}))
        records = payload["results"]
        lines += [
            title,
            "~" * len(title),
            "",
            f"{m['date']}, load average {m['load_average']} at the start and "
            f"{payload['load_average_end']} at the end, {payload['wall_seconds'] / 60:.0f} min; {versions}.",
            "",
        ]
        if records:
            lines += [
                *_list_table(
                    ["Peer", "Method", "Model", "Setting", "Peer time", "convviz time", "Ratio", "Max difference"],
                    [_peer_cells(rec) for rec in records],
                    "14 10 12 18 10 10 10 16",
                ),
                *loaded_note(records),
            ]
        # Once per peer API (a note is about the method, whichever model it ran on).
        notes = list(dict.fromkeys(f"- {rec['peer']} ``{rec['api']}``: {rec['note']}." for rec in records
                                   if rec.get("note")))
        failed = [f"- {r['peer']} ``{r['api']}`` on {r['model']}: did not run "
                  f"(``{r['reason'].replace('`', chr(39))}``)."
                  for r in payload.get("failed", [])]
        if notes or failed:
            lines += [*notes, *failed, ""]
    return lines


def chart(results: dict[str, dict], path: pathlib.Path) -> None:
    """One panel per target: a bar per model and backend, the target as a dashed line."""
    rows = target_rows(results)
    names = list(dict.fromkeys(name for name, _, _ in rows))
    cols = 3
    nrows = -(-len(names) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.3 * nrows), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    width = 0.8 / max(1, len(results))
    for ax, name in zip(axes, names):
        models = [(model, by) for n, model, by in rows if n == name]
        x = np.arange(len(models))
        limit = None
        for k, backend in enumerate(results):
            values = [by[backend]["value"] if backend in by else np.nan for _, by in models]
            ax.bar(x + (k - (len(results) - 1) / 2) * width, values, width,
                   label=BACKENDS[backend], color=COLORS[backend])
            limit = next((by[backend]["limit"] for _, by in models if backend in by), limit)
        if limit is not None:
            ax.axhline(limit, color="black", linestyle="--", linewidth=1, label="target")
        ax.set_xticks(x, [model for model, _ in models], fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("ratio", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def page(results: dict[str, dict], notes: str, peers: dict[str, dict] | None = None) -> str:
    backends = list(results)
    lines = [
        ".. This page is generated by benchmarks/report.py from benchmarks/results/*.json;",
        "   edit benchmarks/results/notes.rst or the generator, not this file.",
        "",
        "Performance",
        "===========",
        "",
        "How fast convviz's compiled, batched paths run next to a plain compiled forward "
        "pass (``model.predict_on_batch``) on the same images, and next to the textbook "
        "loops of the chapter. The targets: activations of every conv and pooling layer "
        "within 1.15x a forward pass; Grad-CAM on a batch of 16 within 1.2x a forward "
        "pass and at least 4x faster than the textbook eager per-image loop; filter "
        "patterns within 1.15x the compiled forward+backward floor per filter-step and no "
        "slower than the textbook one-filter-at-a-time compiled loop; sparsity over a "
        "stream within 1.2x the forward pass over it, its peak memory for 2,000 images "
        "within 1.2x that for 64.",
        "",
        "Models have random weights (``weights=None``; timing does not depend on the "
        "weights): the chapter's small convnet and VGG16 with the chapter's classifier "
        "head at 180 x 180, Xception with its ImageNet top at 299 x 299; filter patterns "
        "on Xception's ``block3_sepconv1`` at 200 x 200, 64 filters, timed over 10 steps "
        "(the time per step does not depend on their number). Warm-up "
        "calls (compilation) are excluded, the callables compared are timed interleaved "
        "in one process, and each number is a median over repeats." + protocol_sentence(results),
        "",
        "Machine",
        "-------",
        "",
        *_machine_lines(results),
        "Targets",
        "-------",
        "",
        "Each cell is the measured ratio; ✓ when the target is met.",
        "",
        *_list_table(
            ["Target", "Model", *(BACKENDS[b] for b in backends)],
            [[name, model, *(_cell(by.get(b)) for b in backends)]
             for name, model, by in target_rows(results)],
            " ".join(["30", "16"] + ["18"] * len(backends)),
        ),
        *loaded_note(_records(results, "targets")),
        f".. image:: _static/{CHART}",
        "   :alt: Bar chart of each measured ratio per model and backend, with the target"
        " as a dashed line.",
        "",
        "Median times",
        "------------",
        "",
        "Per call (Grad-CAM's textbook: the per-image loop's time for the whole batch; "
        "filters: per filter-step).",
        "",
        *_list_table(
            ["Benchmark", "Model", *(BACKENDS[b] for b in backends)],
            times_rows(results),
            " ".join(["12", "16"] + ["24"] * len(backends)),
        ),
        *loaded_note(_records(results, "times")),
        *memory_lines(results),
        *peers_lines(peers or {}),
        "Reproduce",
        "---------",
        "",
        ".. code-block:: bash",
        "",
        "   nox -s bench                  # every backend; JSON in benchmarks/results/",
        "   nox -s bench_peers            # the peers, TensorFlow and PyTorch; peers_<backend>.json",
        "   python benchmarks/report.py   # this page and its chart",
        "   KERAS_BACKEND=jax python benchmarks/run.py --only gradcam --models small",
        "   KERAS_BACKEND=torch python benchmarks/torch_forward.py   # what Keras costs on PyTorch",
        "   KERAS_BACKEND=jax python benchmarks/depthwise.py         # depthwise convolutions",
        "   python benchmarks/resize.py                               # the input resize, 2,000 images",
        "",
        "``nox -s bench -- --quick`` is the short smoke run that CI also makes (in the "
        "test suite: the whole of it on TensorFlow, the rows only JAX or PyTorch have in "
        "their sessions), checking only that every benchmark runs and yields finite numbers.",
        "",
    ]
    if notes.strip():
        lines += ["Where the time goes", "-------------------", "", notes.strip(), ""]
    return "\n".join(lines)


def main(argv=None) -> pathlib.Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=pathlib.Path, default=HERE / "results")
    parser.add_argument("--docs", type=pathlib.Path, default=HERE.parent / "docs")
    args = parser.parse_args(argv)
    results = load(args.results)
    if not results:
        raise SystemExit(f"No full benchmark results in {args.results}: run `nox -s bench` first.")
    notes_file = args.results / "notes.rst"
    notes = notes_file.read_text() if notes_file.exists() else ""
    peers = load_peers(args.results)
    chart(results, args.docs / "_static" / CHART)
    out = args.docs / "performance.rst"
    out.write_text(page(results, notes, peers))
    with_peers = f"; peers: {', '.join(peers)}" if peers else ""
    print(f"written: {out} and {args.docs / '_static' / CHART} ({', '.join(results)}{with_peers})")
    return out


if __name__ == "__main__":
    main()
