"""Quality benchmark on the held-out clips: PSNR-Y, SSIM-Y and flicker of a model vs bicubic/Lanczos.

A thin wrapper so the benchmark sits beside the speed benchmarks; the code is `vsrup.evaluate`.
Example: python benchmarks/quality.py --model tiny --scale 4 --frames 30 --json quality.json
"""

from vsrup.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
