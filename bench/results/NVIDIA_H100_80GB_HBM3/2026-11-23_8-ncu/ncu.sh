#!/usr/bin/env bash
# Session 14: ncu on the Deep Matching kernels still below 70 % of copy bandwidth.
set -uo pipefail
cd "$(dirname "$0")/../.."
export LD_LIBRARY_PATH=$PWD/build/gpu-stage/lib:$PWD/build/gpu-stage/lib-cudnn
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute*/ncu 2>/dev/null | head -1)
echo "ncu: $NCU"
B=build/gpu-stage/bin/cvg_bench_cuda
prof() {  # row, kernel regex
  echo "=== $1 ($2)"
  timeout 90 "$NCU" --kernel-name-base demangled -k "regex:$2" --launch-count 1 \
    --section SpeedOfLight --section WarpStateStats --section SchedulerStats \
    --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
    "$B" --benchmark_filter="^cuda/$1/1024x161" --benchmark_min_time=0.01 2>&1 |
    grep -vE "^(Run on|CPU Caches|  L[123]|Load Average|\*\*\*WARNING|-----|Benchmark )"
}
{
  prof dm_aggregate_bwd 'DmAggBackwardBy<float, int, cvg::DmAggRuns'
  prof dm_disaggregate_bwd 'DmDisaggBackwardBy<float, int, cvg::DmAggRuns'
  prof dm_unpool_bwd 'DmUnpoolBackward<float, int'
  prof dm_hinge_loss 'DmHingePartial<float'
  prof dm_hinge_loss_bwd 'DmHingeGrad<float'
  prof dm_max_pool 'DmPoolForward<float, int'
} > "$OUT/ncu.txt" 2>&1
grep -E "^===|Compute \(SM\) Throughput|DRAM Throughput|L2 Cache Throughput|Achieved Occupancy|Warp Cycles Per Issued|Registers Per|Duration" "$OUT/ncu.txt"
