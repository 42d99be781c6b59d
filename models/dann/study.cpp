#include "models/dann/study.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace cvg::dann {

namespace {

constexpr const char* kModes[] = {"dann", "source-only", "target-only"};

// The gate thresholds of the issue (project notes section 3.5).
constexpr double kMinGain = 0.10, kMinGapClosed = 0.30, kMaxSourceDrop = 0.02;

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string cell(const MeanSd& m, int digits) {
  if (m.n == 0) return "-";
  return fixed(m.mean, digits) + " +/- " + fixed(m.sd, digits);
}

const ModeSummary* find_mode(const StudySummary& s, const std::string& mode) {
  for (const ModeSummary& m : s.modes)
    if (m.mode == mode) return &m;
  return nullptr;
}

}  // namespace

MeanSd mean_sd(const std::vector<double>& v) {
  MeanSd r;
  r.n = static_cast<int64_t>(v.size());
  if (v.empty()) return r;
  double sum = 0;
  for (double x : v) sum += x;
  r.mean = sum / static_cast<double>(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - r.mean) * (x - r.mean);
    r.sd = std::sqrt(ss / static_cast<double>(v.size() - 1));
  }
  return r;
}

std::optional<std::vector<RunResult>> with_svm_accuracies(const std::vector<RunResult>& runs) {
  std::vector<RunResult> out = runs;
  for (RunResult& r : out) {
    if (!r.svm_source_accuracy || !r.svm_target_accuracy) return std::nullopt;
    r.source_accuracy = *r.svm_source_accuracy;
    r.target_accuracy = *r.svm_target_accuracy;
  }
  return out;
}

StudySummary summarize_study(const std::vector<RunResult>& runs) {
  CVG_CHECK(!runs.empty(), "dann table: no runs");
  for (const RunResult& r : runs) {
    CVG_CHECK(std::find(std::begin(kModes), std::end(kModes), r.mode) != std::end(kModes), "dann table: run ",
              r.run, " has mode '", r.mode, "'; expected dann, source-only or target-only");
    CVG_CHECK(r.steps == runs.front().steps, "dann table: runs of different lengths: ", runs.front().run, " has ",
              runs.front().steps, " steps, ", r.run, " has ", r.steps);
  }
  StudySummary s;
  for (const char* mode : kModes) {
    ModeSummary m;
    m.mode = mode;
    std::vector<double> src, tgt, pad;
    for (const RunResult& r : runs) {
      if (r.mode != mode) continue;
      CVG_CHECK(std::find(m.seeds.begin(), m.seeds.end(), r.seed) == m.seeds.end(), "dann table: two ", mode,
                " runs with seed ", r.seed, " (one of them is ", r.run, ")");
      m.seeds.push_back(r.seed);
      src.push_back(r.source_accuracy);
      tgt.push_back(r.target_accuracy);
      if (r.proxy_a_distance) pad.push_back(*r.proxy_a_distance);
    }
    if (m.seeds.empty()) continue;
    std::sort(m.seeds.begin(), m.seeds.end());
    m.source = mean_sd(src);
    m.target = mean_sd(tgt);
    m.proxy_a = mean_sd(pad);
    s.modes.push_back(m);
  }
  const ModeSummary* dann = find_mode(s, "dann");
  const ModeSummary* lower = find_mode(s, "source-only");
  const ModeSummary* upper = find_mode(s, "target-only");
  s.complete = dann && lower && upper;
  if (!s.complete) return s;
  s.gain = dann->target.mean - lower->target.mean;
  const double gap = upper->target.mean - lower->target.mean;
  // With no gap to close (train on target no better than source only) nothing can be closed.
  s.gap_closed = gap > 0 ? s.gain / gap : 0.0;
  s.source_drop = lower->source.mean - dann->source.mean;
  s.pass_gain = s.gain >= kMinGain;
  s.pass_gap = gap > 0 && s.gap_closed >= kMinGapClosed;
  s.pass_source = s.source_drop < kMaxSourceDrop;
  return s;
}

std::string study_markdown(const StudySummary& s) {
  std::string out =
      "| mode | seeds | source accuracy | target accuracy | proxy A-distance |\n|---|---|---:|---:|---:|\n";
  for (const ModeSummary& m : s.modes) {
    std::string seeds;
    for (int64_t v : m.seeds) {
      if (!seeds.empty()) seeds += ',';
      seeds += std::to_string(v);
    }
    out += "| " + m.mode + " | " + seeds + " | " + cell(m.source, 4) + " | " + cell(m.target, 4) + " | " +
           cell(m.proxy_a, 3) + " |\n";
  }
  if (!s.complete) return out + "\ngates: need runs of all three modes (dann, source-only, target-only)\n";
  auto verdict = [](bool ok) { return ok ? "PASS" : "FAIL"; };
  out += "\n- DANN target - source-only target = " + fixed(s.gain, 4) + " (>= " + fixed(kMinGain, 2) +
         "): " + verdict(s.pass_gain) + "\n";
  out += "- share of the gap to train-on-target closed = " + fixed(100 * s.gap_closed, 1) + "% (>= " +
         fixed(100 * kMinGapClosed, 0) + "%): " + verdict(s.pass_gap) + "\n";
  out += "- source accuracy drop (source-only - DANN) = " + fixed(100 * s.source_drop, 2) + " points (< " +
         fixed(100 * kMaxSourceDrop, 0) + "): " + verdict(s.pass_source) + "\n";
  return out;
}

}  // namespace cvg::dann
