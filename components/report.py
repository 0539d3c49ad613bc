"""The run's pictures and markdown report: sample grids, class-share plot, metric and
audit tables."""
from __future__ import annotations

from pathlib import Path


def save_grid(images_uint8, path: Path, columns: int = 10, scale: int = 4, pad: int = 1) -> str:
    """A PNG grid of (N, C, H, W) uint8 images, `pad` grey pixels between tiles."""
    Path(path).write_bytes(grid_png(images_uint8, columns, scale, pad))
    return str(path)


def grid_png(images_uint8, columns: int = 10, scale: int = 4, pad: int = 1) -> bytes:
    """The PNG bytes of `save_grid`'s grid (the server's /generate_png answers with them)."""
    import io

    import numpy as np
    from PIL import Image

    n, c, h, w = images_uint8.shape
    rows = -(-n // columns)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 96, dtype=np.uint8)
    for i, img in enumerate(images_uint8.permute(0, 2, 3, 1).numpy()):
        r, k = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[top:top + h, left:left + w] = img
    picture = Image.fromarray(grid.squeeze(-1) if c == 1 else grid)
    buf = io.BytesIO()
    picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


def _table(rows: dict) -> list[str]:
    out = ["| | |", "|---|---|"]
    for key, value in rows.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, (dict, list)):
            continue
        out.append(f"| {key} | {value} |")
    return out


def class_share_plot(bias: dict, path: Path) -> str | None:
    if "generated_share" not in bias:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    gen, train = bias["generated_share"], bias["training_share"]
    x = np.arange(len(gen))
    fig, ax = plt.subplots(figsize=(5, 2.6))
    ax.bar(x - 0.2, train, 0.4, label="training")
    ax.bar(x + 0.2, gen, 0.4, label="generated")
    ax.set_xticks(x)
    ax.set_xlabel("class")
    ax.set_ylabel("share")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return str(path)


def write_report(run_dir: Path, run_id: str, evaluated, audited, gated) -> tuple[str, str]:
    """report.md in the run dir from the evaluate, audit and gate results; returns (path, markdown)."""
    run_dir = Path(run_dir)
    bias, memo, metrics = audited.bias, audited.memorisation, evaluated.metrics
    lines = [f"# genloop run {run_id}", "",
             f"**Decision:** {'promoted' if gated.promote else 'not promoted'}: {gated.reason}", ""]
    if (run_dir / "evaluate" / "samples.png").is_file():
        lines += ["## Samples", "", "![samples](evaluate/samples.png)", ""]
    plot = class_share_plot(bias, run_dir / "class_share.png")
    if plot:
        lines += ["## Class shares", "", "![class shares](class_share.png)", ""]
    lines += ["## Metrics", "", *_table(metrics), ""]
    if "fid_interval" in metrics:
        i = metrics["fid_interval"]
        lines += [f"FID {i['level']:.0%} bootstrap interval: {i['low']:.3f} .. {i['high']:.3f} "
                  f"({i['rounds']} resamples)", ""]
    lines += [f"## Bias audit: {'pass' if bias['passed'] else 'FAIL'}", "", bias["reason"], "", *_table(bias), ""]
    lines += [f"## Memorisation: {'pass' if memo['passed'] else 'FAIL'}", "", memo["reason"], "", *_table(memo), ""]
    markdown = "\n".join(lines)
    path = run_dir / "report.md"
    path.write_text(markdown)
    return str(path), markdown
