#!/usr/bin/env bash
# What the CPU-only CI cannot check, in one short call on a machine with a CUDA GPU and a CUDA build of
# torch (initlab's other dependencies installed); run from the repository root, it writes nothing:
#
#     bash benchmarks/gpu_check.sh
#
# 1. train_many on CUDA equals the plain loop on CUDA (tests/test_ensemble.py, the tests named cuda);
# 2. the benchmark on CUDA: 2 -> [64] x 10 -> 1 and 2 -> [16] x 3 -> 1, minibatch 128, M up to 10000.
set -euo pipefail
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'this torch sees no CUDA GPU'; \
print('torch', torch.__version__, 'on', torch.cuda.get_device_name())"
python3 -m pytest -q -p no:cacheprovider tests/test_ensemble.py -k cuda
python3 benchmarks/train_many.py --device cuda --configs 1,0 --models 100,1000,10000 --repeats 1 --plain-models 3
