"""Markdown tables and bar charts of the records (:mod:`.records`).

Each model is compared in its best memory layout: for every mode, the layout with the most images per second is
the model's figure, and the ratios divide that figure by the reference's (ConvNeXt-T, the paper's baseline, and
timm's InceptionNeXt), each also in its best layout. A ratio above 1 means faster than the reference. Where the MLP
GEMMs alone were timed (``mlp_gemms``), the ratio to them is the share of a model's time they would take.
"""
from typing import Dict, List, Optional, Sequence, Tuple

from .models import GEMM_LIMIT, REFERENCE

RATIO_REFERENCES = (REFERENCE, 'timm_incnext')  # always a column; GEMM_LIMIT one where it was timed
MODES = ('infer', 'train')


def timed(results: List[dict]) -> List[dict]:
    """The records that hold a throughput (not errors or skipped models)."""
    return [r for r in results if r.get('img_per_s') is not None]


def best_per_model(results: List[dict], mode: str) -> Dict[str, dict]:
    """model -> its fastest record in ``mode`` (over memory layouts), in the order the models first appear."""
    best = {}
    for r in timed(results):
        if r['mode'] == mode and (r['model'] not in best or r['img_per_s'] > best[r['model']]['img_per_s']):
            best[r['model']] = r
    return best


def speedup(result: dict, reference: dict) -> float:
    """How many times faster ``result`` runs than ``reference``: the ratio of their images per second."""
    return result['img_per_s'] / reference['img_per_s']


def problems(results: List[dict]) -> List[str]:
    """One line per model that was not timed, with the reason."""
    lines = []
    for r in results:
        if 'error' in r or 'skipped' in r:
            where = ', '.join(str(v) for v in (r.get('memory_format'), r.get('mode')) if v)
            what = f'error: {r["error"]}' if 'error' in r else f'skipped: {r["skipped"]}'
            lines.append(f'- {r["model"]} ({where}): {what}')
    return lines


def model_table(results: List[dict]) -> str:
    """Per mode: img/s in each layout, the best layout, its peak memory, the ratios to the references, and (under
    autocast) the relative error against float32; then the models not timed."""
    lines = []
    for mode in MODES:
        best = best_per_model(results, mode)
        if not best:
            continue
        formats = sorted({r['memory_format'] for r in timed(results) if r['mode'] == mode})
        references = RATIO_REFERENCES + ((GEMM_LIMIT, ) if GEMM_LIMIT in best else ())
        header = (['model'] + [f'img/s {f}' for f in formats] + ['best', 'peak MiB'] +
                  [f'x {ref}' for ref in references])
        with_error = any(r.get('rel_err_vs_fp32') is not None for r in best.values())
        if with_error:
            header.append('rel.err vs fp32')
        lines += [f'\n{mode} (batch {next(iter(best.values()))["batch"]})', '| ' + ' | '.join(header) + ' |',
                  '|' + ' --- |' * len(header)]
        for name, b in best.items():
            row = [name]
            for f in formats:
                match = [r for r in timed(results) if (r['model'], r['mode'], r['memory_format']) == (name, mode, f)]
                row.append(f'{match[0]["img_per_s"]:.2f}' if match else '-')
            row += [b['memory_format'], '-' if b.get('peak_mem_mb') is None else f'{b["peak_mem_mb"]:.0f}']
            row += [f'{speedup(b, best[ref]):.2f}' if ref in best else '-' for ref in references]
            if with_error:
                row.append('-' if b.get('rel_err_vs_fp32') is None else f'{b["rel_err_vs_fp32"]:.1e}')
            lines.append('| ' + ' | '.join(row) + ' |')
    missing = problems(results)
    if missing:
        lines += ['', 'not timed:'] + missing
    return '\n'.join(lines)


def mixer_table(results: List[dict]) -> str:
    """Per stage shape, layout, mode and implementation: microseconds per call, GB/s of the minimum bytes, and that
    as a fraction of the copy bandwidth measured in the same run; then the sum over the network's blocks."""
    rows = [r for r in results if r.get('us_per_call') is not None]
    header = ['stage (C, HxW)', 'blocks', 'dtype in -> out', 'layout', 'mode', 'impl', 'us/call', 'GB/s',
              'of copy bandwidth']
    lines = ['\n| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header)]
    for r in rows:
        fraction = '-' if r.get('bandwidth_fraction') is None else f'{100 * r["bandwidth_fraction"]:.0f}%'
        lines.append(f'| {r["stage"]} ({r["channels"]}, {r["height"]}x{r["width"]}) | {r["blocks"]} | '
                     f'{r["in_dtype"]} -> {r["out_dtype"]} | {r["memory_format"]} | {r["mode"]} | {r["impl"]} | '
                     f'{r["us_per_call"]:.1f} | {_figure(r["gb_per_s"])} | {fraction} |')
    totals = mixer_network_totals(rows)
    if totals:
        lines += ['', '| all blocks of the network: layout | mode | impl | us | x eager |', '|' + ' --- |' * 5]
        for (fmt, mode, impl), us in totals.items():
            eager = totals.get((fmt, mode, 'eager'))
            ratio = f'{eager / us:.2f}' if eager else '-'
            lines.append(f'| {fmt} | {mode} | {impl} | {us:.0f} | {ratio} |')
    missing = [f'- {r.get("impl", "")} {r.get("mode", "")}: ' + (f'error: {r["error"]}' if 'error' in r else
                                                                f'skipped: {r["skipped"]}')
               for r in results if 'error' in r or 'skipped' in r]
    if missing:
        lines += ['', 'not timed:'] + missing
    return '\n'.join(lines)


def _figure(value: float) -> str:
    return f'{value:.0f}' if value >= 10 else f'{value:.2g}'


def mixer_network_totals(rows: List[dict]) -> Dict[Tuple[str, str, str], float]:
    """(layout, mode, impl) -> microseconds of all the network's mixer calls: each shape's time times the number of
    blocks that run it; only where every shape was timed."""
    shapes = {(r['stage'], r['in_dtype']) for r in rows}
    totals, counted = {}, {}
    for r in rows:
        key = (r['memory_format'], r['mode'], r['impl'])
        totals[key] = totals.get(key, 0.0) + r['us_per_call'] * r['blocks']
        counted[key] = counted.get(key, 0) + 1
    return {key: us for key, us in totals.items() if counted[key] == len(shapes)}


def plot_throughput(panels: Sequence[Tuple[str, List[dict]]], path: str, title: str, columns: Optional[int] = None,
                    panel_size: Tuple[float, float] = (6, 4), value_format: str = '%.1f'):
    """Bar charts of img/s, one panel per (title, records of one mode): each model's best layout, ours in orange.
    Needs matplotlib."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = [(name, best) for name, best in ((name, _best_any_mode(records)) for name, records in panels) if best]
    if not panels:
        return
    columns = columns or len(panels)
    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(panel_size[0] * columns, panel_size[1] * rows), squeeze=False)
    for ax, (name, best) in zip(axes.flat, panels):
        names = list(best)
        bars = ax.barh(names, [best[n]['img_per_s'] for n in names],
                       color=['tab:orange' if n.startswith('ours') else 'tab:gray' for n in names])
        ax.bar_label(bars, fmt=value_format)
        ax.invert_yaxis()
        ax.set_title(name)
        ax.set_xlabel('img/s (best memory format, median)')
    for ax in list(axes.flat)[len(panels):]:
        ax.axis('off')
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _best_any_mode(records: List[dict]) -> Dict[str, dict]:
    modes = {r['mode'] for r in timed(records)}
    if len(modes) > 1:
        raise ValueError(f'a panel shows one mode, got {sorted(modes)}')
    return best_per_model(records, modes.pop()) if modes else {}


def mode_panels(results: List[dict], prefix: str = '') -> List[Tuple[str, List[dict]]]:
    """One panel per mode: ``'<prefix><mode>, batch <n>'`` and that mode's records."""
    panels = []
    for mode in MODES:
        records = [r for r in timed(results) if r['mode'] == mode]
        if records:
            panels.append((f'{prefix}{mode}, batch {records[0]["batch"]}', records))
    return panels
