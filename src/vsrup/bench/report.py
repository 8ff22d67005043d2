"""Reading a bench report: the ratios that matter, the machine it ran on, a table and Markdown."""

from __future__ import annotations

import os
import platform
import time


def ratios(report: dict) -> dict:
    """Model vs floor, and the pipeline's efficiency against its slowest stage."""
    out = {}
    fps = report["upscale"]["fps"]
    if "floor" in report and report["floor"]["fps"]:
        out["model_fps_over_floor_fps"] = round(fps / report["floor"]["fps"], 4)
        out["model_peak_rss_over_floor"] = round(
            report["upscale"]["peak_rss_mib"] / report["floor"]["peak_rss_mib"], 4
        )
    stage_fps = {
        "decode": report.get("decode", {}).get("fps"),
        "model": report.get("stages", {}).get("model_fps_effective"),
        "encode": report.get("encode", {}).get("fps"),
    }
    known = {k: v for k, v in stage_fps.items() if v}
    if known:
        slowest = min(known, key=known.get)
        out["slowest_stage"] = slowest
        # On a GPU the stages run on different hardware, so the pipeline's ideal is its slowest
        # stage; on a CPU they share the cores, so the ideal is the sum of the per-frame times.
        out["pipeline_fps_over_slowest_stage"] = round(fps / known[slowest], 4)
        if len(known) == 3:
            serial = 1 / sum(1 / v for v in known.values())
            out["serial_fps"] = round(serial, 4)
            out["pipeline_fps_over_serial_fps"] = round(fps / serial, 4)
    if "length" in report:
        out["long_over_short_peak_rss"] = report["length"]["peak_rss_ratio"]
    return out


def machine() -> dict:
    """What ran the benchmark: CPU, cores, load, and the GPU if any."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "load_avg_1m_5m_15m": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover
        pass
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ---------------------------------------------------------------------------------------------
# Presentation


def render(report: dict, console=None) -> None:
    """Print the report as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    inp, out = report["input"], report["output"]
    title = (
        f"{report['options']['model']} ×{report['options']['scale']}: {inp['width']}x{inp['height']} → "
        f"{out['width']}x{out['height']}, {inp['frames']} frames on {report['upscale']['device']} "
        f"({report['upscale']['dtype']})"
    )
    table = Table(title=title)
    for column in ("run", "frames", "fps", "peak RSS MiB", "peak GPU MiB", "vs floor"):
        table.add_column(column, justify="right" if column != "run" else "left")
    floor_fps = report.get("floor", {}).get("fps")
    rows = [("upscale (model)", report["upscale"]), ("upscale (bicubic floor)", report.get("floor"))]
    rows += [("decode only", report.get("decode")), ("encode only", report.get("encode"))]
    for name, run in rows:
        if not run:
            continue
        gpu = run.get("gpu_peak_allocated_mib")
        vs = f"{run['fps'] / floor_fps:.3f}×" if floor_fps and "upscale" in name else ""
        table.add_row(name, str(run["frames"]), f"{run['fps']:.2f}", f"{run['peak_rss_mib']:.0f}",
                      "" if gpu is None else f"{gpu:.0f}", vs)  # fmt: skip
    console.print(table)
    if "stages" in report:
        stages = report["stages"]
        st = Table(title=f"model stages on one window of {stages['frames']} frames (best of repeats)")
        st.add_column("stage")
        st.add_column("ms/frame", justify="right")
        st.add_column("share of model", justify="right")
        model_ms = stages["ms_per_frame"]["model"]
        for name, ms in stages["ms_per_frame"].items():
            if name in ("total",):
                continue
            share = f"{100 * ms / model_ms:.1f} %" if model_ms and name not in ("model", "transfer") else ""
            st.add_row(name, f"{ms:.2f}", share)
        st.add_row(
            "model fps (window / effective)",
            f"{stages['model_fps_in_window']:.2f} / {stages['model_fps_effective']:.2f}",
            "",
        )
        console.print(st)
    if "length" in report:
        ln = report["length"]
        console.print(
            f"memory vs length: {ln['short_frames']} frames → {ln['short_peak_rss_mib']:.0f} MiB, "
            f"{ln['long_frames']} frames → {ln['long_peak_rss_mib']:.0f} MiB (×{ln['peak_rss_ratio']:.3f})"
        )
    if report.get("ratios"):
        console.print("ratios: " + ", ".join(f"{k}={v}" for k, v in report["ratios"].items()))


def to_markdown(report: dict) -> str:
    """A short markdown summary of one report (for benchmarks/results/)."""
    inp, out, up = report["input"], report["output"], report["upscale"]
    machine = report["machine"]
    lines = [
        f"**{report['options']['model']} ×{report['options']['scale']}**, {inp['width']}x{inp['height']} → "
        f"{out['width']}x{out['height']}, {inp['frames']} frames, {up['device']} {up['dtype']}, "
        f"window {up['window']} / overlap {up['overlap']} / tile {up['tile']}; {machine['cpu']}, "
        f"{machine['cores']} cores, load average (1/5/15 min) {machine['load_avg_1m_5m_15m']} at the start "
        f"({machine['time_utc']}), {machine.get('load_avg_at_end', '?')} at the end",
        "",
        "| run | frames | fps | peak RSS MiB | vs floor |",
        "|---|---:|---:|---:|---:|",
    ]
    floor_fps = report.get("floor", {}).get("fps")
    for name, key in (("upscale (model)", "upscale"), ("upscale (bicubic floor)", "floor"),
                      ("decode only", "decode"), ("encode only", "encode")):  # fmt: skip
        run = report.get(key)
        if run:
            vs = f"{run['fps'] / floor_fps:.3f}×" if floor_fps and key in ("upscale", "floor") else ""
            lines.append(
                f"| {name} | {run['frames']} | {run['fps']:.3f} | {run['peak_rss_mib']:.0f} | {vs} |"
            )
    if "stages" in report:
        ms = report["stages"]["ms_per_frame"]
        steps = ", ".join(f"{k} {v:.1f}" for k, v in ms.items() if k not in ("total",))
        lines += ["", f"Model stages, ms per frame on one window of {report['stages']['frames']}: {steps}."]
    if "length" in report:
        ln = report["length"]
        lines += [
            "",
            f"Memory vs length: {ln['short_frames']} frames → {ln['short_peak_rss_mib']:.0f} MiB peak RSS, "
            f"{ln['long_frames']} frames → {ln['long_peak_rss_mib']:.0f} MiB (×{ln['peak_rss_ratio']:.3f}).",
        ]
    return "\n".join(lines) + "\n"
