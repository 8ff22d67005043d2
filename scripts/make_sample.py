"""Cut the small demo clip shipped in examples/ from a shared clip (run once; the output is committed).

Takes the first 1.5 s of `01_dog.mp4` (Apache-2.0, facebookresearch/sam2), downsizes it to
320×180 so that ×4 gives 1280×720, and copies the audio packets of that span untouched.
"""

from __future__ import annotations

import sys
from pathlib import Path

import av

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips" / "01_dog.mp4"
TARGET = Path(__file__).resolve().parents[1] / "examples" / "dog_320x180.mp4"
SECONDS = 1.5


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE
    with av.open(str(source)) as src, av.open(str(TARGET), "w") as dst:
        vin, ain = src.streams.video[0], src.streams.audio[0]
        vout = dst.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = 320, 180, "yuv420p"
        vout.time_base = vout.codec_context.time_base = vin.time_base
        vout.codec_context.colorspace = vout.codec_context.color_primaries = vout.codec_context.color_trc = 1
        vout.options = {"crf": "20"}
        aout = dst.add_stream_from_template(ain)
        for packet in src.demux(vin, ain):
            if packet.stream is ain:
                if packet.pts is not None and packet.pts * packet.time_base < SECONDS:
                    packet.stream = aout
                    dst.mux(packet)
                continue
            # Decode every video packet (B-frames need their references) and keep frames by time.
            for frame in packet.decode():
                if frame.time >= SECONDS:
                    continue
                small = frame.reformat(width=320, height=180, format="yuv420p", interpolation="AREA")
                small.pts, small.time_base, small.duration = frame.pts, frame.time_base, frame.duration
                dst.mux(vout.encode(small))
        dst.mux(vout.encode(None))
    print(TARGET, TARGET.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
